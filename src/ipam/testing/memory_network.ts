/**
 * An in-memory network for IPAM peers: the second implementation of `IpamTransport`, used by
 * tests and the benchmark. It loses, delays, reorders and partitions messages under the control
 * of a seeded random source, and delivers only when told to (`deliver`), so a run is a
 * deterministic function of its seed.
 */
import type { IpamTransport } from "../cluster_types.ts";

interface Queued {
  from: string;
  to: string;
  kind: "state" | "message";
  body: string;
  due: number;
}

interface Node {
  up: boolean;
  onMessage?: (from: string, message: string) => void;
  onState?: (from: string, state: string) => void;
}

export interface MemoryNetworkOptions {
  /** In [0, 1); defaults to Math.random. Pass a seeded one for reproducible runs. */
  random?: () => number;
  /** Chance that a message is lost. Default 0. */
  dropRate?: number;
  /** Messages are delayed 0..maxDelay delivery rounds, which also reorders them. Default 0. */
  maxDelay?: number;
}

/** A small seeded generator (mulberry32), good enough to drive simulations reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class MemoryNetwork {
  #random: () => number;
  #dropRate: number;
  #maxDelay: number;
  #nodes = new Map<string, Node>();
  #queue: Queued[] = [];
  #round = 0;
  /** Partition groups; peers in different groups cannot reach each other. */
  #group = new Map<string, number>();
  #sent = 0;

  constructor(options: MemoryNetworkOptions = {}) {
    this.#random = options.random ?? Math.random;
    this.#dropRate = options.dropRate ?? 0;
    this.#maxDelay = options.maxDelay ?? 0;
  }

  /** The transport for peer `name` (re-joining after a restart replaces the handlers). */
  join(name: string): IpamTransport {
    const node: Node = { up: true };
    this.#nodes.set(name, node);
    return {
      broadcast: (state) => {
        for (const other of this.#nodes.keys()) {
          if (other !== name) this.#enqueue({ from: name, to: other, kind: "state", body: state });
        }
      },
      send: (peer, message) =>
        this.#enqueue({ from: name, to: peer, kind: "message", body: message }),
      onMessage: (handler) => (node.onMessage = handler),
      onState: (handler) => (node.onState = handler),
      peers: () =>
        [...this.#nodes.keys()].filter((other) => other !== name).map((other) => ({
          name: other,
          reachable: this.canReach(name, other),
        })),
    };
  }

  /**
   * Queues `body` for `to` (every other peer when omitted) as if `from` had sent it: what a
   * hostile peer can make a relaying mesh report. Delivered like anything else (reachability
   * is checked between `from` and the receiver only when `from` is a joined peer).
   */
  forge(options: { from: string; to?: string; kind: "state" | "message"; body: string }): void {
    const targets = options.to ? [options.to] : [...this.#nodes.keys()];
    for (const to of targets.filter((t) => t !== options.from)) {
      this.#queue.push({
        from: options.from,
        to,
        kind: options.kind,
        body: options.body,
        due: this.#round + 1,
      });
    }
  }

  /** Takes a peer down: its queued messages are lost and nothing reaches it. */
  crash(name: string): void {
    const node = this.#nodes.get(name);
    if (node) node.up = false;
    this.#queue = this.#queue.filter((q) => q.from !== name && q.to !== name);
  }

  /** Splits the peers: each array is one side; unlisted peers form one more side. */
  partition(groups: string[][]): void {
    this.#group.clear();
    groups.forEach((group, i) => group.forEach((name) => this.#group.set(name, i + 1)));
  }

  heal(): void {
    this.#group.clear();
  }

  setDropRate(rate: number): void {
    this.#dropRate = rate;
  }

  canReach(from: string, to: string): boolean {
    const a = this.#nodes.get(from);
    const b = this.#nodes.get(to);
    return !!a?.up && !!b?.up && (this.#group.get(from) ?? 0) === (this.#group.get(to) ?? 0);
  }

  get pending(): number {
    return this.#queue.length;
  }

  get sent(): number {
    return this.#sent;
  }

  /**
   * Runs one delivery round: every message due by now is delivered in random order, or lost if
   * the two ends cannot reach each other at delivery time. Returns how many were delivered.
   */
  deliver(): number {
    this.#round++;
    const due = this.#queue.filter((q) => q.due <= this.#round);
    this.#queue = this.#queue.filter((q) => q.due > this.#round);
    for (let i = due.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [due[i], due[j]] = [due[j], due[i]];
    }
    let delivered = 0;
    for (const q of due) {
      const forged = !this.#nodes.has(q.from);
      if (!forged && !this.canReach(q.from, q.to)) continue;
      if (forged && !this.#nodes.get(q.to)?.up) continue;
      const node = this.#nodes.get(q.to)!;
      delivered++;
      if (q.kind === "state") node.onState?.(q.from, q.body);
      else node.onMessage?.(q.from, q.body);
    }
    return delivered;
  }

  /** Delivers until nothing is queued (or `limit` rounds); returns the rounds used. */
  settle(limit = 1000): number {
    let rounds = 0;
    while (this.#queue.length > 0 && rounds < limit) {
      this.deliver();
      rounds++;
    }
    return rounds;
  }

  #enqueue(message: Omit<Queued, "due">): void {
    this.#sent++;
    if (!this.#nodes.get(message.from)?.up) return;
    if (this.#dropRate > 0 && this.#random() < this.#dropRate) return;
    const delay = this.#maxDelay > 0 ? Math.floor(this.#random() * (this.#maxDelay + 1)) : 0;
    this.#queue.push({ ...message, due: this.#round + 1 + delay });
  }
}
