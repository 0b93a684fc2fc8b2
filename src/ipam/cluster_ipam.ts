/**
 * Cluster-wide IPAM: the allocation book of this node over the ranges the ring says it owns,
 * plus the protocol that moves ranges between peers (requests, donations, leave, reclaim).
 *
 * It talks to other peers only through `IpamTransport` (the agent adapts the mesh to it) and
 * reads time only through `now`, so a whole cluster runs deterministically in one test process.
 * Nothing here waits on a timer: the owner calls `tick()` (the agent every second or so, a test
 * whenever it advances its clock) and that drives retries, timeouts and automatic reclaim.
 */
import { type Cidr, cidrToRange, formatCidr, formatRange, parseCidr } from "../net/cidr.ts";
import { AllocationBook } from "./book.ts";
import {
  type AllocateOptions,
  checkRequest,
  DEFAULT_IFNAME,
  existingOrConflict,
  openCommon,
  retainFilter,
} from "./common.ts";
import { CannotAdoptError, NoSpaceError, NotReadyError } from "./errors.ts";
import { ipamDiagnostics } from "./diagnostics.ts";
import { adoptionBlocker } from "./reclaim.ts";
import { LocalRing } from "./local_ring.ts";
import { decodeMessage, encodeMessage, type Message, type Outgoing } from "./protocol.ts";
import { Reachability } from "./reachability.ts";
import { encodeRing, giveRange, isDead, livePeers, type RingState } from "./ring.ts";
import { chooseDonation, donorsInOrder, leaveRecipient } from "./space.ts";
import { Handovers, SpaceRequests } from "./space_exchange.ts";
import { notReadyReason } from "./standing.ts";
import { clusterStatus, noSpaceMessage } from "./status.ts";
import type { Allocation, Store } from "./store.ts";
import type {
  ClusterIpamOptions,
  ClusterIpamStatus,
  Diagnostic,
  IpamEvent,
  IpamInit,
  IpamTransport,
} from "./cluster_types.ts";

export class ClusterIpam implements Disposable {
  #store: Store;
  #cluster: Cidr;
  #me: string;
  #transport: IpamTransport;
  #init: IpamInit;
  #now: () => number;
  #random: () => number;
  #resendMs: number;
  #gossipIntervalMs: number;
  #reclaimAfterMs: number | undefined;
  #onEvent: (event: IpamEvent) => void;
  #book: AllocationBook;
  #ring: LocalRing;
  #lastBroadcast = "";
  #lastGossipAt = -Infinity;
  #requests: SpaceRequests;
  #handovers: Handovers;
  #reachability = new Reachability();
  /** After leave(): we only finish the hand-over; anything else would rejoin the ring. */
  #left = false;
  #closed = false;

  private constructor(options: ClusterIpamOptions) {
    this.#store = options.store;
    this.#cluster = options.clusterRange;
    this.#me = options.peerName;
    this.#transport = options.transport;
    this.#init = options.init;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#resendMs = options.resendMs ?? 1000;
    this.#gossipIntervalMs = options.gossipIntervalMs ?? 30_000;
    this.#reclaimAfterMs = options.reclaimAfterMs;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#book = new AllocationBook(options.store, options.clusterRange);
    this.#ring = LocalRing.load({
      store: options.store,
      book: this.#book,
      cluster: options.clusterRange,
      me: options.peerName,
      init: options.init,
      onEvent: this.#onEvent,
    });
    const io = {
      send: (peer: string, message: Outgoing) => this.#transport.send(peer, this.#message(message)),
      newId: () => this.#newId(),
      now: () => this.#now(),
    };
    this.#requests = new SpaceRequests(io, {
      timeoutMs: options.requestTimeoutMs ?? 2000,
      noSpace: (subnet, asked) =>
        new NoSpaceError(noSpaceMessage(this.status(), { subnet, asked })),
    });
    this.#handovers = new Handovers(io, { resendMs: this.#resendMs });
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

  /** This peer's ring state, encoded (for `GET /ring`). */
  ringState(): string {
    return encodeRing(this.#ring.state);
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
        owned: this.#ring.owned(),
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
      await this.#requests.want(options.subnet, () => this.#donors(options.subnet));
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
    const received = this.#ring.receive(from, text);
    if (received.kind === "refused") {
      this.#event("ignored", `Ignored IPAM state from "${from}": ${received.why}`);
    } else if (received.kind === "removed") {
      // A removed peer is back with its old identity; our state tells it to start clean.
      this.#event(
        "ignored",
        `Ignored IPAM state from removed peer "${from}" (gen ${received.gen})`,
      );
      this.#tellRemoved(from);
    } else if (received.changed) this.#broadcast(false);
  }

  /** Handles a unicast protocol message from a peer. */
  handleMessage(from: string, text: string): void {
    if (this.#closed || from === this.#me) return;
    const message = decodeMessage(text);
    if (!message) {
      this.#event("ignored", `Ignored malformed IPAM message from "${from}"`);
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
        this.handleState(from, message.state);
        this.#transport.send(from, this.#message({ t: "ack", id: message.id }));
        this.#requests.given(message.id);
        return;
      }
      case "state":
        this.handleState(from, message.state);
        return;
      case "pull":
        this.#transport.send(
          from,
          this.#message({ t: "state", id: message.id, state: encodeRing(this.#ring.state) }),
        );
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
    this.#event("reclaim", `Removed peer "${name}" (gen ${gen}) owning ${addresses} addresses`);
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
      reachable: this.#reachableNames(),
    });
    this.#left = true;
    const addresses = this.#ring.leave(recipient);
    this.#broadcast(true);
    this.#event("left", `Left the ring, ${addresses} addresses to ${recipient?.name ?? "nobody"}`);
    if (!recipient) return Promise.resolve({ givenTo: undefined, addresses });
    const id = this.#newId();
    this.#transport.send(
      recipient.name,
      this.#message({ t: "give", id, state: encodeRing(this.#ring.state) }),
    );
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
    this.#trackReachability(now);
    this.#settle();
    this.#pullIfWaiting();
    // A reclaim finishes only when every live peer has acknowledged it, and a broadcast can be
    // lost (e.g. sent along a path through the peer that just died). While one is unfinished,
    // re-send our state as often as donations are re-sent rather than every gossip interval.
    const interval = this.#reclaimUnfinished() ? this.#resendMs : this.#gossipIntervalMs;
    if (now - this.#lastGossipAt >= interval) this.#broadcast(true);
  }

  #reclaimUnfinished(): boolean {
    return this.#ring.state.entries.some((e) => isDead(this.#ring.state, e.owner, e.gen));
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
    const blocker = this.#left
      ? { reason: "not-live" as const, message: "this peer left the ring" }
      : adoptionBlocker(this.#ring.state, { name: this.#me, gen: this.#ring.gen });
    if (blocker) {
      throw new CannotAdoptError(
        `Cannot adopt the IPAM space on peer "${this.#me}": ${blocker.message}`,
        blocker.reason,
      );
    }
    this.#ring.adopt();
    this.#broadcast(false);
    return { orphaned: ownerlessSize(this.#ring.state) };
  }

  /** Why this peer's IPAM is not ready or not healthy, with what to do (GET /status). */
  diagnostics(): Diagnostic[] {
    const owned = this.#ring.owned();
    const used = owned.reduce((sum, range) => sum + this.#book.usedIn(range), 0);
    return ipamDiagnostics({
      state: this.#ring.state,
      me: this.#me,
      gen: this.#ring.gen,
      init: this.#init,
      cluster: this.#cluster,
      reachable: this.#reachableNames(),
      mustHear: this.#ring.mustHear,
      cutOffMs: this.#reachability.cutOffFor(this.#now()),
      reclaimAfterMs: this.#reclaimAfterMs,
      left: this.#left,
      owned: owned.reduce((sum, r) => sum + r.end - r.start, 0),
      strayAllocations: this.#book.size - used,
    });
  }

  /** Gossips the state now (e.g. when the mesh connects a new peer). */
  gossip(): void {
    this.#broadcast(true);
  }

  status(): ClusterIpamStatus {
    return clusterStatus({
      state: this.#ring.state,
      cluster: this.#cluster,
      me: this.#me,
      gen: this.#ring.gen,
      mode: this.#init.mode,
      owned: this.#ring.owned().map((range) => ({
        range,
        size: this.#book.usableIn(range),
        used: this.#book.usedIn(range),
      })),
      allocations: this.#book.size,
      reachable: this.#reachableNames(),
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

  #checkOpen(): void {
    if (this.#closed) throw new NotReadyError(`IPAM on peer "${this.#me}" is closed`);
  }

  #reachableNames(): Set<string> {
    return new Set(this.#transport.peers().filter((p) => p.reachable).map((p) => p.name));
  }

  /** Why allocation cannot proceed, or undefined when it can. */
  #waitingFor(): string | undefined {
    return notReadyReason({
      state: this.#ring.state,
      me: this.#me,
      init: this.#init,
      cluster: this.#cluster,
      mustHear: this.#ring.mustHear,
      cutOffMs: this.#reachability.cutOffFor(this.#now()),
      reclaimAfterMs: this.#reclaimAfterMs,
    });
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
    for (const peer of this.#reachableNames()) {
      this.#transport.send(peer, this.#message({ t: "pull", id: this.#newId() }));
    }
  }

  /** Our state, to a removed peer only, so that it learns it was removed and starts clean. */
  #tellRemoved(peer: string): void {
    this.#transport.send(
      peer,
      this.#message({ t: "state", id: "", state: encodeRing(this.#ring.state) }),
    );
  }

  #broadcast(force: boolean): void {
    if (this.#closed) return;
    const encoded = encodeRing(this.#ring.state);
    if (!force && encoded === this.#lastBroadcast) return;
    this.#lastBroadcast = encoded;
    this.#lastGossipAt = this.#now();
    this.#transport.broadcast(encoded);
  }

  #message(body: Outgoing): string {
    return encodeMessage(body, this.#ring.gen);
  }

  #newId(): string {
    return `${this.#me}-${Math.floor(this.#random() * 2 ** 48).toString(36)}`;
  }

  #event(kind: IpamEvent["kind"], message: string): void {
    this.#onEvent({ kind, message });
  }

  /** The peers to ask for space in `subnet` (or anywhere), best first. */
  #donors(subnet: Cidr | undefined): string[] {
    this.#ring.refreshRecord();
    return donorsInOrder(this.#ring.state, {
      me: this.#me,
      reachable: this.#reachableNames(),
      scope: cidrToRange(subnet ?? this.#cluster),
      subnet: subnet !== undefined,
    });
  }

  /** Answers a space request with half of our largest free run, or "none". */
  #donate(to: string, message: Extract<Message, { t: "req" }>): void {
    const choice = chooseDonation(this.#ring.state, {
      me: this.#me,
      requester: { name: to, gen: message.gen },
      ready: this.#waitingFor() === undefined,
      owned: this.#ring.owned(),
      scope: message.subnet ?? formatCidr(this.#cluster),
      used: this.#book.list().map((a) => a.address),
      usable: (range) => this.#book.usableIn(range),
    });
    if ("why" in choice) {
      this.#transport.send(to, this.#message({ t: "none", id: message.id, why: choice.why }));
      return;
    }
    const give = choice.give;
    this.#event("donated", `Gave ${formatRange(give)} to "${to}"`);
    this.#ring.write((state, from) =>
      giveRange(state, give, { from, to: { name: to, gen: message.gen } })
    );
    this.#broadcast(false);
    this.#transport.send(
      to,
      this.#message({ t: "give", id: message.id, state: encodeRing(this.#ring.state) }),
    );
    this.#handovers.sent(message.id, to);
  }

  #trackReachability(now: number): void {
    const others = livePeers(this.#ring.state).filter((p) => p.name !== this.#me).map((p) =>
      p.name
    );
    const reachable = this.#reachableNames();
    const majority = this.#reachability.update(now, reachable, others);
    if (this.#reclaimAfterMs === undefined || !majority) return;
    // Only a peer that reaches a majority reclaims, so a cut-off minority never takes the
    // majority's space; the minority stops allocating at half the delay (see #waitingFor).
    for (const name of others.filter((n) => !reachable.has(n))) {
      const away = this.#reachability.unreachableFor(name, now);
      if (away >= this.#reclaimAfterMs) {
        this.#event("reclaim", `Peer "${name}" unreachable for ${away} ms: reclaiming its space`);
        this.rmpeer(name);
      }
    }
  }
}

/** Every address of the range: what adopting an ownerless ring takes over. */
function ownerlessSize(state: RingState): number {
  const range = cidrToRange(parseCidr(state.range));
  return range.end - range.start;
}
