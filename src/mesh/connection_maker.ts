/**
 * The addresses this peer keeps trying to reach, and the dialling: targets from `--peers`,
 * `connect()` and discovery; retries with exponential backoff and jitter; `forget()` and
 * `replace`. It owns no connection once it is up: the mesh does (one per peer, whichever side
 * dialled), and tells the maker when a peer connects or a connection closes, so a target whose
 * peer is already connected the other way round is satisfied rather than redialled. A target
 * that is this peer itself (the same `--peers` list on every node names it too) is recognised by
 * address before dialling, or by the "connected to self" answer, and is never dialled again.
 */
import type { Clock, TimerId } from "./clock.ts";
import { type Diagnostic, targetDiagnostic } from "./diagnostics.ts";
import type { PeerRecord } from "./record.ts";
import type { Session } from "./session.ts";
import type { Link, Transport } from "./transport.ts";
import type { ConnectionState, ConnectionStatus } from "./types.ts";

export interface Target {
  readonly address: string;
  discovered: boolean;
  state: ConnectionState;
  since: number;
  attempts: number;
  session?: Session;
  /** The peer this address turned out to be; while connected to it otherwise, no dial. */
  peer?: string;
  lastError?: string;
  nextAttempt?: number;
  timer?: TimerId;
  /** This peer's own address (by address, or by the "connected to self" answer): never dialled. */
  isSelf?: boolean;
}

export interface ConnectionMakerOptions {
  clock: Clock;
  random: () => number;
  transport: Transport;
  connLimit: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** Wraps a dialled link in a session the mesh tracks. */
  open(link: Link): Session;
  /** Whether an established connection to `peer` exists (either direction). */
  connected(peer: string): boolean;
  /** Open sessions, both directions, handshaking included: counted against `connLimit`. */
  sessionCount(): number;
  /** Whether an address is this peer's own (checked before each dial, once listening). */
  isLocal(address: string): boolean;
}

export class ConnectionMaker {
  #options: ConnectionMakerOptions;
  #targets = new Map<string, Target>();
  #forgotten = new Set<string>();
  #running = false;

  constructor(options: ConnectionMakerOptions) {
    this.#options = options;
  }

  /** Starts dialling every target, and any added later. */
  start(): void {
    this.#running = true;
    for (const target of this.#targets.values()) this.#dial(target);
  }

  /** Stops dialling and cancels every pending retry. */
  stop(): void {
    this.#running = false;
    for (const target of this.#targets.values()) {
      if (target.timer !== undefined) this.#options.clock.clearTimeout(target.timer);
    }
  }

  /** The addresses this peer keeps trying to reach (given and discovered), sorted. */
  addresses(): string[] {
    return [...this.#targets.keys()].sort();
  }

  /** Adds a given target (it is dialled once the maker runs). */
  add(address: string): void {
    this.#add(address, { discovered: false });
  }

  /** Adds a target (or, with `replace`, makes it the only given target) and dials it now. */
  connect(address: string, options: { replace?: boolean } = {}): void {
    if (options.replace) {
      for (const t of [...this.#targets.values()]) if (t.address !== address) this.#drop(t);
    }
    this.#forgotten.delete(address);
    const existing = this.#targets.get(address);
    if (existing) {
      existing.discovered = false;
      if (existing.state !== "established" && existing.state !== "connecting") {
        existing.attempts = 0;
        this.#dial(existing);
      }
      return;
    }
    const target = this.#add(address, { discovered: false });
    if (this.#running) this.#dial(target);
  }

  /** Stops (re)connecting to an address and blocks its rediscovery. */
  forget(address: string): void {
    this.#forgotten.add(address);
    const target = this.#targets.get(address);
    if (target) this.#drop(target);
  }

  /**
   * Dials peers learnt through gossip, at the addresses their neighbours reached them on:
   * those not connected, not targeted already, and not at a forgotten address.
   */
  discover(records: Iterable<PeerRecord>, options: { self: string }): void {
    const targeted = new Set<string>();
    for (const t of this.#targets.values()) if (t.peer !== undefined) targeted.add(t.peer);
    for (const record of records) {
      for (const { peer, address } of record.connections) {
        if (this.#options.sessionCount() >= this.#options.connLimit) return;
        if (peer === options.self || this.#options.connected(peer) || targeted.has(peer)) continue;
        if (this.#targets.has(address) || this.#forgotten.has(address)) continue;
        const target = this.#add(address, { discovered: true });
        target.peer = peer;
        targeted.add(peer);
        this.#dial(target);
      }
    }
  }

  /** Drops discovered targets of a peer that is gone for good. */
  dropDiscovered(peer: string): void {
    for (const t of [...this.#targets.values()]) {
      if (t.discovered && t.peer === peer) this.#drop(t);
    }
  }

  /** The target a dialled session belongs to. */
  targetOf(session: Session): Target | undefined {
    if (session.direction !== "outbound") return undefined;
    for (const t of this.#targets.values()) if (t.session === session) return t;
    return undefined;
  }

  /** A dialled session reached `peer` (before the mesh decides whether to keep it). */
  identified(session: Session, peer: string, options: { self: boolean }): void {
    const target = this.targetOf(session);
    if (!target) return;
    target.peer = peer;
    if (options.self) target.isSelf = true;
  }

  /** A session is now the connection to `peer`: every target leading there is satisfied. */
  established(session: Session, peer: string): void {
    const target = this.targetOf(session);
    if (target) {
      target.attempts = 0;
      target.lastError = undefined;
    }
    for (const t of this.#targets.values()) {
      if (t.peer !== peer) continue;
      t.state = "established";
      t.since = this.#options.clock.now();
      t.nextAttempt = undefined;
      if (t.timer !== undefined) this.#options.clock.clearTimeout(t.timer);
      t.timer = undefined;
    }
  }

  /**
   * A session closed: its own target retries, and so do idle targets of the peer when this was
   * the current connection to it (the peer may have come in through the other direction).
   */
  closed(session: Session, reason: string, options: { peer?: string; wasCurrent: boolean }): void {
    if (!this.#running) return;
    for (const t of this.#targets.values()) {
      if (t.session === session) this.#retry(t, reason);
      else if (
        options.wasCurrent && t.peer === options.peer && t.session === undefined &&
        t.timer === undefined
      ) {
        this.#retry(t, reason);
      }
    }
  }

  /**
   * Targets still waiting for a connection, and those with a live outbound session. A target
   * whose peer is connected through the other direction is not listed: the mesh lists that one.
   */
  statuses(): ConnectionStatus[] {
    const list: ConnectionStatus[] = [];
    for (const t of this.#targets.values()) {
      const live = t.session !== undefined && !t.session.closed;
      if (!live && t.state === "established") continue;
      list.push({
        address: t.address,
        peer: t.peer,
        direction: "outbound",
        state: live && t.session!.established ? "established" : t.state,
        since: t.since,
        lastError: t.lastError,
        nextAttempt: t.nextAttempt,
      });
    }
    return list;
  }

  /** Targets that keep failing, and why. */
  diagnostics(): Diagnostic[] {
    return [...this.#targets.values()].map(targetDiagnostic).filter((d) => d !== undefined);
  }

  /** Whether a session is the live dial of some target (so the mesh need not list it). */
  isTargetSession(session: Session): boolean {
    for (const t of this.#targets.values()) if (t.session === session) return true;
    return false;
  }

  #add(address: string, options: { discovered: boolean }): Target {
    const target: Target = {
      address,
      discovered: options.discovered,
      state: "connecting",
      since: this.#options.clock.now(),
      attempts: 0,
    };
    this.#targets.set(address, target);
    return target;
  }

  #drop(target: Target): void {
    if (target.timer !== undefined) this.#options.clock.clearTimeout(target.timer);
    this.#targets.delete(target.address);
    // A connection still handshaking for this target is abandoned; an established one stays.
    if (target.session && !target.session.established) target.session.close("target forgotten");
  }

  #dial(target: Target): void {
    const { clock, connLimit } = this.#options;
    if (!this.#running || target.isSelf) return;
    if (target.timer !== undefined) clock.clearTimeout(target.timer);
    if (this.#options.isLocal(target.address)) {
      target.isSelf = true;
      target.state = "self";
      return;
    }
    target.timer = undefined;
    target.nextAttempt = undefined;
    if (target.peer !== undefined && this.#options.connected(target.peer)) {
      // Already connected to whoever lives there (e.g. they dialled us first).
      target.state = "established";
      return;
    }
    if (this.#options.sessionCount() >= connLimit) {
      this.#retry(target, `connection limit ${connLimit} reached`);
      return;
    }
    target.state = "connecting";
    target.since = clock.now();
    target.session = this.#options.open(this.#options.transport.dial(target.address));
  }

  #retry(target: Target, reason: string): void {
    const { clock, retryMinMs, retryMaxMs } = this.#options;
    if (!this.#running || this.#targets.get(target.address) !== target) return;
    target.session = undefined;
    if (target.peer !== undefined && this.#options.connected(target.peer)) {
      // Lost a duplicate race: the pair is connected the other way round.
      target.state = "established";
      target.lastError = undefined;
      return;
    }
    if (target.isSelf) {
      target.state = "self";
      target.lastError = undefined;
      return;
    }
    target.lastError = reason;
    target.state = target.state === "established" ? "retrying" : "failed";
    target.since = clock.now();
    const base = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(target.attempts, 30));
    target.attempts++;
    const delay = Math.round(base * (0.75 + 0.5 * this.#options.random()));
    target.nextAttempt = clock.now() + delay;
    target.timer = clock.setTimeout(() => this.#dial(target), delay);
  }
}
