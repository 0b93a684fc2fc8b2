/**
 * A cluster of meshes on one in-memory network and one simulated clock, for tests: peers named
 * `p<N>` live at `10.0.0.<N+1>:6783` and are given `peers` by name. Each label keeps what a
 * state dir would (its identity key and the keys it bound to names) across restarts. Disposing
 * it stops every mesh and checks that none left a timer behind.
 */
import { SimClock } from "./clock.ts";
import { MemoryNetwork, type NetworkFaults } from "./memory_transport.ts";
import { IdentityKey } from "./keys.ts";
import { KnownPeers } from "./known_peers.ts";
import { Mesh } from "./mesh.ts";
import type { MeshOptions } from "./types.ts";

/** A repeatable generator (Park-Miller), so a failing run can be replayed. */
export function seededRandom(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

export class SimCluster {
  clock = new SimClock();
  random = seededRandom(42);
  network: MemoryNetwork;
  /** Meshes by label (the peer name unless `add` was given another). */
  meshes = new Map<string, Mesh>();
  /** What each label's state dir would hold. */
  state = new Map<string, { key: IdentityKey; known: KnownPeers }>();

  constructor(faults: NetworkFaults = {}) {
    this.network = new MemoryNetwork({ clock: this.clock, random: this.random, ...faults });
  }

  static address(name: string): string {
    return `10.0.0.${Number(name.slice(1)) + 1}:6783`;
  }

  /**
   * Starts a mesh named `name`. `placement.label` keeps it apart from another mesh of the same
   * name; `placement.address` puts it elsewhere than its name's address; `placement.key` gives
   * it that identity key (a clone) instead of its own.
   */
  async add(
    name: string,
    options: MeshOptions = {},
    placement: { label?: string; address?: string; key?: IdentityKey } = {},
  ): Promise<Mesh> {
    const label = placement.label ?? name;
    let state = this.state.get(label);
    if (!state) {
      state = { key: placement.key ?? IdentityKey.generate(), known: new KnownPeers() };
      this.state.set(label, state);
    }
    const mesh = new Mesh({ name, nickname: `node-${name}`, ...state }, {
      clock: this.clock,
      random: this.random,
      transport: this.network.transport(placement.address ?? SimCluster.address(name)),
      port: 6783,
      discovery: false,
      ...options,
      peers: (options.peers ?? []).map((p) => (p.includes(".") ? p : SimCluster.address(p))),
    });
    this.meshes.set(label, mesh);
    await mesh.start();
    return mesh;
  }

  get(label: string): Mesh {
    return this.meshes.get(label)!;
  }

  /** Advances until every running mesh holds the same topology of `n` peers, or throws. */
  converge(n: number, limitMs = 30_000): number {
    const start = this.clock.now();
    const done = () => {
      const meshes = [...this.meshes.values()];
      const digest = meshes[0].digest();
      return digest.startsWith(`${n}:`) && meshes.every((m) => m.digest() === digest) &&
        meshes.every((m) => Object.keys(m.routes()).length === n - 1);
    };
    // Agreement must survive a quiet moment: changes still being batched do not count.
    let stable = 0;
    while (stable < 2) {
      if (this.clock.now() - start >= limitMs) {
        throw new Error(`No convergence of ${n} peers within ${limitMs} ms`);
      }
      this.clock.advance(stable ? 300 : 50);
      stable = done() ? stable + 1 : 0;
    }
    return this.clock.now() - start;
  }

  /** Stops every mesh and checks that none left a timer armed. */
  async stop(): Promise<void> {
    for (const mesh of this.meshes.values()) await mesh.stop();
    this.clock.advance(120_000);
    if (this.clock.pending !== 0) {
      throw new Error(`A stopped mesh left ${this.clock.pending} timers behind`);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
