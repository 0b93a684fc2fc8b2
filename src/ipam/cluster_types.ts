/**
 * The public shapes of cluster IPAM: what it needs from the mesh (`IpamTransport`), how it
 * starts (`IpamInit`), what it reports. Kept apart from the protocol so the agent and the API
 * can depend on these without reading the protocol code.
 */
import type { Cidr } from "../net/cidr.ts";
import type { IpamStatus } from "./common.ts";
import type { IpamMode } from "./ring.ts";
import type { Store } from "./store.ts";
import type { PeerSigner } from "./authority.ts";

export interface IpamTransport {
  /** Gossip our ring state to every peer (channel "ipam"). */
  broadcast(state: string): void;
  /** Unicast to one peer (space requests, donations, acks); may be lost. */
  send(peer: string, message: string): void;
  /** Optional: when present, ClusterIpam registers itself; otherwise call handleMessage. */
  onMessage?(handler: (from: string, message: string) => void): void;
  /** Optional: when present, ClusterIpam registers itself; otherwise call handleState. */
  onState?(handler: (from: string, state: string) => void): void;
  /** Peers the mesh knows, and whether we can reach them now. */
  peers(): Array<{ name: string; reachable: boolean }>;
}

/** `--ipalloc-init`: how the first split of the range is made. */
export type IpamInit =
  | { mode: "consensus"; peers: number }
  | { mode: "seed"; seeds: readonly string[] }
  | { mode: "observer" };

/** Parses `consensus=N`, `seed=a,b,c` or `observer`; throws TypeError naming the bad text. */
export function parseIpamInit(text: string): IpamInit {
  const trimmed = text.trim();
  if (trimmed === "observer") return { mode: "observer" };
  const consensus = /^consensus=(\d+)$/.exec(trimmed);
  if (consensus && Number(consensus[1]) >= 1) {
    return { mode: "consensus", peers: Number(consensus[1]) };
  }
  const seed = /^seed=(.+)$/.exec(trimmed);
  if (seed) {
    const seeds = seed[1].split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (seeds.length > 0) return { mode: "seed", seeds: [...new Set(seeds)].sort() };
  }
  throw new TypeError(
    `Invalid --ipalloc-init "${text}": expected consensus=N (N >= 1), seed=peer,peer or observer`,
  );
}

export interface IpamEvent {
  kind:
    | "reset"
    | "reclaim"
    | "donated"
    | "received"
    | "ring-created"
    | "ignored"
    | "left"
    /** The state file failed (full, read-only, I/O): once per outage. */
    | "store";
  message: string;
}

export interface ClusterIpamOptions {
  store: Store;
  clusterRange: Cidr;
  peerName: string;
  transport: IpamTransport;
  init: IpamInit;
  /**
   * Signs what this peer writes and checks what others wrote (CONTRACTS #2): the agent passes
   * `mesh.signer()`. Required: an IPAM that checked nothing would let anyone with the mesh
   * password write in any peer's name. (Tests use the signers of testing.ts.)
   */
  signer: PeerSigner;
  /** Milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
  /** In [0, 1); used for request ids only. Defaults to Math.random. */
  random?: () => number;
  /** A space request unanswered this long goes to the next donor. Default 2000. */
  requestTimeoutMs?: number;
  /** An unacknowledged donation is resent after this long. Default 1000. */
  resendMs?: number;
  /** Re-gossip the state at least this often. Default 30000. */
  gossipIntervalMs?: number;
  /** Reclaim peers unreachable this long. Default undefined: off. */
  reclaimAfterMs?: number;
  /**
   * A removal (rmpeer, from any peer) is acknowledged only once its peer has been out of reach
   * this long, so a live, reachable peer's space is never reclaimed. Default 10000.
   */
  removalGraceMs?: number;
  /** Log hook: resets, reclaims, donations. */
  onEvent?: (event: IpamEvent) => void;
}

/**
 * One reason this node is not ready or not healthy (the shape every area declares alike; the
 * agent gathers them into GET /status `problems`). `code` is a stable kebab-case id.
 */
export interface Diagnostic {
  code: string;
  severity: "error" | "warning";
  /** What is wrong, with the specifics: peer names, numbers. */
  message: string;
  /** What a person should do about it. */
  fix: string;
}

export interface PeerStatus {
  name: string;
  gen: number;
  mode: IpamMode;
  /** Addresses of the range this peer owns, from the ring. */
  owned: number;
  /** As last published by the peer (live for this node). */
  used: number;
  free: number;
  reachable: boolean;
  removed: boolean;
  left: boolean;
}

export interface ClusterIpamStatus extends IpamStatus {
  gen: number;
  peers: PeerStatus[];
  /** Share of the cluster range owned by peers we cannot reach, 0-100. */
  unreachablePercentage: number;
  pendingRequests: number;
  /** Space nobody owns yet: reclaims waiting for live peers to acknowledge. */
  reclaims: Array<{ peer: string; addresses: number; waitingOn: string[] }>;
  /** Every owner is gone: nothing is allocatable until an operator runs adoptOrphans(). */
  ownerless: boolean;
  /**
   * Allocations outside the ranges this peer owns. Always 0 unless the state file was used by
   * single-node IPAM before (switching modes needs `weft reset`) or something is badly wrong.
   */
  strayAllocations: number;
}
