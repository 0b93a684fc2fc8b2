/** The mesh's public shapes: its options (and their defaults) and what its status calls return. */
import type { Clock } from "./clock.ts";
import type { ConnectionInfo } from "./record.ts";
import type { Transport } from "./transport.ts";

export interface MeshOptions {
  /** Where the peer name and last incarnation are kept. */
  stateDir?: string;
  name?: string;
  nickname?: string;
  /** Shared secret; without one on every peer, connections are unauthenticated. */
  password?: string | Uint8Array;
  host?: string;
  port?: number;
  /**
   * This host's addresses, to recognise itself in `peers` (a list naming every node). Default:
   * the machine's interfaces when listening on all addresses, else the listening host.
   */
  hostAddresses?: string[];
  /** Initial targets, `host[:port]`. */
  peers?: string[];
  /** Also dial peers learnt through gossip. Default true. */
  discovery?: boolean;
  connLimit?: number;
  tls?: { cert: string; key: string };
  /** Extra PEM roots the WebSocket client trusts when dialling `wss://`. */
  caCerts?: string[];
  heartbeatMs?: number;
  deadAfterMs?: number;
  handshakeTimeoutMs?: number;
  /** Anti-entropy period: how often each link compares digests. */
  gossipIntervalMs?: number;
  /** How long changes are coalesced before they are pushed. */
  batchMs?: number;
  /** How long a graph change waits before routes are recomputed. */
  routeDelayMs?: number;
  /** How long an unreachable peer's record is kept. */
  ageOutMs?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
  maxFrameBytes?: number;
  clock?: Clock;
  random?: () => number;
  transport?: Transport;
  log?: (message: string) => void;
}

/** The options that have defaults, filled in. */
export type MeshSettings = Required<
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

export function meshSettings(options: MeshOptions): MeshSettings {
  return {
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
}

/** `self`: a target that turned out to be this peer (by address, or it answered as us). */
export type ConnectionState = "connecting" | "established" | "failed" | "retrying" | "self";

export interface PeerStatus {
  name: string;
  nickname: string;
  incarnation: string;
  version: number;
  self: boolean;
  reachable: boolean;
  /** When this peer's record last changed here, or when it was last reachable (ms epoch). */
  lastSeen: number;
  connections: ConnectionInfo[];
  data: Record<string, string>;
}

export interface ConnectionStatus {
  address: string;
  peer?: string;
  direction: "outbound" | "inbound";
  state: ConnectionState;
  since: number;
  lastError?: string;
  nextAttempt?: number;
}

export interface MeshMetrics {
  connections: Record<ConnectionState, number>;
  terminations: number;
  gossipBytesSent: number;
  gossipBytesReceived: number;
}

export type MeshEvent = "peer-up" | "peer-down" | "peer-changed" | "peer-removed";
export type MessageHandler = (payload: string, from: string) => void;
