/** The mesh's public shapes: its options and what its status calls return. */
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

export type ConnectionState = "connecting" | "established" | "failed" | "retrying";

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
