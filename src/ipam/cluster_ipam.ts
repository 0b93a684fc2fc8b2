/**
 * Cluster-wide IPAM: the allocation book of this node over the ranges the ring says it owns,
 * plus the protocol that moves ranges between peers (requests, donations, leave, reclaim).
 *
 * It talks to other peers only through `IpamTransport` (the agent adapts the mesh to it) and
 * reads time only through `now`, so a whole cluster runs deterministically in one test process.
 * Nothing here waits on a timer: the owner calls `tick()` (the agent every second or so, a test
 * whenever it advances its clock) and that drives retries, timeouts and automatic reclaim.
 */
import { type AddressRange, type Cidr, cidrToRange, formatCidr, formatRange } from "../net/cidr.ts";
import { AllocationBook } from "./book.ts";
import { type AllocateOptions, openCommon } from "./common.ts";
import { Allocator } from "./allocator.ts";
import { CannotAdoptError, NoSpaceError, NotReadyError, StoreUnavailableError } from "./errors.ts";
import { ipamDiagnostics } from "./diagnostics.ts";
import { LocalRing } from "./local_ring.ts";
import type { Message } from "./protocol.ts";
import { IpamWire } from "./wire.ts";
import { Reachability } from "./reachability.ts";
import { isDead, livePeers } from "./ring.ts";
import { encodeRing } from "./ring_codec.ts";
import { giveRange } from "./ring_writes.ts";
import { chooseDonation, donorsInOrder, leaveRecipient } from "./space.ts";
import { Handovers, SpaceRequests } from "./space_exchange.ts";
import { notReadyReason, type PeerView } from "./standing.ts";
import { clusterStatus, noSpaceMessage, reclaimUnfinished, ringSegments } from "./status.ts";
import { type Allocation, WatchedStore } from "./store.ts";
import type {
  ClusterIpamOptions,
  ClusterIpamStatus,
  Diagnostic,
  IpamEvent,
  IpamInit,
} from "./cluster_types.ts";

export class ClusterIpam implements Disposable {
  #store: WatchedStore;
  #cluster: Cidr;
  #me: string;
  #wire: IpamWire;
  #init: IpamInit;
  #now: () => number;
  #resendMs: number;
  #gossipIntervalMs: number;
  #reclaimAfterMs: number | undefined;
  #removalGraceMs: number;
  #onEvent: (event: IpamEvent) => void;
  #book: AllocationBook;
  #allocator: Allocator;
  #ring: LocalRing;
  #requests: SpaceRequests;
  #handovers: Handovers;
  #reachability = new Reachability();
  /** When the store outage we last logged began (one log line per outage). */
  #reportedFailure: number | undefined;
  /** After leave(): we only finish the hand-over; anything else would rejoin the ring. */
  #left = false;
  #closed = false;

  private constructor(options: ClusterIpamOptions) {
    this.#store = new WatchedStore(options.store, () => this.#now());
    this.#cluster = options.clusterRange;
    this.#me = options.peerName;
    this.#init = options.init;
    this.#now = options.now ?? Date.now;
    this.#resendMs = options.resendMs ?? 1000;
    this.#gossipIntervalMs = options.gossipIntervalMs ?? 30_000;
    this.#reclaimAfterMs = options.reclaimAfterMs;
    this.#removalGraceMs = options.removalGraceMs ?? 10_000;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#book = new AllocationBook(this.#store, options.clusterRange);
    this.#ring = LocalRing.load({
      store: this.#store,
      book: this.#book,
      cluster: options.clusterRange,
      me: options.peerName,
      init: options.init,
      onEvent: this.#onEvent,
      signer: options.signer,
      now: () => this.#now(),
      canAcknowledge: (name) =>
        (this.#reachability.unreachableFor(name, this.#now()) ?? -1) >= this.#removalGraceMs,
    });
    this.#wire = new IpamWire(options.transport, {
      me: options.peerName,
      gen: () => this.#ring.gen,
      now: () => this.#now(),
      random: options.random ?? Math.random,
      signer: options.signer,
    });
    this.#requests = new SpaceRequests(this.#wire, {
      timeoutMs: options.requestTimeoutMs ?? 2000,
      noSpace: (subnet, asked) =>
        new NoSpaceError(noSpaceMessage(this.status(), { subnet, asked })),
    });
    this.#handovers = new Handovers(this.#wire, { resendMs: this.#resendMs });
    this.#allocator = new Allocator(this.#book, {
      cluster: options.clusterRange,
      me: options.peerName,
      now: () => this.#now(),
      owned: () => this.#ring.owned(),
      checkReady: () => {
        this.#checkOpen();
        if (this.#left) throw new NotReadyError(`IPAM on peer "${this.#me}" has left the ring`);
        const waiting = this.#waitingFor();
        if (waiting) throw new NotReadyError(`IPAM on peer "${this.#me}" is not ready: ${waiting}`);
      },
      wantSpace: (subnet) => this.#requests.want(subnet, () => this.#donors(subnet)),
    });
  }

  static open(options: ClusterIpamOptions): Promise<ClusterIpam> {
    return Promise.resolve().then(() => {
      openCommon(options.store, options.clusterRange, options.peerName);
      const ipam = new ClusterIpam(options);
      options.transport.onMessage?.((from, message) => ipam.handleMessage(from, message));
      options.transport.onState?.((from, text) => ipam.handleState(from, text));
      ipam.#settle();
      ipam.#pullIfWaiting();
      return ipam;
    });
  }

  get peerName(): string {
    return this.#me;
  }

  /** Who owns which part of the range, in address order (for the topology page). */
  segments(): Array<{ start: number; end: number; owner: string }> {
    return ringSegments(this.#ring.state);
  }

  /** This peer's ring state, encoded (for `GET /ring`). */
  ringState(): string {
    return encodeRing(this.#ring.state);
  }

  /**
   * The address of (containerId, ifname), allocating one if it has none: idempotent, never the
   * same address twice. NotReadyError, NoSpaceError, StoreUnavailableError when it cannot.
   */
  allocate(containerId: string, options: AllocateOptions = {}): Promise<Allocation> {
    return this.#allocator.allocate(containerId, options);
  }

  /** The allocations of a container (one interface, or all). */
  lookup(containerId: string, ifname?: string): Allocation[] {
    return this.#allocator.lookup(containerId, ifname);
  }

  /** Releases (containerId, ifname), or every interface of the container; returns what went. */
  release(containerId: string, ifname?: string): Allocation[] {
    return this.#allocator.release(containerId, ifname);
  }

  /** CNI GC: releases every allocation not in `valid` and not kept by `keep`. */
  retainOnly(
    valid: Array<{ containerId: string; ifname: string }>,
    options: { keep?: (allocation: Allocation) => boolean } = {},
  ): Allocation[] {
    return this.#allocator.retainOnly(valid, options);
  }

  list(): Allocation[] {
    return this.#book.list();
  }

  /**
   * Merges a peer's gossiped state. Safe to call with anything: bad input is logged and dropped.
   * Returns false when the state could not be taken in because our store cannot write it (then
   * nothing of it is kept; the sender resends or gossips it again).
   */
  handleState(from: string, text: string): boolean {
    if (this.#closed || this.#left || from === this.#me) return true;
    let received;
    try {
      received = this.#ring.receive(from, text);
    } catch (error) {
      this.#storeFailed(error, `a state from "${from}" was not taken in`);
      return false;
    }
    // A removed peer back with its old identity: our state tells it to start clean.
    if (received.removedSender) this.#tellRemoved(from);
    else if (received.changed) this.#broadcast(false);
    return true;
  }

  /** Handles a unicast protocol message from a peer. */
  handleMessage(from: string, text: string): void {
    if (this.#closed || from === this.#me) return;
    const message = this.#wire.open(from, text);
    if ("refused" in message) {
      this.#event("ignored", `Ignored IPAM message from "${from}": ${message.refused}`);
      return;
    }
    if (this.#left && message.t !== "ack") return;
    if (message.t === "req" && isDead(this.#ring.state, from, message.gen)) {
      this.#event("ignored", `Ignored space request from removed peer "${from}"`);
      this.#tellRemoved(from);
      return;
    }
    switch (message.t) {
      case "req":
        return this.#donate(from, message);
      case "give": {
        // Unacknowledged, a give is resent; acknowledged, it must be on our disk.
        if (!this.handleState(from, message.state)) return;
        this.#wire.send(from, { t: "ack", id: message.id });
        this.#requests.given(message.id);
        return;
      }
      case "state":
        this.handleState(from, message.state);
        return;
      case "pull":
        this.#wire.send(from, { t: "state", id: message.id, state: encodeRing(this.#ring.state) });
        return;
      case "none":
        return this.#requests.refused(from, message.id, message.why);
      case "ack":
        return this.#handovers.acked(message.id);
    }
  }

  /**
   * Removes a peer that is gone for good and lets its space be reused. Idempotent and the same
   * whoever runs it (the result is a tombstone for the peer's generation), so running it on
   * several nodes at once reclaims exactly once. Returns the addresses the peer owned.
   */
  rmpeer(name: string): { peer: string; gen: number; addresses: number } {
    this.#checkOpen();
    const { gen, addresses } = this.#ring.remove(name);
    this.#reachability.forget(name);
    this.#broadcast(false);
    return { peer: name, gen, addresses };
  }

  /**
   * Leaves cleanly: gives every owned range to one live, reachable peer, forgets all
   * allocations and marks this peer as left. Resolves once the recipient acknowledged, or after
   * the request timeout (ticks) when it did not; the ring is gossiped either way.
   */
  leave(): Promise<{ givenTo: string | undefined; addresses: number }> {
    this.#checkOpen();
    const recipient = leaveRecipient(this.#ring.state, {
      me: this.#me,
      reachable: this.#wire.reachable(),
    });
    const addresses = this.#ring.leave(recipient);
    this.#left = true;
    this.#broadcast(true);
    if (!recipient) return Promise.resolve({ givenTo: undefined, addresses });
    const id = this.#wire.newId();
    this.#wire.send(recipient.name, { t: "give", id, state: encodeRing(this.#ring.state) });
    return new Promise((resolve) => {
      this.#handovers.sent(id, recipient.name, {
        maxTries: 3,
        done: () => resolve({ givenTo: recipient.name, addresses }),
      });
    });
  }

  /** Drives time: request timeouts, donation resends, gossip, automatic reclaim. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    if (this.#left) return this.#resendGives(now);
    this.#requests.tick(now);
    this.#resendGives(now);
    try {
      // While the store fails, a write of what we have probes whether it works again.
      if (this.#store.failure) this.#ring.flush();
      this.#trackReachability(now);
      this.#settle();
    } catch (error) {
      this.#storeFailed(error, "the periodic update was not written; retrying");
      return;
    }
    this.#pullIfWaiting();
    // A reclaim finishes only when every live peer has acknowledged it, and a broadcast can be
    // lost (e.g. sent along a path through the peer that just died). While one is unfinished,
    // re-send our state as often as donations are re-sent rather than every gossip interval.
    const interval = reclaimUnfinished(this.#ring.state) ? this.#resendMs : this.#gossipIntervalMs;
    if (now - this.#wire.lastGossipAt >= interval) this.#broadcast(true);
  }

  #resendGives(now: number): void {
    this.#handovers.tick(now, (id) => ({ t: "give", id, state: encodeRing(this.#ring.state) }));
  }

  /**
   * Operator action for the case no live peer owns any space (every owner was removed or left
   * with nobody to hand to): this peer takes the orphaned space once every live peer has seen
   * the removals. Run it on ONE node: it is the one step the protocol cannot make safe by
   * itself, since two peers cut off from each other could both adopt.
   */
  adoptOrphans(): { orphaned: number } {
    this.#checkOpen();
    if (this.#left) {
      throw new CannotAdoptError(
        `Cannot adopt on peer "${this.#me}": it left the ring`,
        "not-live",
      );
    }
    const adopted = this.#ring.adopt();
    this.#broadcast(false);
    return adopted;
  }

  /** Why this peer's IPAM is not ready or not healthy, with what to do (GET /status). */
  diagnostics(): Diagnostic[] {
    const owned = this.#ownedCounts();
    const used = owned.reduce((sum, r) => sum + r.used, 0);
    return ipamDiagnostics({
      ...this.#view(),
      left: this.#left,
      owned: owned.reduce((sum, r) => sum + r.range.end - r.range.start, 0),
      strayAllocations: this.#book.size - used,
      integrity: this.#ring.integrity,
      now: this.#now(),
      store: this.#store.failure && {
        error: this.#store.failure.error,
        forMs: this.#now() - this.#store.failure.since,
      },
    });
  }

  /** Gossips the state now (e.g. when the mesh connects a new peer). */
  gossip(): void {
    this.#broadcast(true);
  }

  status(): ClusterIpamStatus {
    return clusterStatus({
      ...this.#view(),
      owned: this.#ownedCounts(),
      allocations: this.#book.size,
      waitingFor: this.#waitingFor(),
      pendingRequests: this.#requests.size,
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#requests.close(new NotReadyError(`IPAM on peer "${this.#me}" is closing`));
    this.#store.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  // ---- internals ----

  /** Our ranges with the book's counts in each. */
  #ownedCounts(): Array<{ range: AddressRange; size: number; used: number }> {
    return this.#ring.owned().map((range) => ({
      range,
      size: this.#book.usableIn(range),
      used: this.#book.usedIn(range),
    }));
  }

  #checkOpen(): void {
    if (this.#closed) throw new NotReadyError(`IPAM on peer "${this.#me}" is closed`);
  }

  /**
   * A write failed. A StoreUnavailableError is logged once per outage (status and diagnostics
   * keep saying it until a write succeeds); anything else is a bug and propagates.
   */
  #storeFailed(error: unknown, consequence: string): void {
    if (!(error instanceof StoreUnavailableError)) throw error;
    if (this.#store.failure?.since !== this.#reportedFailure) {
      this.#reportedFailure = this.#store.failure?.since;
      this.#event("store", `${error.message} (${consequence})`);
    }
  }

  /** Why allocation cannot proceed, or undefined when it can. */
  #waitingFor(): string | undefined {
    return notReadyReason(this.#view());
  }

  /** What readiness, status and diagnostics read; `reachable` asks the mesh only if read. */
  #view(): PeerView {
    const wire = this.#wire;
    let reachable: Set<string> | undefined;
    return {
      state: this.#ring.state,
      me: this.#me,
      gen: this.#ring.gen,
      init: this.#init,
      cluster: this.#cluster,
      get reachable() {
        return reachable ??= wire.reachable();
      },
      mustHear: this.#ring.mustHear,
      cutOffMs: this.#reachability.cutOffFor(this.#now()),
      reclaimAfterMs: this.#reclaimAfterMs,
    };
  }

  /**
   * Runs the steps that follow time passing or a merge. Only news we wrote is gossiped at once:
   * re-broadcasting what we merged from others would make every change cost N^2 messages (the
   * mesh already relays broadcasts to every peer); the periodic gossip in tick() repairs what
   * was lost.
   */
  #settle(): void {
    if (this.#ring.settle()) this.#broadcast(false);
  }

  /**
   * Peers gossip only their own news, so a peer that restarted or has no ring yet asks the
   * reachable peers for their states instead of waiting for the periodic gossip.
   */
  #pullIfWaiting(): void {
    if (!this.#ring.mustHear && this.#ring.state.ringId !== "") return;
    for (const peer of this.#wire.reachable()) {
      this.#wire.send(peer, { t: "pull", id: this.#wire.newId() });
    }
  }

  /** Our state, to a removed peer only, so that it learns it was removed and starts clean. */
  #tellRemoved(peer: string): void {
    this.#wire.send(peer, { t: "state", id: "", state: encodeRing(this.#ring.state) });
  }

  #broadcast(force: boolean): void {
    if (!this.#closed) this.#wire.broadcast(this.#ring.state, force);
  }

  #event(kind: IpamEvent["kind"], message: string): void {
    this.#onEvent({ kind, message });
  }

  /** The peers to ask for space in `subnet` (or anywhere), best first. */
  #donors(subnet: Cidr | undefined): string[] {
    this.#ring.refreshRecord();
    return donorsInOrder(this.#ring.state, {
      me: this.#me,
      reachable: this.#wire.reachable(),
      scope: cidrToRange(subnet ?? this.#cluster),
      subnet: subnet !== undefined,
    });
  }

  /** Answers a space request with half of our largest free run, or "none". */
  #donate(to: string, message: Extract<Message, { t: "req" }>): void {
    const choice = chooseDonation(this.#ring.state, {
      me: this.#me,
      requester: { name: to, gen: message.gen },
      ready: this.#waitingFor() === undefined && !this.#ring.contested,
      owned: this.#ring.owned(),
      scope: message.subnet ?? formatCidr(this.#cluster),
      used: this.#book.list().map((a) => a.address),
      usable: (range) => this.#book.usableIn(range),
    });
    if ("why" in choice) {
      this.#wire.send(to, { t: "none", id: message.id, why: choice.why });
      return;
    }
    const give = choice.give;
    try {
      this.#ring.write((state, from) =>
        giveRange(state, give, { from, to: { name: to, gen: message.gen } })
      );
    } catch (error) {
      // Not on our disk, so not given: the requester asks the next donor.
      this.#storeFailed(error, `no space given to "${to}"`);
      const why = "cannot record a give (its state file fails)";
      this.#wire.send(to, { t: "none", id: message.id, why });
      return;
    }
    this.#event("donated", `Gave ${formatRange(give)} to "${to}"`);
    this.#broadcast(false);
    this.#wire.send(to, { t: "give", id: message.id, state: encodeRing(this.#ring.state) });
    this.#handovers.sent(message.id, to);
  }

  #trackReachability(now: number): void {
    const state = this.#ring.state;
    const others = livePeers(state).filter((p) => p.name !== this.#me).map((p) => p.name);
    // Removed peers too: their removal is acknowledged only after the grace period out of reach.
    const removed = Object.keys(state.tombstones).filter((name) => name !== this.#me);
    const majority = this.#reachability.update(now, this.#wire.reachable(), { others, removed });
    if (this.#reclaimAfterMs === undefined || !majority) return;
    // Only a peer that reaches a majority reclaims, so a cut-off minority never takes the
    // majority's space; the minority stops allocating at half the delay (see #waitingFor).
    for (const [name, away] of this.#reachability.overdue(now, this.#reclaimAfterMs)) {
      this.#event("reclaim", `Peer "${name}" unreachable for ${away} ms: reclaiming its space`);
      this.rmpeer(name);
    }
  }
}
