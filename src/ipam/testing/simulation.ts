/**
 * A whole IPAM cluster in one process: ClusterIpam peers over a MemoryNetwork, memory stores
 * that survive a simulated restart, and a fake clock. Used by the unit tests, the property
 * tests in tests/ and bench/ipam.ts, so they all exercise the same protocol code as the agent.
 * `using sim = new Simulation()` closes every peer at the end of the test.
 */
import { type Cidr, parseCidr } from "../../net/cidr.ts";
import { ClusterIpam } from "../cluster_ipam.ts";
import type { IpamEvent, IpamInit } from "../cluster_types.ts";
import { MemoryNetwork, seededRandom } from "./memory_network.ts";
import type { Allocation } from "../store.ts";
import { MemoryStore, unclosable } from "./memory_store.ts";
import { FailingStore } from "./failing_store.ts";
import { MemorySigners } from "./memory_signers.ts";
import type { PeerSigner } from "../authority.ts";
import type { StoreFailure } from "../errors.ts";

export interface SimulationOptions {
  range?: string;
  seed?: number;
  dropRate?: number;
  maxDelay?: number;
  /** Milliseconds the fake clock advances per tick. Default 500. */
  tickMs?: number;
  requestTimeoutMs?: number;
  reclaimAfterMs?: number;
  /** Periodic re-gossip, in fake milliseconds. Default 5000 (10 ticks). */
  gossipIntervalMs?: number;
  /** A removed peer is acknowledged after this long out of reach. Default 1000 (2 ticks). */
  removalGraceMs?: number;
  /** Signs for each peer; default: an Ed25519 key per peer (MemorySigners). */
  signers?: { for(name: string): PeerSigner };
}

export class Simulation implements Disposable {
  readonly network: MemoryNetwork;
  readonly range: Cidr;
  readonly random: () => number;
  readonly events: Array<IpamEvent & { peer: string }> = [];
  /** Every peer's identity key (an insider in a test gets its signer here too). */
  readonly signers: { for(name: string): PeerSigner };
  #clock = 1_000_000;
  #tickMs: number;
  #options: SimulationOptions;
  #stores = new Map<string, MemoryStore>();
  #failing = new Map<string, FailingStore>();
  #peers = new Map<string, ClusterIpam>();
  #inits = new Map<string, IpamInit>();

  constructor(options: SimulationOptions = {}) {
    this.#options = options;
    this.random = seededRandom(options.seed ?? 1);
    this.range = parseCidr(options.range ?? "10.32.0.0/24");
    this.network = new MemoryNetwork({
      random: this.random,
      dropRate: options.dropRate,
      maxDelay: options.maxDelay,
    });
    this.#tickMs = options.tickMs ?? 500;
    this.signers = options.signers ?? new MemorySigners();
  }

  /** A simulation whose peers `names` started with `init` and settled (e.g. an agreed ring). */
  static async withPeers(
    names: readonly string[],
    init: IpamInit,
    options: SimulationOptions = {},
  ): Promise<Simulation> {
    const sim = new Simulation(options);
    for (const name of names) await sim.start(name, init);
    sim.settle();
    return sim;
  }

  /** Closes every running peer (their pending requests fail with NotReadyError). */
  [Symbol.dispose](): void {
    for (const ipam of this.#peers.values()) ipam.close();
    this.#peers.clear();
  }

  get now(): number {
    return this.#clock;
  }

  /** Starts (or restarts, keeping its store) peer `name`; `fresh` wipes its store first. */
  async start(
    name: string,
    init: IpamInit,
    options: { fresh?: boolean } = {},
  ): Promise<ClusterIpam> {
    this.#peers.get(name)?.close();
    if (options.fresh || !this.#stores.has(name)) {
      this.#stores.set(name, new MemoryStore());
      this.#failing.set(
        name,
        new FailingStore(unclosable(this.#stores.get(name)!), `/sim/${name}/weft.db`),
      );
    }
    this.#inits.set(name, init);
    const ipam = await ClusterIpam.open({
      store: this.#failing.get(name)!,
      clusterRange: this.range,
      peerName: name,
      transport: this.network.join(name),
      init,
      now: () => this.#clock,
      random: this.random,
      requestTimeoutMs: this.#options.requestTimeoutMs ?? 2000,
      reclaimAfterMs: this.#options.reclaimAfterMs,
      removalGraceMs: this.#options.removalGraceMs ?? 1000,
      signer: this.signers.for(name),
      gossipIntervalMs: this.#options.gossipIntervalMs ?? 5000,
      onEvent: (event) => this.events.push({ ...event, peer: name }),
    });
    this.#peers.set(name, ipam);
    ipam.gossip();
    return ipam;
  }

  /** Makes peer `name`'s store fail like a full or read-only disk (undefined: works again). */
  failStore(
    name: string,
    reason: StoreFailure | undefined,
    options: { at?: "write" | "commit" } = {},
  ): void {
    const store = this.#failing.get(name);
    if (!store) throw new RangeError(`No store for peer "${name}" in the simulation`);
    store.fail(reason, options);
  }

  /** Stops a peer without a word to the others (its store survives for restart). */
  crash(name: string): void {
    this.network.crash(name);
    this.#peers.get(name)?.close();
    this.#peers.delete(name);
  }

  restart(name: string): Promise<ClusterIpam> {
    return this.start(name, this.#inits.get(name)!);
  }

  peer(name: string): ClusterIpam {
    const ipam = this.#peers.get(name);
    if (!ipam) throw new RangeError(`No running peer "${name}" in the simulation`);
    return ipam;
  }

  get running(): string[] {
    return [...this.#peers.keys()];
  }

  /** Stored allocations of every peer, running or crashed (a crashed node's pods live on). */
  storedAllocations(name: string): Allocation[] {
    return this.#stores.get(name)?.loadAllocations() ?? [];
  }

  get known(): string[] {
    return [...this.#stores.keys()];
  }

  /** Advances the clock by one tick on every running peer, then delivers one round. */
  step(): void {
    this.#clock += this.#tickMs;
    for (const ipam of this.#peers.values()) ipam.tick();
    this.network.deliver();
  }

  /** Delivers and ticks until the network is quiet (bounded). */
  settle(rounds = 200): void {
    for (let i = 0; i < rounds; i++) {
      this.network.settle();
      this.step();
      if (this.network.pending === 0 && i > 2) {
        this.network.settle();
        if (this.network.pending === 0) return;
      }
    }
  }

  /**
   * Waits for `promise` while delivering messages and ticking, as the real event loop would.
   * Throws when it has not settled after `rounds` rounds: a hang is a bug worth a message.
   */
  async drive<T>(promise: Promise<T>, rounds = 400): Promise<T> {
    let done = false;
    promise.then(() => (done = true), () => (done = true));
    for (let i = 0; i < rounds && !done; i++) {
      for (let k = 0; k < 5 && !done; k++) await null;
      if (done) break;
      if (this.network.pending > 0) this.network.deliver();
      else this.step();
    }
    if (!done) throw new Error(`Simulated request did not settle within ${rounds} rounds`);
    return await promise;
  }
}
