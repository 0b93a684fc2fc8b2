/**
 * What the sleeve engine (sleeve.ts) is configured with, what it needs of the TAP and the socket,
 * and what it reports: shared by the engine, the worker threads and their supervisor, kept apart
 * so that a thread that only passes configurations along does not load the engine.
 */
import type { Datagram } from "../net/udp.ts";
import type { DirectionKeys } from "./crypto.ts";
import type { PathKind } from "./types.ts";

export interface SleevePeerConfig {
  id: string;
  name: string;
  ip: string;
  udpPort: number;
  vxlanPort: number;
  bridgeIp: string;
  bridgeMac: string;
  macs: string[];
  path: PathKind;
  /** Id of the peer to hand this peer's datagrams to: itself, or the mesh's next hop. */
  hop: string;
  mustEncrypt: boolean;
  /** Largest sleeve datagram that crosses the underlay to this peer unfragmented. */
  segmentBytes: number;
  keys?: DirectionKeys;
  /** Shared nonce counter for `keys`; a new one comes with every new session key. */
  counter?: SharedArrayBuffer;
  /** Shared receive window for `keys` (REPLAY_WINDOW_BYTES), renewed with `counter`. */
  window?: SharedArrayBuffer;
}

export interface SleeveConfig {
  generation: number;
  self: string;
  vni: number;
  udpPort: number;
  bridgeMac: string;
  bridgeIp: string;
  /** The socket's UDP_SEGMENT size, or 0 when the kernel refused GSO (segments go one by one). */
  gsoBytes: number;
  peers: SleevePeerConfig[];
}

/** What the engine needs of the sleeve socket (a `UdpSocket`, or an in-memory one in tests). */
export interface DatagramPort {
  /** Sends one datagram (or a GSO train of segments); 0, or the errno. */
  sendTo(data: Uint8Array, to: { address: string; port: number }): number;
  receiveInto(buffer: Uint8Array): Datagram | undefined;
}

/** What the engine needs of the TAP (a `TapDevice`, or an in-memory one in tests). */
export interface FramePort {
  readInto(buffer: Uint8Array): number;
  write(frame: Uint8Array): boolean;
}

/**
 * Evidence for the control loop: `peer` answered on `path`; or (from an engine asked to report
 * it) pod traffic arrived that the userspace path must carry, to us or to relay.
 */
export type SleeveEvent =
  | { type: "answered"; peer: string; path: "fastdp" | "sleeve" | "relay" }
  | { type: "traffic" };

export interface SleeveCounters {
  framesFromTap: number;
  framesToTap: number;
  bytesFromTap: number;
  datagramsSent: number;
  datagramsReceived: number;
  relayed: number;
  dropped: Record<string, number>;
}

export function emptyCounters(): SleeveCounters {
  return {
    framesFromTap: 0,
    framesToTap: 0,
    bytesFromTap: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    relayed: 0,
    dropped: {},
  };
}

export function addCounters(into: SleeveCounters, from: SleeveCounters): SleeveCounters {
  into.framesFromTap += from.framesFromTap;
  into.framesToTap += from.framesToTap;
  into.bytesFromTap += from.bytesFromTap;
  into.datagramsSent += from.datagramsSent;
  into.datagramsReceived += from.datagramsReceived;
  into.relayed += from.relayed;
  for (const [reason, count] of Object.entries(from.dropped)) {
    into.dropped[reason] = (into.dropped[reason] ?? 0) + count;
  }
  return into;
}
