/**
 * The contract between the agent and a data path. The agent learns peers from the mesh and
 * hands them over as opaque blobs; nothing outside src/datapath looks inside a blob.
 */

/** A remote node as the mesh reports it. */
export interface DatapathPeer {
  /** The peer's mesh name (unique in the cluster). */
  name: string;
  /** The blob the peer published via its `localData()`. */
  data: string;
  /** The mesh's next hop towards this peer, when it is not reached directly. */
  nextHop?: string;
  /** Shared secret from the mesh handshake; when set, this pair's traffic must be encrypted. */
  sessionKey?: Uint8Array;
}

/** How frames for a peer travel right now. */
export type PathKind = "fastdp" | "sleeve" | "relay" | "down";

export interface PeerPathStatus {
  peer: string;
  path: PathKind;
  /** True when the frames on `path` are encrypted (only sleeve and relay can be). */
  encrypted: boolean;
  /** Why this path was chosen, in words for `weft status connections`. */
  reason: string;
  /** The largest pod MTU this path carries without fragmenting on the underlay. */
  mtu: number;
  healthy: boolean;
}

/** A local endpoint on the bridge (a pod, or the bridge itself). */
export interface Endpoint {
  mac: string;
  ip: string;
}

/**
 * Something wrong, said for people (CONTRACTS #1: the same shape in every area; the agent
 * gathers them into GET /status `problems`).
 */
export interface Diagnostic {
  /** A stable kebab-case id, e.g. "no-route-to-peer". */
  code: string;
  severity: "error" | "warning";
  /** What is wrong, with the specifics (peers, addresses, numbers). */
  message: string;
  /** What a person should do about it. */
  fix: string;
}

export interface Datapath {
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Our blob: underlay endpoint, ports, bridge and pod MACs/IPs. Empty while the underlay
   * address is not known (no peer yet, or none with a route): publish nothing then.
   */
  localData(): string;
  /** Our pods (and bridge) changed; the next `localData()` reflects it. */
  setLocalEndpoints(entries: Endpoint[]): void;
  upsertPeer(peer: DatapathPeer): Promise<void>;
  removePeer(name: string): Promise<void>;
  status(): PeerPathStatus[];
  /** The MTU pods on this node should use. */
  mtu(): number;
  /**
   * Addresses of peers known before their blobs are (the mesh's targets and connections,
   * `host:port`): the route toward them tells which of our addresses is the underlay.
   */
  setUnderlayHints?(addresses: string[]): Promise<void>;
  /** Why pod traffic to some peer cannot flow, and what to do. */
  diagnostics?(): Diagnostic[];
}

export type DatapathMode = "auto" | "fastdp" | "sleeve";

/** The data path was used in a state that does not allow it (not started, no bridge, ...). */
export class DatapathStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatapathStateError";
  }
}
