/**
 * The mesh: the public face that ties the pieces together. It owns the connections (one per
 * peer, whichever side dialled) and resolves duplicates; the ConnectionMaker dials targets,
 * Gossip spreads records, the Messenger carries unicasts and broadcasts, and routes are
 * recomputed here from the gossiped graph. It also keeps this peer's own record, ages out peers
 * unreachable for too long, and discovers new targets from the records.
 *
 * Everything runs on callbacks and the passed-in clock (no awaits after start), so a thousand
 * meshes share one process and one simulated clock in the bench. Cost model: a change is pushed
 * once along a fan-out-capped spanning tree (and to neighbours the view cannot place yet); a
 * quiet mesh exchanges only heartbeats and a fixed-size digest per link per round; summaries go
 * only over links whose digests differ. See docs/mesh.md.
 */
import { type Clock, systemClock, type TimerId } from "./clock.ts";
import { ConnectionMaker } from "./connection_maker.ts";
import { DEFAULT_PORT, isOwnAddress, normalizeAddress } from "./address.ts";
import { CollisionWatch } from "./collisions.ts";
import type { Diagnostic } from "./diagnostics.ts";
import { fingerprint, IdentityKey } from "./keys.ts";
import { KnownPeers } from "./known_peers.ts";
import { PeerKeys, type PeerSigner } from "./peer_keys.ts";
import { Gossip } from "./gossip.ts";
import { newIncarnation } from "./identity.ts";
import { loadMeshIdentity, type MeshIdentity } from "./mesh_identity.ts";
import { Messenger } from "./messages.ts";
import type { Frame } from "./protocol.ts";
import { OwnRecord } from "./own_record.ts";
import type { PeerRecord } from "./record.ts";
import { RouteKeeper } from "./route_keeper.ts";
import type { Session } from "./session.ts";
import type { Transport } from "./transport.ts";
import { Connections, countByState, secretOf } from "./connections.ts";
import { PeerEvents } from "./events.ts";
import { WebSocketTransport } from "./websocket_transport.ts";
import { MalformedFrameError } from "./errors.ts";
import type {
  ConnectionStatus,
  MeshEvent,
  MeshMetrics,
  MeshOptions,
  MeshSettings,
  MessageHandler,
  PeerStatus,
} from "./types.ts";
import { meshSettings } from "./types.ts";

export class Mesh {
  readonly name: string;
  readonly nickname: string;
  #options: MeshSettings;
  #clock: Clock;
  #random: () => number;
  #transport: Transport;
  #log: (message: string) => void;
  #port = 0;
  #listenAddress = "";
  #running = false;
  /** Set by stop(): closing connections then must not arm new timers. */
  #stopped = false;

  #own: OwnRecord;
  #gossip: Gossip;
  #messenger: Messenger;
  #maker: ConnectionMaker;
  #connections: Connections;
  /** The connection that counts for each connected peer (owned by #connections). */
  #byPeer: ReadonlyMap<string, Session>;

  #routes: RouteKeeper;
  #tickTimer?: TimerId;

  #events: PeerEvents;
  #collisions: CollisionWatch;
  #keys: PeerKeys;
  #known: KnownPeers;
  #hostAddresses?: readonly string[];

  /** Loads the identity (state dir, machine id) and builds a stopped mesh. */
  static async create(options: MeshOptions = {}): Promise<Mesh> {
    const now = (options.clock ?? systemClock).now();
    return new Mesh(await loadMeshIdentity({ ...options, now }), options);
  }

  /**
   * A stopped mesh. Without `key` a new identity key is made (in memory); without `known`, the
   * names bound to keys are kept in memory only.
   */
  constructor(
    identity: MeshIdentity,
    options: MeshOptions = {},
  ) {
    this.name = identity.name;
    this.nickname = identity.nickname;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#options = meshSettings(options);
    this.#log = options.log ?? (() => {});
    this.#transport = options.transport ??
      new WebSocketTransport({
        host: options.host,
        port: options.port ?? DEFAULT_PORT,
        tls: options.tls,
        caCerts: options.caCerts,
        maxFrameBytes: this.#options.maxFrameBytes,
        connLimit: this.#options.connLimit,
        log: this.#log,
      });
    this.#port = options.port ?? DEFAULT_PORT;
    this.#hostAddresses = options.hostAddresses;
    this.#events = new PeerEvents({ log: this.#log });
    const scheme = identity.key ?? IdentityKey.generate();
    this.#known = identity.known ?? new KnownPeers();
    this.#keys = new PeerKeys({
      name: this.name,
      scheme,
      known: this.#known,
      now: () => this.#clock.now(),
      log: this.#log,
      keepMs: 10 * 60_000,
    });
    this.#collisions = new CollisionWatch({
      name: this.name,
      stateDir: options.stateDir,
      isLocal: (address) => this.#isLocal(address),
      log: this.#log,
      keepMs: 10 * 60_000,
      settleMs: 10_000,
    });
    this.#connections = new Connections({
      name: this.name,
      clock: this.#clock,
      settings: this.#options,
      secret: secretOf(options.password),
      identity: scheme,
      local: () => ({
        name: this.name,
        nickname: this.nickname,
        incarnation: this.#own.incarnation,
        port: this.#port,
      }),
      log: this.#log,
      identified: (session, peer, { self }) => this.#maker.identified(session, peer, { self }),
      collided: (session, address) =>
        this.#collisions.connected(address, session.remote!, this.#clock.now()),
      admit: (session, address) =>
        this.#keys.admit(session.remote!.name, session.remote!.key, { via: `at ${address}` }),
      connected: (session) => this.#connected(session),
      closed: (session, reason, closed) => this.#closed(session, reason, closed),
      frame: (session, frame) => this.#frame(session, frame),
    });
    this.#byPeer = this.#connections.byPeer;
    const neighbours = () => this.#byPeer;
    const stopped = () => this.#stopped;
    this.#gossip = new Gossip({
      name: this.name,
      clock: this.#clock,
      batchMs: this.#options.batchMs,
      gossipIntervalMs: this.#options.gossipIntervalMs,
      maxFrameBytes: this.#options.maxFrameBytes,
      neighbours,
      routes: () => this.#routes.last,
      stopped,
      graphChanged: () => this.#routes.markDirty(),
      recordChanged: (record) => this.#emit("peer-changed", record),
      ownRecord: (record, from) => this.#ownRecordReceived(record, from),
      authentic: (record, from) => this.#keys.acceptRecord(record, { from }),
    });
    this.#routes = new RouteKeeper({
      name: this.name,
      clock: this.#clock,
      routeDelayMs: this.#options.routeDelayMs,
      topology: this.#gossip.topology,
      connected: (peer) => this.#byPeer.has(peer),
      stopped,
      reachabilityChanged: (peer, up) =>
        this.#emit(up ? "peer-up" : "peer-down", this.#gossip.topology.get(peer)!),
    });
    this.#own = new OwnRecord({
      name: this.name,
      nickname: this.nickname,
      incarnation: identity.incarnation ?? newIncarnation(this.#clock.now()),
      clock: this.#clock,
      batchMs: this.#options.batchMs,
      connections: () => this.#connections.info(),
      sign: (record) => this.#keys.signRecord(record),
      publish: (record) => this.#gossip.store(record, undefined),
      current: () => this.#gossip.topology.get(this.name),
      stopped,
      log: this.#log,
      contested: (record) => this.#collisions.overruled(record, this.#clock.now()),
    });
    this.#messenger = new Messenger({
      name: this.name,
      incarnation: () => this.#own.incarnation,
      neighbours,
      nextHop: (peer) => this.nextHop(peer),
      routes: () => this.#routes.current(),
      sign: (data) => this.#keys.sign(data),
      verify: (name, data, signature) => this.#keys.verify(name, data, signature),
      log: this.#log,
    });
    this.#maker = new ConnectionMaker({
      clock: this.#clock,
      random: this.#random,
      transport: this.#transport,
      connLimit: this.#options.connLimit,
      retryMinMs: this.#options.retryMinMs,
      retryMaxMs: this.#options.retryMaxMs,
      open: (link) => this.#connections.open(link, "outbound"),
      connected: (peer) => this.#byPeer.has(peer),
      sessionCount: () => this.#connections.size,
      isLocal: (address) => this.#isLocal(address),
    });
    this.#own.publish();
    for (const peer of options.peers ?? []) this.#maker.add(normalizeAddress(peer));
  }

  get incarnation(): string {
    return this.#own.incarnation;
  }

  /** The bound `host:port` once started. */
  get address(): string {
    return this.#listenAddress;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#listenAddress = await this.#transport.listen((link) => {
      if (this.#running) this.#connections.accept(link);
      else link.close("mesh not running");
    });
    this.#port = Number(this.#listenAddress.slice(this.#listenAddress.lastIndexOf(":") + 1));
    this.#running = true;
    this.#maker.start();
    this.#scheduleTick();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopped = true;
    if (this.#tickTimer !== undefined) this.#clock.clearTimeout(this.#tickTimer);
    this.#routes.stop();
    this.#own.stop();
    this.#gossip.stop();
    this.#maker.stop();
    this.#connections.closeAll("mesh stopped");
    await this.#transport.close();
    await this.#known.flush();
  }

  // ---- local data -------------------------------------------------------------------------

  /** Attaches an opaque blob to this peer's record (e.g. "datapath", "ipam") and gossips it. */
  setLocalData(key: string, blob: string): void {
    this.#own.setData(key, blob);
  }

  /** Removes a blob from this peer's record. */
  deleteLocalData(key: string): void {
    this.#own.deleteData(key);
  }

  // ---- status -----------------------------------------------------------------------------

  peers(): PeerStatus[] {
    this.#routes.refreshIfDirty();
    return [...this.#gossip.topology.records.values()].map((r) => this.#status(r)).sort((a, b) =>
      a.name < b.name ? -1 : 1
    );
  }

  peer(name: string): PeerStatus | undefined {
    this.#routes.refreshIfDirty();
    const record = this.#gossip.topology.get(name);
    return record && this.#status(record);
  }

  /**
   * Live connections (both directions, handshaking included) and targets still waiting for one.
   * A target whose peer is connected through the other direction is not listed twice.
   */
  connections(): ConnectionStatus[] {
    const listed = (session: Session) => this.#maker.isTargetSession(session);
    return [...this.#maker.statuses(), ...this.#connections.statuses({ listed })];
  }

  /** The addresses this peer keeps trying to reach (given and discovered). */
  targets(): string[] {
    return this.#maker.addresses();
  }

  /** Adds a target (or, with `replace`, makes it the only given target) and dials it now. */
  connect(address: string, options: { replace?: boolean } = {}): void {
    this.#maker.connect(normalizeAddress(address), options);
  }

  /** Stops (re)connecting to an address; an open connection stays until it drops. */
  forget(address: string): void {
    this.#maker.forget(normalizeAddress(address));
  }

  nextHop(peer: string): string | undefined {
    if (this.#byPeer.has(peer)) return peer;
    this.#routes.refreshIfDirty();
    const hop = this.#routes.last.nextHop.get(peer);
    return hop !== undefined && this.#byPeer.has(hop) ? hop : undefined;
  }

  routes(): Record<string, string> {
    this.#routes.refreshIfDirty();
    const table: Record<string, string> = {};
    for (const name of this.#gossip.topology.records.keys()) {
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
    return this.#messenger.send(peer, channel, payload);
  }

  /**
   * Sends `payload` to every peer reachable now, once each, along the broadcast tree (best
   * effort, like `send`): one frame per tree link instead of one unicast per peer. Handlers
   * registered with `onMessage(channel)` receive it with `from` set to this peer's name.
   */
  broadcast(channel: string, payload: string): void {
    this.#messenger.broadcast(channel, payload);
  }

  onMessage(channel: string, handler: MessageHandler): void {
    this.#messenger.onMessage(channel, handler);
  }

  on(event: MeshEvent, handler: (peer: PeerStatus) => void): void {
    this.#events.on(event, handler);
  }

  metrics(): MeshMetrics {
    return {
      connections: countByState(this.connections()),
      terminations: this.#connections.terminations,
      gossipBytesSent: this.#connections.bytesSent,
      gossipBytesReceived: this.#connections.bytesReceived,
    };
  }

  /**
   * Why this peer may not be working as it should (CONTRACTS #1): another live peer with our
   * name, targets with no route or that keep failing.
   */
  diagnostics(): Diagnostic[] {
    return [
      ...this.#collisions.diagnostics(this.#clock.now()),
      ...this.#keys.diagnostics(),
      ...this.#maker.diagnostics(),
      ...this.#transport.diagnostics?.() ?? [],
    ];
  }

  /** Signatures by this peer's identity key, checks against the keys bound to others (CONTRACTS #2). */
  signer(): PeerSigner {
    return this.#keys.signer();
  }

  /**
   * Operator action after a peer was reinstalled and kept its name: forget the identity key
   * bound to `name`, so its next contact binds again; with `fingerprint` (as the key-mismatch
   * diagnostic shows it), only that key binds. Its refused records come back with the next
   * anti-entropy round.
   */
  rebindPeer(name: string, options: { fingerprint?: string } = {}): void {
    this.#keys.rebind(name, options);
  }

  /** This peer's identity key fingerprint, as others' diagnostics show it. */
  get keyFingerprint(): string {
    return fingerprint(this.#keys.publicKey);
  }

  /** The current topology digest; equal digests mean equal views (for tests and the bench). */
  digest(): string {
    return this.#gossip.topology.digest();
  }

  // ---- connections ------------------------------------------------------------------------

  #connected(session: Session): void {
    this.#maker.established(session, session.remote!.name);
    this.#own.markDirty();
    this.#routes.markDirty();
    // One side opens anti-entropy at once so a new link converges without waiting a round.
    if (session.direction === "outbound") this.#gossip.sendDigest(session);
  }

  #closed(session: Session, reason: string, options: { peer?: string; wasCurrent: boolean }) {
    if (session.refusal === "key-mismatch") {
      // The other side binds our name to another key.
      this.#collisions.refusedKey(session.link.remoteAddress, this.#clock.now());
    }
    if (options.wasCurrent) {
      this.#own.markDirty();
      this.#routes.markDirty();
    }
    if (this.#running) this.#maker.closed(session, reason, options);
  }

  #frame(session: Session, frame: Frame): void {
    try {
      switch (frame.t) {
        case "gossip":
          return this.#gossip.receiveGossip(session, frame);
        case "digest":
          return this.#gossip.receiveDigest(session, frame);
        case "summary":
          return this.#gossip.receiveSummary(session, frame);
        case "bcast":
          return this.#messenger.receiveBroadcast(session, frame);
        case "msg":
          return this.#messenger.receiveMessage(frame);
        default:
          throw new MalformedFrameError(`Unexpected "${frame.t}" frame after the handshake`);
      }
    } catch (error) {
      if (!(error instanceof MalformedFrameError)) throw error;
      session.close(error.message);
    }
  }

  #isLocal(address: string): boolean {
    const listen = this.#listenAddress;
    return listen !== "" && isOwnAddress(address, { listen, hostAddresses: this.#hostAddresses });
  }

  /** A copy of our own record: a previous life, or another peer with our name (and key?). */
  #ownRecordReceived(record: PeerRecord, from: string): void {
    if (!this.#keys.selfSigned(record)) return;
    if (record.key !== this.#keys.publicKey) {
      this.#collisions.foreignKey(record, { from, now: this.#clock.now() });
      return;
    }
    this.#own.received(record);
  }

  // ---- rounds: anti-entropy, ageing, discovery --------------------------------------------

  #scheduleTick(): void {
    const delay = this.#gossip.nextRoundDelay(this.#random);
    this.#tickTimer = this.#clock.setTimeout(() => this.#tick(), delay);
  }

  #tick(): void {
    if (!this.#running) return;
    this.#routes.refreshIfDirty();
    for (const session of this.#byPeer.values()) this.#gossip.sendDigest(session);
    this.#ageOut();
    this.#collisions.check(
      this.#gossip.topology.records.values(),
      (peer) => this.#byPeer.has(peer),
      this.#clock.now(),
    );
    if (this.#options.discovery) {
      this.#maker.discover(this.#gossip.topology.records.values(), { self: this.name });
    }
    this.#scheduleTick();
  }

  #ageOut(): void {
    const removed = this.#gossip.topology.ageOut(this.#clock.now(), {
      self: this.name,
      ageOutMs: this.#options.ageOutMs,
      connected: (peer) => this.#byPeer.has(peer),
    });
    for (const record of removed) {
      this.#routes.markDirty();
      this.#emit("peer-removed", record);
      this.#maker.dropDiscovered(record.name);
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  #status(record: PeerRecord): PeerStatus {
    return this.#gossip.topology.status(record, { self: this.name, now: this.#clock.now() });
  }

  #emit(event: MeshEvent, record: PeerRecord): void {
    this.#events.emit(event, () => this.#status(record));
  }
}
