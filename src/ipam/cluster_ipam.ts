/**
 * Cluster-wide IPAM: the allocation book of this node over the ranges the ring says it owns,
 * plus the protocol that moves ranges between peers (requests, donations, leave, reclaim).
 *
 * It talks to other peers only through `IpamTransport` (the agent adapts the mesh to it) and
 * reads time only through `now`, so a whole cluster runs deterministically in one test process.
 * Nothing here waits on a timer: the owner calls `tick()` (the agent every second or so, a test
 * whenever it advances its clock) and that drives retries, timeouts and automatic reclaim.
 */
import {
  type AddressRange,
  type Cidr,
  cidrToRange,
  formatCidr,
  formatRange,
  intersectRanges,
  parseCidr,
} from "../net/cidr.ts";
import { AllocationBook, normalizeRanges } from "./book.ts";
import { checkRequest, DEFAULT_IFNAME, type Ipam, openCommon, retainFilter } from "./common.ts";
import { NoSpaceError, NotReadyError } from "./errors.ts";
import { type AllocateOptions, existingOrConflict } from "./node_ipam.ts";
import {
  claimOrphans,
  decodeRing,
  emptyRing,
  encodeRing,
  entryRanges,
  giveRange,
  initialRing,
  isDead,
  livePeers,
  mergeRings,
  ownedBy,
  ownedSize,
  type PeerRecord,
  peerRecord,
  reclaimWaitingOn,
  type RingState,
  withPeer,
  withTombstone,
} from "./ring.ts";
import type { Allocation, Store } from "./store.ts";
import type {
  ClusterIpamOptions,
  ClusterIpamStatus,
  IpamEvent,
  IpamInit,
  IpamTransport,
  PeerStatus,
} from "./cluster_types.ts";

/** What ClusterIpam needs from the mesh. Messages and states are opaque strings. */
interface Message {
  t: "req" | "give" | "none" | "ack" | "state" | "pull";
  id: string;
  gen: number;
  subnet?: string;
  state?: string;
  /** "none": why, in words, for the requester's error message. */
  why?: string;
}

interface PendingRequest {
  id: string;
  donor: string;
  sentAt: number;
  rest: string[];
  asked: string[];
  subnet: Cidr | undefined;
  resolve: () => void;
  reject: (error: Error) => void;
}

const KEY_RING = "ring";
const KEY_GEN = "gen";

export class ClusterIpam implements Ipam {
  #store: Store;
  #cluster: Cidr;
  #me: string;
  #gen: number;
  #transport: IpamTransport;
  #init: IpamInit;
  #now: () => number;
  #random: () => number;
  #requestTimeoutMs: number;
  #resendMs: number;
  #gossipIntervalMs: number;
  #reclaimAfterMs: number | undefined;
  #onEvent: (event: IpamEvent) => void;
  #book: AllocationBook;
  #state: RingState;
  #lastBroadcast = "";
  #lastGossipAt = -Infinity;
  /** Set when our copy of the ring may be stale (restart, self-made seed ring). */
  #mustHear: boolean;
  #ringId: string;
  #requests = new Map<string, PendingRequest>();
  #spaceWanted = new Map<string, Promise<void>>();
  #donations = new Map<string, { peer: string; sentAt: number; tries: number }>();
  #unreachableSince = new Map<string, number>();
  #cutOffSince: number | undefined;
  #leaving: { id: string; resolve: () => void } | undefined;
  /** After leave(): we only finish the hand-over; anything else would rejoin the ring. */
  #left = false;
  /** Set by adoptOrphans(): claim space that no live peer owns. */
  #adopt = false;
  /** Set by writes made outside #afterChange (rmpeer, donations) so that it gossips them. */
  #ownWrite = false;
  #closed = false;

  private constructor(options: ClusterIpamOptions, state: RingState, gen: number) {
    this.#store = options.store;
    this.#cluster = options.clusterRange;
    this.#me = options.peerName;
    this.#gen = gen;
    this.#transport = options.transport;
    this.#init = options.init;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 2000;
    this.#resendMs = options.resendMs ?? 1000;
    this.#gossipIntervalMs = options.gossipIntervalMs ?? 30_000;
    this.#reclaimAfterMs = options.reclaimAfterMs;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#book = new AllocationBook(options.store, options.clusterRange);
    this.#state = state;
    this.#ringId = state.ringId;
    // A restart with a ring that has other live members must hear from one of them before
    // allocating: we may have been removed while away.
    this.#mustHear = state.ringId !== "" &&
      livePeers(state).some((p) => p.name !== this.#me);
  }

  static open(options: ClusterIpamOptions): Promise<ClusterIpam> {
    return Promise.resolve().then(() => {
      const { store, clusterRange, peerName } = options;
      openCommon(store, clusterRange, peerName);
      const stored = store.getValue(KEY_RING);
      const state = stored === undefined || stored === "null"
        ? emptyRing(clusterRange)
        : decodeRing(stored);
      const gen = Number(store.getValue(KEY_GEN) ?? "0");
      const ipam = new ClusterIpam(options, state, gen);
      options.transport.onMessage?.((from, message) => ipam.handleMessage(from, message));
      options.transport.onState?.((from, text) => ipam.handleState(from, text));
      ipam.#afterChange();
      ipam.#pullIfWaiting();
      return ipam;
    });
  }

  get peerName(): string {
    return this.#me;
  }

  /** This peer's ring state, encoded (for `GET /ring`). */
  ringState(): string {
    return encodeRing(this.#state);
  }

  async allocate(
    containerId: string,
    options: AllocateOptions = {},
  ): Promise<Allocation> {
    const ifname = options.ifname ?? DEFAULT_IFNAME;
    checkRequest(this.#cluster, containerId, ifname, options.subnet);
    for (let attempt = 0;; attempt++) {
      const existing = this.#book.find(containerId, ifname);
      if (existing) return existingOrConflict(existing, options.subnet);
      this.#checkOpen();
      if (this.#left) throw new NotReadyError(`IPAM on peer "${this.#me}" has left the ring`);
      const waiting = this.#waitingFor();
      if (waiting) throw new NotReadyError(`IPAM on peer "${this.#me}" is not ready: ${waiting}`);
      const allocation = this.#book.take(containerId, ifname, {
        owned: this.#owned(),
        subnet: options.subnet,
        network: options.network,
        now: this.#now(),
      });
      if (allocation) return allocation;
      if (attempt >= 4) {
        throw new NoSpaceError(
          `No free address for "${containerId}" on peer "${this.#me}": space obtained from ` +
            `other peers was taken by concurrent requests ${attempt} times`,
        );
      }
      await this.#wantSpace(options.subnet);
    }
  }

  lookup(containerId: string, ifname?: string): Allocation[] {
    if (ifname !== undefined) {
      const found = this.#book.find(containerId, ifname);
      return found ? [found] : [];
    }
    return this.#book.byContainer(containerId);
  }

  release(containerId: string, ifname?: string): Allocation[] {
    return this.lookup(containerId, ifname).map((a) => this.#book.release(a.containerId, a.ifname))
      .filter((a) => a !== undefined);
  }

  retainOnly(
    valid: Array<{ containerId: string; ifname: string }>,
    options: { keep?: (allocation: Allocation) => boolean } = {},
  ): Allocation[] {
    return retainFilter(this.#book.list(), valid, options.keep)
      .map((a) => this.#book.release(a.containerId, a.ifname))
      .filter((a) => a !== undefined);
  }

  list(): Allocation[] {
    return this.#book.list();
  }

  /** Merges a peer's gossiped state. Safe to call with anything: bad input is logged and dropped. */
  handleState(from: string, text: string): void {
    if (this.#closed || this.#left || from === this.#me) return;
    let incoming: RingState;
    try {
      incoming = decodeRing(text);
      if (incoming.range !== this.#state.range) {
        throw new Error(`its range ${incoming.range} is not ours (${this.#state.range})`);
      }
    } catch (error) {
      this.#event("ignored", `Ignored IPAM state from "${from}": ${(error as Error).message}`);
      return;
    }
    const sender = peerRecord(incoming, from);
    // A removed peer that does not know it was removed may still carry donations made after
    // the reclaim started; its state is refused (a peer that left knows, and is accepted).
    if (sender && isDead(this.#state, from, sender.gen) && !isDead(incoming, from, sender.gen)) {
      // A removed peer is back with its old identity; our state tells it to start clean.
      this.#event("ignored", `Ignored IPAM state from removed peer "${from}" (gen ${sender.gen})`);
      this.#tellRemoved(from);
      return;
    }
    const before = peerRecord(this.#state, this.#me);
    this.#state = mergeRings(this.#state, incoming);
    const after = peerRecord(this.#state, this.#me);
    // Only we write our record, so a newer version of it at our generation was written by an
    // earlier incarnation of us whose disk was wiped: whatever it owned is not ours to use.
    const impostor = after !== undefined && after.gen === this.#gen &&
      after.version > (before?.version ?? 0) && after !== before;
    this.#mustHear = false;
    this.#afterChange(impostor);
  }

  /** Handles a unicast protocol message from a peer. */
  handleMessage(from: string, text: string): void {
    if (this.#closed || from === this.#me) return;
    let message: Message;
    try {
      message = JSON.parse(text);
      if (typeof message?.id !== "string" || typeof message.gen !== "number") {
        throw new Error("shape");
      }
    } catch {
      this.#event("ignored", `Ignored malformed IPAM message from "${from}"`);
      return;
    }
    if (this.#left && message.t !== "ack") return;
    if (message.t === "req" && isDead(this.#state, from, message.gen)) {
      this.#event("ignored", `Ignored space request from removed peer "${from}"`);
      this.#tellRemoved(from);
      return;
    }
    switch (message.t) {
      case "req":
        return this.#donate(from, message);
      case "give": {
        if (message.state) this.handleState(from, message.state);
        this.#transport.send(from, this.#message({ t: "ack", id: message.id }));
        const pending = this.#requests.get(message.id);
        if (pending) {
          this.#requests.delete(message.id);
          pending.resolve();
        }
        return;
      }
      case "state":
        if (message.state) this.handleState(from, message.state);
        return;
      case "pull":
        this.#transport.send(
          from,
          this.#message({ t: "state", id: message.id, state: encodeRing(this.#state) }),
        );
        return;
      case "none": {
        const pending = this.#requests.get(message.id);
        if (pending && message.why) {
          pending.asked[pending.asked.length - 1] = `${from} (${message.why})`;
        }
        if (pending) this.#nextDonor(pending);
        return;
      }
      case "ack":
        this.#donations.delete(message.id);
        if (this.#leaving?.id === message.id) this.#leaving.resolve();
        return;
    }
  }

  /**
   * Removes a peer that is gone for good and lets its space be reused. Idempotent and the same
   * whoever runs it (the result is a tombstone for the peer's generation), so running it on
   * several nodes at once reclaims exactly once. Returns the addresses the peer owned.
   */
  rmpeer(name: string): { peer: string; gen: number; addresses: number } {
    this.#checkOpen();
    if (name === this.#me) {
      throw new RangeError(`Cannot rmpeer "${name}": it is this peer; use leave() instead`);
    }
    const record = peerRecord(this.#state, name);
    const gens = this.#state.entries.filter((e) => e.owner === name).map((e) => e.gen);
    if (!record && gens.length === 0) {
      throw new RangeError(`Cannot rmpeer "${name}": no such peer in the IPAM ring`);
    }
    const gen = Math.max(record?.gen ?? -1, ...gens);
    const addresses = ownedSize(this.#state, name);
    this.#state = withTombstone(this.#state, name, gen);
    this.#ownWrite = true;
    this.#unreachableSince.delete(name);
    this.#event("reclaim", `Removed peer "${name}" (gen ${gen}) owning ${addresses} addresses`);
    this.#afterChange();
    return { peer: name, gen, addresses };
  }

  /**
   * Leaves cleanly: gives every owned range to one live, reachable peer, forgets all
   * allocations and marks this peer as left. Resolves once the recipient acknowledged, or after
   * the request timeout (ticks) when it did not; the ring is gossiped either way.
   */
  leave(): Promise<{ givenTo: string | undefined; addresses: number }> {
    this.#checkOpen();
    const reachable = this.#reachableNames();
    const recipient = livePeers(this.#state)
      .filter((p) => p.name !== this.#me && reachable.has(p.name))
      .sort((a, b) => a.free - b.free || (a.name < b.name ? -1 : 1))[0];
    const owned = this.#owned();
    const addresses = owned.reduce((sum, r) => sum + r.end - r.start, 0);
    if (recipient) {
      for (const range of owned) {
        this.#state = giveRange(this.#state, range, {
          from: { name: this.#me, gen: this.#gen },
          to: { name: recipient.name, gen: recipient.gen },
        });
      }
    }
    this.#book.clear();
    this.#left = true;
    const mine = this.#myRecord();
    this.#state = withPeer(this.#state, { ...mine, version: mine.version + 1, left: true });
    this.#state = withTombstone(this.#state, this.#me, this.#gen);
    this.#persist();
    this.#broadcast(true);
    this.#event("left", `Left the ring, ${addresses} addresses to ${recipient?.name ?? "nobody"}`);
    if (!recipient) return Promise.resolve({ givenTo: undefined, addresses });
    const id = this.#newId();
    this.#transport.send(
      recipient.name,
      this.#message({ t: "give", id, state: encodeRing(this.#state) }),
    );
    this.#donations.set(id, { peer: recipient.name, sentAt: this.#now(), tries: 1 });
    return new Promise((resolve) => {
      this.#leaving = {
        id,
        resolve: () => {
          this.#leaving = undefined;
          resolve({ givenTo: recipient.name, addresses });
        },
      };
    });
  }

  /** Drives time: request timeouts, donation resends, gossip, automatic reclaim. */
  tick(): void {
    if (this.#closed) return;
    const now = this.#now();
    if (this.#left) return this.#resendDonations(now);
    for (const pending of [...this.#requests.values()]) {
      if (now - pending.sentAt >= this.#requestTimeoutMs) this.#nextDonor(pending);
    }
    this.#resendDonations(now);
    this.#trackReachability(now);
    this.#afterChange();
    this.#pullIfWaiting();
    // A reclaim finishes only when every live peer has acknowledged it, and a broadcast can be
    // lost (e.g. sent along a path through the peer that just died). While one is unfinished,
    // re-send our state as often as donations are re-sent rather than every gossip interval.
    const interval = this.#reclaimUnfinished() ? this.#resendMs : this.#gossipIntervalMs;
    if (now - this.#lastGossipAt >= interval) this.#broadcast(true);
  }

  #reclaimUnfinished(): boolean {
    return this.#state.entries.some((e) => isDead(this.#state, e.owner, e.gen));
  }

  #resendDonations(now: number): void {
    for (const [id, donation] of this.#donations) {
      if (now - donation.sentAt < this.#resendMs) continue;
      if (donation.tries >= 10 || (this.#leaving?.id === id && donation.tries >= 3)) {
        this.#donations.delete(id);
        if (this.#leaving?.id === id) this.#leaving.resolve();
        continue;
      }
      donation.sentAt = now;
      donation.tries++;
      this.#transport.send(
        donation.peer,
        this.#message({ t: "give", id, state: encodeRing(this.#state) }),
      );
    }
  }

  /**
   * Operator action for the case no live peer owns any space (every owner was removed or left
   * with nobody to hand to): this peer takes the orphaned space once every live peer has seen
   * the removals. Run it on ONE node: it is the one step the protocol cannot make safe by
   * itself, since two peers cut off from each other could both adopt.
   */
  adoptOrphans(): { orphaned: number } {
    this.#checkOpen();
    const orphaned = hasOwnerlessSpace(this.#state) ? ownerlessSize(this.#state) : 0;
    this.#adopt = orphaned > 0;
    this.#afterChange();
    return { orphaned };
  }

  /** Gossips the state now (e.g. when the mesh connects a new peer). */
  gossip(): void {
    this.#broadcast(true);
  }

  status(): ClusterIpamStatus {
    const owned = this.#owned().map((range) => {
      const [start, end] = formatRange(range).split("-");
      return { start, end, size: this.#book.usableIn(range), used: this.#book.usedIn(range) };
    });
    const size = owned.reduce((sum, r) => sum + r.size, 0);
    const used = owned.reduce((sum, r) => sum + r.used, 0);
    const reachable = this.#reachableNames();
    const total = cidrToRange(this.#cluster).end - cidrToRange(this.#cluster).start;
    const peers: PeerStatus[] = this.#state.peers.map((p) => {
      const self = p.name === this.#me;
      return {
        name: p.name,
        gen: p.gen,
        mode: p.mode,
        owned: ownedSize(this.#state, p.name),
        used: self ? used : p.used,
        free: self ? size - used : p.free,
        reachable: self || reachable.has(p.name),
        removed: isDead(this.#state, p.name, p.gen) && !p.left,
        left: p.left === true,
      };
    });
    const unreachable = peers.filter((p) => !p.reachable && !p.removed)
      .reduce((sum, p) => sum + p.owned, 0);
    const waitingFor = this.#waitingFor();
    return {
      range: formatCidr(this.#cluster),
      peerName: this.#me,
      mode: this.#init.mode,
      owned,
      size,
      used,
      free: size - used,
      ready: waitingFor === undefined,
      waitingFor,
      gen: this.#gen,
      peers,
      unreachablePercentage: Math.round((unreachable / total) * 10000) / 100,
      pendingRequests: this.#requests.size,
      ownerless: hasOwnerlessSpace(this.#state),
      strayAllocations: this.#book.size - used,
      reclaims: Object.keys(this.#state.tombstones).map((peer) => ({
        peer,
        addresses:
          this.#state.entries.some((e) => e.owner === peer && isDead(this.#state, e.owner, e.gen))
            ? ownedSizeDead(this.#state, peer)
            : 0,
        waitingOn: reclaimWaitingOn(this.#state, peer),
      })).filter((r) => r.addresses > 0),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#requests.values()) {
      pending.reject(new NotReadyError(`IPAM on peer "${this.#me}" is closing`));
    }
    this.#requests.clear();
    this.#store.close();
  }

  // ---- internals ----

  #checkOpen(): void {
    if (this.#closed) throw new NotReadyError(`IPAM on peer "${this.#me}" is closed`);
  }

  #owned(): AddressRange[] {
    return ownedBy(this.#state, this.#me, this.#gen);
  }

  #reachableNames(): Set<string> {
    return new Set(this.#transport.peers().filter((p) => p.reachable).map((p) => p.name));
  }

  #myRecord(): PeerRecord {
    return peerRecord(this.#state, this.#me) ?? {
      name: this.#me,
      gen: this.#gen,
      version: 0,
      mode: this.#init.mode,
      free: 0,
      used: 0,
      seen: {},
    };
  }

  /** Why allocation cannot proceed, or undefined when it can. */
  #waitingFor(): string | undefined {
    if (this.#state.ringId === "") {
      if (this.#init.mode === "consensus") return this.#consensusWaiting();
      return `waiting for the initial split of ${formatCidr(this.#cluster)} from other peers ` +
        `(this peer is ${
          this.#init.mode === "seed" ? "not among the seeds" : "an observer"
        }); known peers: ${this.#state.peers.map((p) => p.name).join(", ") || "none"}`;
    }
    if (this.#mustHear) {
      const others = livePeers(this.#state).filter((p) => p.name !== this.#me).map((p) => p.name);
      return `waiting to hear from another peer (${
        others.join(", ")
      }) to check this peer was not removed while it was away`;
    }
    if (this.#cutOffSince !== undefined && this.#reclaimAfterMs !== undefined) {
      const cutOff = this.#now() - this.#cutOffSince;
      if (cutOff >= this.#reclaimAfterMs / 2) {
        return `cut off from most peers for ${Math.round(cutOff / 1000)}s while automatic ` +
          `reclaim is on; the others may reclaim this peer's space`;
      }
    }
    return undefined;
  }

  #consensusWaiting(): string {
    const wanted = this.#init.mode === "consensus" ? this.#init.peers : 0;
    const vote = this.#myRecord().vote;
    if (!vote) {
      const known = this.#consensusCandidates();
      return `waiting for consensus among ${wanted} peers on the first split: ${known.length} of ` +
        `${wanted} known (${known.join(", ")})`;
    }
    const missing = vote.filter((name) => !sameVote(peerRecord(this.#state, name)?.vote, vote));
    return `waiting for consensus on splitting among ${vote.join(", ")}: no agreement yet from ` +
      missing.join(", ");
  }

  #consensusCandidates(): string[] {
    return livePeers(this.#state).filter((p) => p.mode === "consensus").map((p) => p.name).sort();
  }

  /** Everything that follows a change of the state: self-checks, protocol steps, persistence. */
  #afterChange(impostor = false): void {
    if (this.#closed) return;
    const merged = this.#state;
    this.#checkSelf(impostor);
    this.#startRing();
    this.#claim();
    this.#refreshRecord();
    // A claim or a ring creation may depend on the record we just published.
    this.#startRing();
    this.#claim();
    this.#persist();
    // Only news we wrote is gossiped at once: re-broadcasting what we merged from others would
    // make every change cost N^2 messages (the mesh already relays broadcasts to every peer);
    // the periodic gossip in tick() repairs what was lost.
    if (this.#ownWrite || this.#state !== merged) this.#broadcast(false);
    this.#ownWrite = false;
  }

  #claim(): void {
    const before = this.#state;
    this.#state = claimOrphans(this.#state, { name: this.#me, gen: this.#gen }, {
      adopt: this.#adopt,
    });
    if (this.#adopt && this.#state !== before && !hasOwnerlessSpace(this.#state)) {
      this.#adopt = false;
    }
  }

  /** Starts clean when the cluster removed us or replaced the ring we allocated from. */
  #checkSelf(impostor: boolean): void {
    const tomb = this.#state.tombstones[this.#me];
    const recorded = peerRecord(this.#state, this.#me);
    const removed = tomb !== undefined && tomb >= this.#gen;
    const newer = impostor || (recorded !== undefined && recorded.gen > this.#gen);
    const replaced = this.#ringId !== "" && this.#state.ringId !== this.#ringId;
    this.#ringId = this.#state.ringId;
    if (!removed && !newer && !replaced) return;
    const released = this.#book.list();
    this.#book.clear();
    this.#gen = Math.max(tomb ?? -1, recorded?.gen ?? -1, this.#gen) + 1;
    // Whatever older generations of us still own goes back through the normal reclaim.
    this.#state = withTombstone(this.#state, this.#me, this.#gen - 1);
    this.#state = withPeer(this.#state, {
      name: this.#me,
      gen: this.#gen,
      version: 1,
      mode: this.#init.mode,
      free: 0,
      used: 0,
      seen: { ...this.#state.tombstones },
    });
    this.#mustHear = false;
    const why = removed
      ? "this peer was removed while away"
      : newer
      ? "another instance of this peer (a wiped disk?) held this generation"
      : "the ring was replaced by another initial split";
    this.#event(
      "reset",
      `Starting clean as generation ${this.#gen}: ${why}; dropped ${released.length} allocations`,
    );
  }

  /** consensus and seed modes: vote, and create the first split when it is agreed. */
  #startRing(): void {
    if (this.#state.ringId !== "") return;
    if (this.#init.mode === "seed" && this.#init.seeds.includes(this.#me)) {
      const seeds = this.#init.seeds;
      this.#state = initialRing(
        this.#state,
        seeds.map((name) => ({ name, gen: 0 })),
        `seed:${seeds.join(",")}`,
      );
      // Our own copy of the seed ring may be older than the cluster's (a wiped disk).
      this.#mustHear = seeds.length > 1;
      this.#ringId = this.#state.ringId;
      this.#event("ring-created", `Created the seed ring among ${seeds.join(", ")}`);
      return;
    }
    if (this.#init.mode !== "consensus") return;
    const wanted = this.#init.peers;
    const mine = this.#myRecord();
    if (!mine.vote) {
      const candidates = this.#consensusCandidates();
      if (candidates.length < wanted || !candidates.includes(this.#me)) return;
      const vote = candidates.slice(0, wanted);
      this.#state = withPeer(this.#state, { ...mine, version: mine.version + 1, vote });
      return this.#startRing();
    }
    const vote = mine.vote;
    if (vote[0] !== this.#me) return;
    const records = vote.map((name) => peerRecord(this.#state, name));
    if (!records.every((r) => r && sameVote(r.vote, vote))) return;
    this.#state = initialRing(
      this.#state,
      records.map((r) => ({ name: r!.name, gen: r!.gen })),
      `consensus:${vote.join(",")}`,
    );
    this.#ringId = this.#state.ringId;
    this.#event("ring-created", `Consensus reached: split the range among ${vote.join(", ")}`);
  }

  /** Publishes our free/used and the tombstones we have seen, when they changed. */
  #refreshRecord(): void {
    const mine = this.#myRecord();
    let size = 0;
    let used = 0;
    for (const range of this.#owned()) {
      size += this.#book.usableIn(range);
      used += this.#book.usedIn(range);
    }
    const seen = { ...this.#state.tombstones };
    const known = livePeers(withPeer(this.#state, { ...mine, gen: this.#gen }))
      .map((p) => `${p.name}@${p.gen}`).sort();
    const next: PeerRecord = {
      ...mine,
      gen: this.#gen,
      mode: this.#init.mode,
      free: size - used,
      used,
      seen,
      known,
    };
    if (
      mine.version > 0 && mine.gen === next.gen && mine.free === next.free &&
      mine.used === next.used && JSON.stringify(mine.seen) === JSON.stringify(seen) &&
      mine.mode === next.mode && JSON.stringify(mine.known) === JSON.stringify(known)
    ) return;
    this.#state = withPeer(this.#state, { ...next, version: mine.version + 1 });
  }

  #persist(): void {
    this.#store.transaction(() => {
      this.#store.setValue(KEY_RING, encodeRing(this.#state));
      this.#store.setValue(KEY_GEN, String(this.#gen));
    });
  }

  /**
   * Peers gossip only their own news, so a peer that restarted or has no ring yet asks the
   * reachable peers for their states instead of waiting for the periodic gossip.
   */
  #pullIfWaiting(): void {
    if (!this.#mustHear && this.#state.ringId !== "") return;
    for (const peer of this.#reachableNames()) {
      this.#transport.send(peer, this.#message({ t: "pull", id: this.#newId() }));
    }
  }

  /** Our state, to a removed peer only, so that it learns it was removed and starts clean. */
  #tellRemoved(peer: string): void {
    this.#transport.send(
      peer,
      this.#message({ t: "state", id: "", state: encodeRing(this.#state) }),
    );
  }

  #broadcast(force: boolean): void {
    if (this.#closed) return;
    const encoded = encodeRing(this.#state);
    if (!force && encoded === this.#lastBroadcast) return;
    this.#lastBroadcast = encoded;
    this.#lastGossipAt = this.#now();
    this.#transport.broadcast(encoded);
  }

  #message(body: Omit<Message, "gen">): string {
    return JSON.stringify({ ...body, gen: this.#gen });
  }

  #newId(): string {
    return `${this.#me}-${Math.floor(this.#random() * 2 ** 48).toString(36)}`;
  }

  #event(kind: IpamEvent["kind"], message: string): void {
    this.#onEvent({ kind, message });
  }

  /** One shared request per scope: concurrent allocations wait for the same donation. */
  #wantSpace(subnet: Cidr | undefined): Promise<void> {
    const key = subnet ? formatCidr(subnet) : "*";
    const running = this.#spaceWanted.get(key);
    if (running) return running;
    const request = this.#requestSpace(subnet).finally(() => this.#spaceWanted.delete(key));
    this.#spaceWanted.set(key, request);
    return request;
  }

  #requestSpace(subnet: Cidr | undefined): Promise<void> {
    this.#refreshRecord();
    const reachable = this.#reachableNames();
    // Only a peer that owns part of the scope can give in it (the ring tells us who). Published
    // free counts lag and cover the whole range, so they order the candidates but exclude none.
    const scope = cidrToRange(subnet ?? this.#cluster);
    const inScope = new Map<string, number>();
    for (const { entry, range } of entryRanges(this.#state)) {
      const overlap = intersectRanges(range, scope);
      if (overlap && !isDead(this.#state, entry.owner, entry.gen)) {
        inScope.set(entry.owner, (inScope.get(entry.owner) ?? 0) + overlap.end - overlap.start);
      }
    }
    const donors = livePeers(this.#state)
      .filter((p) => p.name !== this.#me && reachable.has(p.name) && inScope.has(p.name))
      .sort((a, b) =>
        (subnet ? 0 : b.free - a.free) || inScope.get(b.name)! - inScope.get(a.name)! ||
        (a.name < b.name ? -1 : 1)
      )
      .map((p) => p.name);
    if (donors.length === 0) {
      return Promise.reject(new NoSpaceError(this.#noSpaceMessage(subnet, [])));
    }
    return new Promise((resolve, reject) => {
      const pending: PendingRequest = {
        id: "",
        donor: "",
        sentAt: 0,
        rest: donors,
        asked: [],
        subnet,
        resolve,
        reject,
      };
      this.#nextDonor(pending);
    });
  }

  #nextDonor(pending: PendingRequest): void {
    this.#requests.delete(pending.id);
    const donor = pending.rest.shift();
    if (donor === undefined) {
      pending.reject(new NoSpaceError(this.#noSpaceMessage(pending.subnet, pending.asked)));
      return;
    }
    pending.id = this.#newId();
    pending.donor = donor;
    pending.sentAt = this.#now();
    pending.asked.push(donor);
    this.#requests.set(pending.id, pending);
    this.#transport.send(
      donor,
      this.#message({
        t: "req",
        id: pending.id,
        ...(pending.subnet ? { subnet: formatCidr(pending.subnet) } : {}),
      }),
    );
  }

  #noSpaceMessage(subnet: Cidr | undefined, asked: string[]): string {
    const where = subnet ? `subnet ${formatCidr(subnet)} of ` : "";
    if (hasOwnerlessSpace(this.#state)) {
      return `No free address in ${where}${formatCidr(this.#cluster)} on peer "${this.#me}": ` +
        `no live peer owns any space (all owners were removed or left); run adoptOrphans ` +
        `("weft ipam adopt") on one node`;
    }
    const peers = this.status().peers.filter((p) => p.name !== this.#me)
      .map((p) => `${p.name}: ${p.free} free${p.reachable ? "" : ", unreachable"}`);
    return `No free address in ${where}${formatCidr(this.#cluster)} on peer "${this.#me}" and ` +
      `no peer could give space (asked: ${asked.join(", ") || "nobody"}; ${
        peers.join("; ") || "no other peers"
      })`;
  }

  /** Answers a space request with half of our largest free run, or "none". */
  #donate(to: string, message: Message): void {
    const requester = peerRecord(this.#state, to);
    let scope: AddressRange = cidrToRange(this.#cluster);
    try {
      if (message.subnet) scope = cidrToRange(parseCidr(message.subnet));
    } catch {
      // A bad subnet from a peer is answered like no space; the requester logs its own error.
    }
    // Give only to an incarnation that every live peer already lists as live: if we are removed
    // later, our heir then waits for the recipient's acknowledgement, whose state carries this
    // give (docs/ipam.md, argument step 5).
    const incarnation = `${to}@${message.gen}`;
    const knownByAll = livePeers(this.#state).every((p) =>
      p.name === this.#me || p.name === to || (p.known ?? []).includes(incarnation)
    );
    const unaware = livePeers(this.#state)
      .filter((p) => p.name !== this.#me && p.name !== to && !(p.known ?? []).includes(incarnation))
      .map((p) => p.name);
    let why: string | undefined;
    if (this.#waitingFor() !== undefined) why = "not ready";
    else if (!requester || requester.left || requester.gen !== message.gen) {
      why = `does not know ${incarnation} yet`;
    } else if (!knownByAll) why = `${incarnation} not yet known to ${unaware.join(", ")}`;
    const run = why === undefined ? this.#largestFreeRun(scope) : undefined;
    if (!run) {
      this.#transport.send(
        to,
        this.#message({ t: "none", id: message.id, why: why ?? "no free space there" }),
      );
      return;
    }
    const size = run.end - run.start;
    const give = size >= 2 ? { start: run.start + Math.floor(size / 2), end: run.end } : run;
    this.#state = giveRange(this.#state, give, {
      from: { name: this.#me, gen: this.#gen },
      to: { name: to, gen: message.gen },
    });
    this.#ownWrite = true;
    this.#event("donated", `Gave ${formatRange(give)} to "${to}"`);
    this.#afterChange();
    this.#transport.send(
      to,
      this.#message({ t: "give", id: message.id, state: encodeRing(this.#state) }),
    );
    this.#donations.set(message.id, { peer: to, sentAt: this.#now(), tries: 1 });
  }

  #largestFreeRun(scope: AddressRange): AddressRange | undefined {
    const pieces = normalizeRanges(
      this.#owned().map((r) => intersectRanges(r, scope)).filter((r) => r !== undefined),
    );
    const used = this.#book.list().map((a) => a.address);
    let best: AddressRange | undefined;
    for (const piece of pieces) {
      let start = piece.start;
      const inside = used.filter((a) => a >= piece.start && a < piece.end);
      for (const address of [...inside, piece.end]) {
        const run = { start, end: address };
        if (run.end > run.start && this.#book.usableIn(run) > 0) {
          if (!best || run.end - run.start > best.end - best.start) best = run;
        }
        start = address + 1;
      }
    }
    return best;
  }

  #trackReachability(now: number): void {
    const reachable = this.#reachableNames();
    const others = livePeers(this.#state).filter((p) => p.name !== this.#me);
    const seen = others.filter((p) => reachable.has(p.name)).length;
    const majority = (seen + 1) * 2 > others.length + 1;
    if (majority) this.#cutOffSince = undefined;
    else this.#cutOffSince ??= now;
    for (const peer of others) {
      if (reachable.has(peer.name)) {
        this.#unreachableSince.delete(peer.name);
        continue;
      }
      const since = this.#unreachableSince.get(peer.name) ?? now;
      this.#unreachableSince.set(peer.name, since);
      // Only a peer that reaches a majority reclaims, so a cut-off minority never takes the
      // majority's space; the minority stops allocating at half the delay (see #waitingFor).
      if (this.#reclaimAfterMs !== undefined && majority && now - since >= this.#reclaimAfterMs) {
        this.#event(
          "reclaim",
          `Peer "${peer.name}" unreachable for ${now - since} ms: reclaiming its space`,
        );
        this.rmpeer(peer.name);
      }
    }
  }
}

/** True when the ring has entries but none is owned by a live peer. */
function hasOwnerlessSpace(state: RingState): boolean {
  return state.entries.length > 0 && state.entries.every((e) => isDead(state, e.owner, e.gen));
}

function ownerlessSize(state: RingState): number {
  const range = cidrToRange(parseCidr(state.range));
  return range.end - range.start;
}

function sameVote(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((name, i) => name === b[i]);
}

function ownedSizeDead(state: RingState, name: string): number {
  const end = cidrToRange(parseCidr(state.range)).end;
  let size = 0;
  state.entries.forEach((e, i) => {
    if (e.owner === name && isDead(state, e.owner, e.gen)) {
      size += (state.entries[i + 1]?.token ?? end) - e.token;
    }
  });
  return size;
}
