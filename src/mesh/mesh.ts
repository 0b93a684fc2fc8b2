/**
 * The mesh: connections to other peers, the gossiped topology, routes, and unicast messages.
 *
 * Everything runs on callbacks and the passed-in clock (no awaits after start), so a thousand
 * meshes share one process and one simulated clock in the bench. Cost model: a change is pushed
 * once along a fan-out-capped spanning tree (and to neighbours the view cannot place yet); a
 * quiet mesh exchanges only heartbeats and a fixed-size digest per link per round; summaries go
 * only over links whose digests differ. See docs/mesh.md.
 */
import { type Clock, systemClock, type TimerId } from "./clock.ts";
import { DEFAULT_PORT, hostOf, normalizeAddress } from "./address.ts";
import { loadIdentity, newIncarnation } from "./identity.ts";
import { compareRecords, type ConnectionInfo, parseRecord, type PeerRecord } from "./record.ts";
import { computeRoutes, type RouteTable } from "./routes.ts";
import { Topology } from "./topology.ts";
import { type Frame, type LocalPeer, Session } from "./session.ts";
import type { Link, Transport } from "./transport.ts";
import { WebSocketTransport } from "./websocket_transport.ts";
import { MalformedFrameError } from "./errors.ts";
import type {
  ConnectionState,
  ConnectionStatus,
  MeshEvent,
  MeshMetrics,
  MeshOptions,
  MessageHandler,
  PeerStatus,
} from "./types.ts";

interface Target {
  address: string;
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
  /** Connected to ourselves: never retried. */
  isSelf?: boolean;
}

const MESSAGE_TTL = 32;
/** Broadcast ids remembered to drop copies that arrive twice while trees disagree. */
const SEEN_BROADCASTS = 4096;

export class Mesh {
  readonly name: string;
  readonly nickname: string;
  #incarnation: string;
  #options: Required<
    Pick<
      MeshOptions,
      | "discovery"
      | "connLimit"
      | "heartbeatMs"
      | "deadAfterMs"
      | "handshakeTimeoutMs"
      | "gossipIntervalMs"
      | "batchMs"
      | "routeDelayMs"
      | "ageOutMs"
      | "retryMinMs"
      | "retryMaxMs"
      | "maxFrameBytes"
    >
  >;
  #clock: Clock;
  #random: () => number;
  #transport: Transport;
  #secret?: Uint8Array;
  #log: (message: string) => void;
  #port = 0;
  #listenAddress = "";
  #running = false;
  /** Set by stop(): closing connections then must not arm new timers. */
  #stopped = false;

  #version = 0;
  #data: Record<string, string> = {};
  #topology = new Topology();

  #targets = new Map<string, Target>();
  #forgotten = new Set<string>();
  #sessions = new Set<Session>();
  #byPeer = new Map<string, Session>();

  #routes: RouteTable = { nextHop: new Map(), reachable: new Set(), treeNeighbors: new Set() };
  #routesDirty = false;
  #routesTimer?: TimerId;
  #localDirty = false;
  #localTimer?: TimerId;
  /** Record names to push, each with the neighbours known to hold it already (not echoed). */
  #outbox = new Map<string, Set<string>>();
  #flushTimer?: TimerId;
  #tickTimer?: TimerId;
  #lastSummary = new WeakMap<Session, number>();
  #lastTickDigest = "";
  /** A neighbour's digest differed from ours since the last round. */
  #disagreed = false;

  #handlers = new Map<string, MessageHandler[]>();
  #broadcastSeq = 0;
  #seenBroadcasts = new Set<string>();
  #listeners = new Map<MeshEvent, Array<(peer: PeerStatus) => void>>();
  #terminations = 0;
  #bytesSent = 0;
  #bytesReceived = 0;

  /** Loads the identity (state dir, machine id) and builds a stopped mesh. */
  static async create(options: MeshOptions = {}): Promise<Mesh> {
    const clock = options.clock ?? systemClock;
    const identity = await loadIdentity({
      stateDir: options.stateDir,
      name: options.name,
      nickname: options.nickname,
      now: clock.now(),
    });
    return new Mesh(identity, options);
  }

  constructor(
    identity: { name: string; nickname: string; incarnation?: string },
    options: MeshOptions = {},
  ) {
    this.name = identity.name;
    this.nickname = identity.nickname;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#incarnation = identity.incarnation ?? newIncarnation(this.#clock.now());
    this.#options = {
      discovery: options.discovery ?? true,
      connLimit: options.connLimit ?? 200,
      heartbeatMs: options.heartbeatMs ?? 1000,
      deadAfterMs: options.deadAfterMs ?? 4000,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
      gossipIntervalMs: options.gossipIntervalMs ?? 5000,
      batchMs: options.batchMs ?? 50,
      routeDelayMs: options.routeDelayMs ?? 100,
      ageOutMs: options.ageOutMs ?? 300_000,
      retryMinMs: options.retryMinMs ?? 1000,
      retryMaxMs: options.retryMaxMs ?? 60_000,
      maxFrameBytes: options.maxFrameBytes ?? 8 << 20,
    };
    const password = options.password;
    if (password !== undefined && password !== "") {
      this.#secret = typeof password === "string" ? new TextEncoder().encode(password) : password;
    }
    this.#log = options.log ?? (() => {});
    this.#transport = options.transport ??
      new WebSocketTransport({
        host: options.host,
        port: options.port ?? DEFAULT_PORT,
        tls: options.tls,
        caCerts: options.caCerts,
      });
    this.#port = options.port ?? DEFAULT_PORT;
    this.#publishLocal();
    for (const peer of options.peers ?? []) this.#addTarget(normalizeAddress(peer), false);
  }

  get incarnation(): string {
    return this.#incarnation;
  }

  /** The bound `host:port` once started. */
  get address(): string {
    return this.#listenAddress;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#listenAddress = await this.#transport.listen((link) => this.#accept(link));
    this.#port = Number(this.#listenAddress.slice(this.#listenAddress.lastIndexOf(":") + 1));
    this.#running = true;
    for (const target of this.#targets.values()) this.#dial(target);
    this.#scheduleTick();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopped = true;
    for (const timer of [this.#tickTimer, this.#flushTimer, this.#routesTimer, this.#localTimer]) {
      if (timer !== undefined) this.#clock.clearTimeout(timer);
    }
    for (const target of this.#targets.values()) {
      if (target.timer !== undefined) this.#clock.clearTimeout(target.timer);
    }
    for (const session of [...this.#sessions]) session.close("mesh stopped");
    await this.#transport.close();
  }

  // ---- local data -------------------------------------------------------------------------

  /** Attaches an opaque blob to this peer's record (e.g. "datapath", "ipam") and gossips it. */
  setLocalData(key: string, blob: string): void {
    if (this.#data[key] === blob) return;
    this.#data = { ...this.#data, [key]: blob };
    this.#markLocalDirty();
  }

  /** Removes a blob from this peer's record. */
  deleteLocalData(key: string): void {
    if (!(key in this.#data)) return;
    const { [key]: _, ...rest } = this.#data;
    this.#data = rest;
    this.#markLocalDirty();
  }

  // ---- status -----------------------------------------------------------------------------

  peers(): PeerStatus[] {
    this.#refreshRoutesIfDirty();
    return [...this.#topology.records.values()].map((r) => this.#status(r)).sort((a, b) =>
      a.name < b.name ? -1 : 1
    );
  }

  peer(name: string): PeerStatus | undefined {
    this.#refreshRoutesIfDirty();
    const record = this.#topology.get(name);
    return record && this.#status(record);
  }

  /**
   * Live connections (both directions, handshaking included) and targets still waiting for one.
   * A target whose peer is connected through the other direction is not listed twice.
   */
  connections(): ConnectionStatus[] {
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
    const targeted = new Set([...this.#targets.values()].map((t) => t.session));
    for (const s of this.#sessions) {
      if (s.direction === "outbound") {
        // a live connection whose address was forgotten: still up until it breaks, never redialled
        if (targeted.has(s) || s.closed) continue;
        list.push({
          address: s.link.remoteAddress,
          peer: s.remote?.name,
          direction: "outbound",
          state: s.established ? "established" : "connecting",
          since: s.establishedAt ?? s.since,
        });
        continue;
      }
      list.push({
        address: s.link.remoteAddress,
        peer: s.remote?.name,
        direction: "inbound",
        state: s.established ? "established" : "connecting",
        since: s.establishedAt ?? s.since,
      });
    }
    return list;
  }

  /** The addresses this peer keeps trying to reach (given and discovered). */
  targets(): string[] {
    return [...this.#targets.keys()].sort();
  }

  /** Adds a target (or, with `replace`, makes it the only given target) and dials it now. */
  connect(address: string, options: { replace?: boolean } = {}): void {
    const normalized = normalizeAddress(address);
    if (options.replace) {
      for (const t of [...this.#targets.values()]) {
        if (t.address !== normalized) this.#dropTarget(t);
      }
    }
    this.#forgotten.delete(normalized);
    const existing = this.#targets.get(normalized);
    if (existing) {
      existing.discovered = false;
      if (existing.state !== "established" && existing.state !== "connecting") {
        existing.attempts = 0;
        this.#dial(existing);
      }
      return;
    }
    const target = this.#addTarget(normalized, false);
    if (this.#running) this.#dial(target);
  }

  /** Stops (re)connecting to an address; an open connection stays until it drops. */
  forget(address: string): void {
    const normalized = normalizeAddress(address);
    this.#forgotten.add(normalized);
    const target = this.#targets.get(normalized);
    if (target) this.#dropTarget(target);
  }

  nextHop(peer: string): string | undefined {
    if (this.#byPeer.has(peer)) return peer;
    this.#refreshRoutesIfDirty();
    const hop = this.#routes.nextHop.get(peer);
    return hop !== undefined && this.#byPeer.has(hop) ? hop : undefined;
  }

  routes(): Record<string, string> {
    this.#refreshRoutesIfDirty();
    const table: Record<string, string> = {};
    for (const name of this.#topology.records.keys()) {
      if (name === this.name) continue;
      const hop = this.nextHop(name);
      if (hop !== undefined) table[name] = hop;
    }
    return table;
  }

  /** The key derived for the current connection to `peer`; undefined without a password. */
  sessionKey(peer: string): Uint8Array | undefined {
    return this.#byPeer.get(peer)?.sessionKey;
  }

  /** Sends `payload` to `peer` hop by hop; false when there is no route right now. */
  send(peer: string, channel: string, payload: string): boolean {
    if (peer === this.name) {
      this.#deliver(channel, payload, this.name);
      return true;
    }
    return this.#forward({
      t: "msg",
      src: this.name,
      dst: peer,
      ch: channel,
      p: payload,
      ttl: MESSAGE_TTL,
    });
  }

  /**
   * Sends `payload` to every peer reachable now, once each, along the broadcast tree (best
   * effort, like `send`): one frame per tree link instead of one unicast per peer. Handlers
   * registered with `onMessage(channel)` receive it with `from` set to this peer's name.
   */
  broadcast(channel: string, payload: string): void {
    const id = `${this.#incarnation}.${++this.#broadcastSeq}`;
    this.#remember(`${this.name}/${id}`);
    this.#fanOut({ t: "bcast", src: this.name, id, ch: channel, p: payload }, undefined);
  }

  onMessage(channel: string, handler: MessageHandler): void {
    const list = this.#handlers.get(channel) ?? [];
    list.push(handler);
    this.#handlers.set(channel, list);
  }

  on(event: MeshEvent, handler: (peer: PeerStatus) => void): void {
    const list = this.#listeners.get(event) ?? [];
    list.push(handler);
    this.#listeners.set(event, list);
  }

  metrics(): MeshMetrics {
    const connections: Record<ConnectionState, number> = {
      connecting: 0,
      established: 0,
      failed: 0,
      retrying: 0,
    };
    for (const c of this.connections()) connections[c.state]++;
    return {
      connections,
      terminations: this.#terminations,
      gossipBytesSent: this.#bytesSent,
      gossipBytesReceived: this.#bytesReceived,
    };
  }

  /** The current topology digest; equal digests mean equal views (for tests and the bench). */
  digest(): string {
    return this.#topology.digest();
  }

  // ---- connections ------------------------------------------------------------------------

  #addTarget(address: string, discovered: boolean): Target {
    const target: Target = {
      address,
      discovered,
      state: "connecting",
      since: this.#clock.now(),
      attempts: 0,
    };
    this.#targets.set(address, target);
    return target;
  }

  #dropTarget(target: Target): void {
    if (target.timer !== undefined) this.#clock.clearTimeout(target.timer);
    this.#targets.delete(target.address);
    // A connection still handshaking for this target is abandoned; an established one stays.
    if (target.session && !target.session.established) target.session.close("target forgotten");
  }

  #localPeer = (): LocalPeer => ({
    name: this.name,
    nickname: this.nickname,
    incarnation: this.#incarnation,
    port: this.#port,
  });

  #newSession(link: Link, direction: "outbound" | "inbound"): Session {
    const session = new Session(link, {
      direction,
      local: this.#localPeer,
      secret: this.#secret,
      clock: this.#clock,
      heartbeatMs: this.#options.heartbeatMs,
      deadAfterMs: this.#options.deadAfterMs,
      handshakeTimeoutMs: this.#options.handshakeTimeoutMs,
      maxFrameBytes: this.#options.maxFrameBytes,
      onEstablished: (s) => this.#established(s),
      onFrame: (s, frame) => this.#frame(s, frame),
      onClosed: (s, reason) => this.#closed(s, reason),
      onBytes: (sent, received) => {
        this.#bytesSent += sent;
        this.#bytesReceived += received;
      },
    });
    this.#sessions.add(session);
    return session;
  }

  #accept(link: Link): void {
    if (!this.#running || this.#sessions.size >= this.#options.connLimit) {
      link.close(`connection limit ${this.#options.connLimit} reached`);
      return;
    }
    this.#newSession(link, "inbound");
  }

  #dial(target: Target): void {
    if (!this.#running || target.isSelf) return;
    if (target.timer !== undefined) this.#clock.clearTimeout(target.timer);
    target.timer = undefined;
    target.nextAttempt = undefined;
    if (target.peer !== undefined && this.#byPeer.has(target.peer)) {
      // Already connected to whoever lives there (e.g. they dialled us first).
      target.state = "established";
      return;
    }
    if (this.#sessions.size >= this.#options.connLimit) {
      this.#retry(target, `connection limit ${this.#options.connLimit} reached`);
      return;
    }
    target.state = "connecting";
    target.since = this.#clock.now();
    target.session = this.#newSession(this.#transport.dial(target.address), "outbound");
  }

  #retry(target: Target, reason: string): void {
    if (!this.#running || this.#targets.get(target.address) !== target) return;
    target.session = undefined;
    if (target.peer !== undefined && this.#byPeer.has(target.peer)) {
      // Lost a duplicate race: the pair is connected the other way round.
      target.state = "established";
      target.lastError = undefined;
      return;
    }
    target.lastError = reason;
    if (target.isSelf) {
      target.state = "failed";
      return;
    }
    target.state = target.state === "established" ? "retrying" : "failed";
    target.since = this.#clock.now();
    const base = Math.min(
      this.#options.retryMaxMs,
      this.#options.retryMinMs * 2 ** Math.min(target.attempts, 30),
    );
    target.attempts++;
    const delay = Math.round(base * (0.75 + 0.5 * this.#random()));
    target.nextAttempt = this.#clock.now() + delay;
    target.timer = this.#clock.setTimeout(() => this.#dial(target), delay);
  }

  #targetOf(session: Session): Target | undefined {
    if (session.direction !== "outbound") return undefined;
    for (const t of this.#targets.values()) if (t.session === session) return t;
    return undefined;
  }

  #established(session: Session): void {
    const remote = session.remote!;
    const target = this.#targetOf(session);
    if (target) target.peer = remote.name;
    if (remote.name === this.name) {
      if (target) target.isSelf = true;
      session.close("connected to self");
      return;
    }
    const existing = this.#byPeer.get(remote.name);
    if (existing) {
      if (!this.#prefer(session, existing)) {
        session.close("duplicate connection");
        return;
      }
      existing.close("duplicate connection");
    }
    this.#byPeer.set(remote.name, session);
    if (target) {
      target.attempts = 0;
      target.lastError = undefined;
    }
    for (const t of this.#targets.values()) {
      if (t.peer === remote.name) {
        t.state = "established";
        t.since = this.#clock.now();
        t.nextAttempt = undefined;
        if (t.timer !== undefined) this.#clock.clearTimeout(t.timer);
        t.timer = undefined;
      }
    }
    this.#log(`connected to ${remote.name} (${remote.nickname}) via ${session.link.remoteAddress}`);
    this.#markLocalDirty();
    this.#markRoutesDirty();
    // One side opens anti-entropy at once so a new link converges without waiting a round.
    if (session.direction === "outbound") session.send({ t: "digest", h: this.#topology.digest() });
  }

  /** Whether `candidate` should replace `existing` as the connection to the same peer. */
  #prefer(candidate: Session, existing: Session): boolean {
    const a = candidate.remote!, b = existing.remote!;
    if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation;
    // Both ends apply the same rule: keep the connection the lower-named peer initiated.
    const initiator = (s: Session) => (s.direction === "outbound" ? this.name : s.remote!.name);
    const lower = this.name < a.name ? this.name : a.name;
    return initiator(candidate) === lower && initiator(existing) !== lower;
  }

  #closed(session: Session, reason: string): void {
    this.#sessions.delete(session);
    const peer = session.remote?.name;
    const wasCurrent = peer !== undefined && this.#byPeer.get(peer) === session;
    if (wasCurrent) {
      this.#byPeer.delete(peer);
      this.#terminations++;
      this.#log(`connection to ${peer} closed: ${reason}`);
      this.#markLocalDirty();
      this.#markRoutesDirty();
    }
    if (!this.#running) return;
    for (const t of this.#targets.values()) {
      if (t.session === session) this.#retry(t, reason);
      else if (wasCurrent && t.peer === peer && t.session === undefined && t.timer === undefined) {
        this.#retry(t, reason);
      }
    }
  }

  // ---- gossip -----------------------------------------------------------------------------

  #markLocalDirty(): void {
    if (this.#localDirty || this.#stopped) return;
    this.#localDirty = true;
    this.#localTimer = this.#clock.setTimeout(() => {
      this.#localDirty = false;
      this.#publishLocal();
    }, this.#options.batchMs);
  }

  #publishLocal(): void {
    const connections: ConnectionInfo[] = [];
    for (const [peer, s] of this.#byPeer) {
      const address = s.direction === "outbound"
        ? s.link.remoteAddress
        : `${hostOf(s.link.remoteAddress)}:${s.remote!.port}`;
      connections.push({ peer, address });
    }
    connections.sort((a, b) => (a.peer < b.peer ? -1 : 1));
    this.#version++;
    const record: PeerRecord = {
      name: this.name,
      nickname: this.nickname,
      incarnation: this.#incarnation,
      version: this.#version,
      connections,
      data: this.#data,
    };
    this.#store(record, undefined);
  }

  /** Installs a record (already known to be newer) and queues it for pushing. */
  #store(record: PeerRecord, from: string | undefined): void {
    const previous = this.#topology.store(record, { now: this.#clock.now() });
    if (!previous || !sameConnections(previous, record)) this.#markRoutesDirty();
    this.#outbox.set(record.name, new Set(from === undefined ? [] : [from]));
    if (this.#flushTimer === undefined && !this.#stopped) {
      this.#flushTimer = this.#clock.setTimeout(() => this.#flush(), this.#options.batchMs);
    }
    if (previous && record.name !== this.name) this.#emit("peer-changed", record);
  }

  /**
   * Pushes queued records along this peer's view of the broadcast tree, plus to neighbours the
   * view does not place yet (a link so new that the other end's record has not arrived). Views
   * that disagree can leave a gap; the digest exchange repairs it within a round.
   */
  #flush(): void {
    this.#flushTimer = undefined;
    if (this.#outbox.size === 0) return;
    const tree = this.#routes.treeNeighbors;
    const reachable = this.#routes.reachable;
    const names = [...this.#outbox.keys()];
    // Most neighbours get the same subset: encode each distinct subset once.
    const frames = new Map<string, string[]>();
    for (const [peer, session] of this.#byPeer) {
      const picked: number[] = [];
      if (!tree.has(peer) && reachable.has(peer)) continue;
      names.forEach((name, i) => {
        if (!this.#outbox.get(name)!.has(peer)) picked.push(i);
      });
      if (picked.length === 0) continue;
      const key = picked.length === names.length ? "all" : picked.join(",");
      let list = frames.get(key);
      if (!list) {
        const encoded = picked.map((i) => this.#topology.meta(names[i])?.encoded)
          .filter((e): e is string => e !== undefined);
        frames.set(key, list = this.#frames(encoded));
      }
      for (const frame of list) session.sendText(frame);
    }
    this.#outbox.clear();
  }

  /** Encodes records into gossip frames that stay well under the frame limit. */
  #frames(encoded: string[]): string[] {
    const limit = Math.max(1024, this.#options.maxFrameBytes >> 1);
    const frames: string[] = [];
    let batch: string[] = [];
    let size = 0;
    for (const e of encoded) {
      if (batch.length > 0 && size + e.length > limit) {
        frames.push(`{"t":"gossip","r":[${batch.join(",")}]}`);
        batch = [];
        size = 0;
      }
      batch.push(e);
      size += e.length + 1;
    }
    if (batch.length > 0) frames.push(`{"t":"gossip","r":[${batch.join(",")}]}`);
    return frames;
  }

  #frame(session: Session, frame: Frame): void {
    try {
      switch (frame.t) {
        case "gossip":
          return this.#receiveGossip(session, frame);
        case "digest":
          return this.#receiveDigest(session, frame);
        case "summary":
          return this.#receiveSummary(session, frame);
        case "bcast":
          return this.#receiveBroadcast(session, frame);
        case "msg":
          return this.#receiveMessage(frame);
        default:
          throw new MalformedFrameError(`Unknown frame type "${String(frame.t).slice(0, 40)}"`);
      }
    } catch (error) {
      if (!(error instanceof MalformedFrameError)) throw error;
      session.close(error.message);
    }
  }

  #receiveGossip(session: Session, frame: Frame): void {
    if (!Array.isArray(frame.r)) throw new MalformedFrameError("Gossip frame without records");
    const records = frame.r.map(parseRecord);
    const from = session.remote!.name;
    for (const record of records) this.#merge(record, from);
  }

  #merge(record: PeerRecord, from: string): void {
    if (record.name === this.name) {
      this.#overrule(record);
      return;
    }
    if (!this.#topology.isNews(record)) {
      // The same news from a second neighbour while it waits to go out: spare that one the echo.
      const current = this.#topology.get(record.name);
      if (current && compareRecords(record, current) === 0) {
        this.#outbox.get(record.name)?.add(from);
      }
      return;
    }
    this.#store(record, from);
  }

  /** Someone holds a newer record under our name (a previous life, or a clock that stepped). */
  #overrule(record: PeerRecord): void {
    if (compareRecords(record, this.#topology.get(this.name)!) <= 0) return;
    this.#log(
      `overruling a newer record of our own name (${record.incarnation}/${record.version})`,
    );
    if (record.incarnation > this.#incarnation) {
      this.#incarnation = newIncarnation(this.#clock.now(), { after: record.incarnation });
    } else {
      this.#version = record.version;
    }
    this.#publishLocal();
  }

  #receiveDigest(session: Session, frame: Frame): void {
    if (typeof frame.h !== "string") throw new MalformedFrameError("Digest frame without digest");
    if (frame.h === this.#topology.digest()) return;
    this.#disagreed = true;
    this.#sendSummary(session, false);
  }

  #sendSummary(session: Session, reply: boolean): void {
    // At most one unsolicited summary per link per fast round: digests cross in flight.
    const now = this.#clock.now();
    const last = this.#lastSummary.get(session);
    if (!reply && last !== undefined && now - last < this.#options.gossipIntervalMs / 10) return;
    this.#lastSummary.set(session, now);
    session.send({ t: "summary", reply, e: this.#topology.summary() });
  }

  #receiveSummary(session: Session, frame: Frame): void {
    if (!Array.isArray(frame.e)) throw new MalformedFrameError("Summary frame without entries");
    const theirs = new Map<string, [string, number]>();
    for (const entry of frame.e as unknown[]) {
      if (
        !Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "string" ||
        typeof entry[2] !== "number"
      ) {
        throw new MalformedFrameError(`Bad summary entry ${JSON.stringify(entry)?.slice(0, 80)}`);
      }
      theirs.set(entry[0], [entry[1], entry[2]]);
    }
    const { push, theyHaveNewer } = this.#topology.compare(theirs);
    for (const text of this.#frames(push)) session.sendText(text);
    if (theyHaveNewer && frame.reply !== true) this.#sendSummary(session, true);
  }

  // ---- unicast ----------------------------------------------------------------------------

  #receiveMessage(frame: Frame): void {
    const { src, dst, ch, p, ttl } = frame;
    if (
      typeof src !== "string" || typeof dst !== "string" || typeof ch !== "string" ||
      typeof p !== "string" || typeof ttl !== "number"
    ) {
      throw new MalformedFrameError("Message frame with missing fields");
    }
    if (dst === this.name) this.#deliver(ch, p, src);
    // A hostile TTL is capped so a routing loop during convergence still ends quickly.
    else if (ttl > 1) this.#forward({ ...frame, dst, ttl: Math.min(ttl, MESSAGE_TTL) - 1 });
  }

  #forward(frame: Frame & { dst: string }): boolean {
    const hop = this.nextHop(frame.dst);
    const session = hop === undefined ? undefined : this.#byPeer.get(hop);
    if (!session) return false;
    session.send(frame);
    return true;
  }

  #receiveBroadcast(session: Session, frame: Frame): void {
    const { src, id, ch, p } = frame;
    if (
      typeof src !== "string" || typeof id !== "string" || id.length > 100 ||
      typeof ch !== "string" || typeof p !== "string"
    ) {
      throw new MalformedFrameError("Broadcast frame with missing fields");
    }
    if (src === this.name || !this.#remember(`${src}/${id}`)) return;
    this.#deliver(ch, p, src);
    this.#fanOut({ t: "bcast", src, id, ch, p }, session.remote!.name);
  }

  /** Records a broadcast id; false if it was already seen. Oldest ids are forgotten first. */
  #remember(key: string): boolean {
    if (this.#seenBroadcasts.has(key)) return false;
    this.#seenBroadcasts.add(key);
    if (this.#seenBroadcasts.size > SEEN_BROADCASTS) {
      this.#seenBroadcasts.delete(this.#seenBroadcasts.values().next().value!);
    }
    return true;
  }

  /** Sends a frame to the broadcast tree neighbours and unplaced neighbours, except `from`. */
  #fanOut(frame: Frame, from: string | undefined): void {
    this.#refreshRoutesIfDirty();
    const { treeNeighbors, reachable } = this.#routes;
    const text = JSON.stringify(frame);
    for (const [peer, session] of this.#byPeer) {
      if (peer === from || (!treeNeighbors.has(peer) && reachable.has(peer))) continue;
      session.sendText(text);
    }
  }

  #deliver(channel: string, payload: string, from: string): void {
    for (const handler of this.#handlers.get(channel) ?? []) {
      try {
        handler(payload, from);
      } catch (error) {
        this.#log(`handler for channel "${channel}" failed: ${(error as Error).message}`);
      }
    }
  }

  // ---- routes, ageing, discovery ----------------------------------------------------------

  #markRoutesDirty(): void {
    if (this.#routesDirty || this.#stopped) return;
    this.#routesDirty = true;
    this.#routesTimer = this.#clock.setTimeout(
      () => this.#refreshRoutesIfDirty(),
      this.#options.routeDelayMs,
    );
  }

  #refreshRoutesIfDirty(): void {
    if (!this.#routesDirty) return;
    this.#routesDirty = false;
    if (this.#routesTimer !== undefined) this.#clock.clearTimeout(this.#routesTimer);
    this.#routesTimer = undefined;
    this.#routes = computeRoutes(this.name, this.#topology.records);
    const now = this.#clock.now();
    for (const [name, meta] of this.#topology.metas()) {
      if (name === this.name) continue;
      const reachable = this.#routes.reachable.has(name) || this.#byPeer.has(name);
      if (reachable === meta.reachable) continue;
      meta.reachable = reachable;
      meta.unreachableSince = reachable ? undefined : now;
      if (reachable) meta.lastSeen = now;
      this.#emit(reachable ? "peer-up" : "peer-down", this.#topology.get(name)!);
    }
  }

  #scheduleTick(): void {
    // While the topology is still changing here, compare digests five times as often, so a
    // gap left by views that disagreed is repaired in about a second; a quiet mesh stays slow.
    const digest = this.#topology.digest();
    const busy = digest !== this.#lastTickDigest || this.#disagreed;
    this.#lastTickDigest = digest;
    this.#disagreed = false;
    const period = this.#options.gossipIntervalMs / (busy ? 5 : 1);
    const delay = Math.round(period * (0.75 + 0.5 * this.#random()));
    this.#tickTimer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (!this.#running) return;
    this.#refreshRoutesIfDirty();
    const digest = this.#topology.digest();
    for (const session of this.#byPeer.values()) session.send({ t: "digest", h: digest });
    this.#ageOut();
    if (this.#options.discovery) this.#discover();
    this.#scheduleTick();
  }

  #ageOut(): void {
    const now = this.#clock.now();
    this.#topology.expireTombstones(now);
    for (const [name, meta] of [...this.#topology.metas()]) {
      if (name === this.name || meta.reachable || this.#byPeer.has(name)) continue;
      if (now - (meta.unreachableSince ?? now) < this.#options.ageOutMs) continue;
      const record = this.#topology.remove(name, { until: now + this.#options.ageOutMs })!;
      this.#markRoutesDirty();
      this.#emit("peer-removed", record);
      for (const t of [...this.#targets.values()]) {
        if (t.discovered && t.peer === name) this.#dropTarget(t);
      }
    }
  }

  /** Dials peers learnt through gossip, at the addresses their neighbours reached them on. */
  #discover(): void {
    const targeted = new Set<string>();
    for (const t of this.#targets.values()) if (t.peer !== undefined) targeted.add(t.peer);
    for (const record of this.#topology.records.values()) {
      for (const c of record.connections) {
        if (this.#sessions.size >= this.#options.connLimit) return;
        if (c.peer === this.name || this.#byPeer.has(c.peer) || targeted.has(c.peer)) continue;
        if (this.#targets.has(c.address) || this.#forgotten.has(c.address)) continue;
        const target = this.#addTarget(c.address, true);
        target.peer = c.peer;
        targeted.add(c.peer);
        this.#dial(target);
      }
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  #status(record: PeerRecord): PeerStatus {
    const meta = this.#topology.meta(record.name);
    const self = record.name === this.name;
    return {
      name: record.name,
      nickname: record.nickname,
      incarnation: record.incarnation,
      version: record.version,
      self,
      reachable: self || (meta?.reachable ?? false),
      lastSeen: self ? this.#clock.now() : meta?.lastSeen ?? 0,
      connections: [...record.connections],
      data: { ...record.data },
    };
  }

  #emit(event: MeshEvent, record: PeerRecord): void {
    const handlers = this.#listeners.get(event);
    if (!handlers) return;
    const status = this.#status(record);
    for (const handler of handlers) {
      try {
        handler(status);
      } catch (error) {
        this.#log(`${event} handler failed: ${(error as Error).message}`);
      }
    }
  }
}

function sameConnections(a: PeerRecord, b: PeerRecord): boolean {
  if (a.connections.length !== b.connections.length) return false;
  return a.connections.every((c, i) => c.peer === b.connections[i].peer);
}
