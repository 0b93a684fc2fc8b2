/**
 * Reclaiming the address space of peers that are gone: `rmpeer` by an operator (refused for
 * this node, a reachable peer or one the ring does not know), and a deleted Kubernetes Node's
 * space, the agent's half of the once-only reclaim (src/kube decides WHICH agent reclaims;
 * this decides WHEN it is safe and does it).
 *
 * The Node object says the machine is gone; the mesh may still see its agent for a few seconds
 * (until heartbeats time out), or for good when only the Node object was deleted and the
 * machine runs on. Removing a peer that is alive would take its pods' addresses away while it
 * still uses them, so the reclaimer waits, however long, while the peer is reachable (a
 * diagnostic says who and why), and stops waiting if the Node comes back. It also waits while
 * the IPAM is not open or has not heard the ring yet (after a restart): a reclaim that arrives
 * early is not lost. It returns when the space is reclaimed or provably needs no reclaim (no
 * weft peer by that name ever owned space, already removed, the Node is back), and throws
 * only on a failure worth retrying, which the caller does with backoff.
 */
import { BadRequestError, ConflictError, type Diagnostic, NotFoundError } from "../api/mod.ts";

/** What the reclaimer needs of the IPAM (ClusterIpam has it). */
export interface ReclaimIpam {
  status(): { ready: boolean; peers: Array<{ name: string; removed?: boolean }> };
  rmpeer(name: string): { peer: string; gen: number; addresses: number };
}

/** What it needs of the mesh: the peers it knows, with their Node names (nicknames). */
export interface ReclaimPeer {
  name: string;
  nickname: string;
  reachable: boolean;
  self?: boolean;
}

/**
 * `rmpeer`: reclaims the space of a peer that is gone for good, named by peer name or by
 * nickname (a Kubernetes Node name). The same tombstone whoever runs it, so it is safe on
 * several nodes at once.
 */
export function removePeer(
  nameOrNickname: string,
  options: { ipam: ReclaimIpam; peers: ReclaimPeer[] },
): { peer: string; gen: number; addresses: number } {
  const { ipam, peers } = options;
  const byNickname = peers.filter((p) => p.nickname === nameOrNickname);
  const ringPeers = new Set(ipam.status().peers.map((p) => p.name));
  const name = ringPeers.has(nameOrNickname)
    ? nameOrNickname
    : byNickname.length === 1
    ? byNickname[0].name
    : nameOrNickname;
  const peer = peers.find((p) => p.name === name);
  if (peer?.self) {
    throw new BadRequestError(`Cannot rmpeer "${nameOrNickname}": it is this node; use weft reset`);
  }
  if (peer?.reachable) {
    throw new ConflictError(
      `Cannot rmpeer "${nameOrNickname}": it is reachable; stop it first or let it leave with weft reset`,
    );
  }
  if (!ringPeers.has(name)) {
    throw new NotFoundError(`Cannot rmpeer "${nameOrNickname}": no such peer in the IPAM ring`);
  }
  return ipam.rmpeer(name);
}

export interface ReclaimerOptions {
  /** The IPAM, or undefined while it is not open. */
  ipam: () => ReclaimIpam | undefined;
  peers: () => ReclaimPeer[];
  signal: AbortSignal;
  log: (message: string) => void;
  /** How often to look again while waiting. */
  pollMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface ReclaimOptions {
  /** True when a Node of that name exists again: then nothing is reclaimed. */
  nodeExists?: () => boolean;
}

interface Waiting {
  node: string;
  peer?: string;
  since: number;
  why: "ipam-not-open" | "ring-unknown" | "peer-reachable";
}

export class DeletedNodeReclaimer {
  readonly #options: ReclaimerOptions;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #now: () => number;
  readonly #waiting = new Map<string, Waiting>();

  constructor(options: ReclaimerOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? sleep;
    this.#now = options.now ?? Date.now;
  }

  /** Reclaims the space of the peer that ran on Node `nodeName`; see the module notes. */
  async reclaim(nodeName: string, options: ReclaimOptions = {}): Promise<void> {
    const { signal, log } = this.#options;
    try {
      while (!signal.aborted) {
        if (options.nodeExists?.()) {
          log(`Node ${nodeName} exists again: its address space is not reclaimed`);
          return;
        }
        const step = this.#step(nodeName);
        if (step.done) return;
        this.#wait(nodeName, step.waiting);
        await this.#sleep(this.#options.pollMs ?? 500, signal);
      }
    } finally {
      this.#waiting.delete(nodeName);
    }
  }

  /** One look: reclaim now, or say what to wait for. Throws when rmpeer fails. */
  #step(nodeName: string): { done: true } | { done: false; waiting: Omit<Waiting, "since"> } {
    const ipam = this.#options.ipam();
    if (!ipam) return { done: false, waiting: { node: nodeName, why: "ipam-not-open" } };
    const candidates = this.#options.peers().filter((p) =>
      !p.self && (p.nickname === nodeName || p.name === nodeName)
    );
    const ring = ipam.status();
    const inRing = candidates.map((p) => ring.peers.find((r) => r.name === p.name)).filter(
      (r) => r !== undefined,
    );
    if (inRing.length === 0) {
      // the ring is what we compare against: until this IPAM has heard it, "not in the ring"
      // proves nothing
      if (!ring.ready) return { done: false, waiting: { node: nodeName, why: "ring-unknown" } };
      this.#options.log(
        `Node ${nodeName} was deleted, but no weft peer of that name owns address space here: ` +
          `nothing to reclaim`,
      );
      return { done: true };
    }
    for (const entry of inRing) {
      if (entry.removed) continue;
      const peer = candidates.find((p) => p.name === entry.name)!;
      if (peer.reachable) {
        return { done: false, waiting: { node: nodeName, peer: peer.name, why: "peer-reachable" } };
      }
      const result = ipam.rmpeer(peer.name);
      this.#options.log(
        `reclaimed ${result.addresses} addresses of deleted Node ${nodeName} (${result.peer})`,
      );
    }
    return { done: true };
  }

  #wait(nodeName: string, waiting: Omit<Waiting, "since">): void {
    const before = this.#waiting.get(nodeName);
    if (before?.why === waiting.why && before.peer === waiting.peer) return;
    this.#waiting.set(nodeName, { ...waiting, since: this.#now() });
    this.#options.log(`reclaim of deleted Node ${nodeName} waits: ${describe(waiting)}`);
  }

  /** Reclaims that wait, and for what: a warning each. */
  diagnostics(): Diagnostic[] {
    return [...this.#waiting.values()].map((waiting) => ({
      code: "reclaim-waiting",
      severity: "warning",
      message: `The address space of deleted Node ${waiting.node} is not reclaimed yet: ${
        describe(waiting)
      } (for ${Math.round((this.#now() - waiting.since) / 1000)} s)`,
      fix: waiting.why === "peer-reachable"
        ? `If the machine is gone for good, stop weft on it (or run \`weft reset\` there); the ` +
          `space is reclaimed as soon as its peer is unreachable. If the Node was deleted by ` +
          `mistake, re-create it and nothing is reclaimed.`
        : "Nothing to do: the reclaim runs once the IPAM is ready (see `weft status ipam`).",
    }));
  }
}

function describe(waiting: Omit<Waiting, "since">): string {
  switch (waiting.why) {
    case "ipam-not-open":
      return "the IPAM is not open yet";
    case "ring-unknown":
      return "the IPAM has not heard the ring from its peers yet";
    case "peer-reachable":
      return `its weft peer ${waiting.peer} is still reachable, so it may still be in use`;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
