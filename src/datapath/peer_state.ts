/**
 * What the switch (kernel.ts) knows about one peer: its blob, its keys, the evidence on each
 * path and the current choice, and what that means for status and diagnostics. No I/O.
 */
import type { PeerBlob } from "./blob.ts";
import { deriveDirectionKeys, type DirectionKeys, REPLAY_WINDOW_BYTES } from "./crypto.ts";
import { peerMacs } from "./fdb_plan.ts";
import { type HealthTimings, type PathChoice, PathHealth } from "./health.ts";
import type { SleevePeerConfig } from "./sleeve_types.ts";
import type { Diagnostic, PeerPathStatus } from "./types.ts";
import { peerId } from "./wire.ts";

export interface PeerState {
  name: string;
  id: string;
  blob: PeerBlob;
  nextHop?: string;
  sessionKey?: Uint8Array;
  keys?: DirectionKeys;
  /** The nonce counter and the receive window of `keys`, shared with the sleeve's threads. */
  counter?: SharedArrayBuffer;
  window?: SharedArrayBuffer;
  fastdp: PathHealth;
  sleeve: PathHealth;
  relay: PathHealth;
  choice: PathChoice;
  seq: number;
  /** Until then a new peer waits for VXLAN before taking the sleeve (see PathInputs). */
  fastdpGraceUntil: number;
  /** MTU of our route to the peer's underlay address (a route `mtu` lock can lower it). */
  routeMtu?: number;
  /** Why the kernel has no route to the peer's underlay address, when it has none. */
  routeError?: string;
}

export function newPeerState(
  name: string,
  blob: PeerBlob,
  options: { timings: HealthTimings; now: number },
): PeerState {
  return {
    name,
    id: peerId(name),
    blob,
    fastdp: new PathHealth(options.timings),
    sleeve: new PathHealth(options.timings),
    relay: new PathHealth(options.timings),
    choice: { path: "down", encrypted: false, healthy: false, reason: "no heartbeat yet" },
    seq: 0,
    fastdpGraceUntil: options.now + options.timings.settleMs,
  };
}

function sameKey(a?: Uint8Array, b?: Uint8Array): boolean {
  return a === b || (a !== undefined && b !== undefined && a.length === b.length &&
    a.every((value, i) => value === b[i]));
}

/** Takes the pair's session key; a new key gets new direction keys, counter and window. */
export function setSessionKey(
  state: PeerState,
  key: Uint8Array | undefined,
  localName: string,
): void {
  if (sameKey(state.sessionKey, key)) return;
  state.sessionKey = key;
  state.keys = key ? deriveDirectionKeys(key, { local: localName, remote: state.name }) : undefined;
  // A new key starts a new nonce sequence (and the receiver a new replay window).
  state.counter = key ? new SharedArrayBuffer(8) : undefined;
  state.window = key ? new SharedArrayBuffer(REPLAY_WINDOW_BYTES) : undefined;
}

/** The largest underlay packet between us and the peer, bounded by both ends and the route. */
export function pathUnderlayMtu(state: PeerState, ourUnderlayMtu?: number): number {
  return Math.min(
    ourUnderlayMtu ?? Infinity,
    state.blob.underlayMtu,
    state.routeMtu ?? Infinity,
  );
}

/** What the sleeve needs to know about the peer. */
export function sleevePeerConfig(
  state: PeerState,
  options: { hop: string; mustEncrypt: boolean; underlayMtu?: number },
): SleevePeerConfig {
  return {
    id: state.id,
    name: state.name,
    ip: state.blob.ip,
    udpPort: state.blob.udpPort,
    vxlanPort: state.blob.vxlanPort,
    bridgeIp: state.blob.bridgeIp,
    bridgeMac: state.blob.bridgeMac,
    macs: peerMacs(state.blob),
    path: state.choice.path,
    hop: options.hop,
    mustEncrypt: options.mustEncrypt,
    // IPv4 and UDP headers
    segmentBytes: pathUnderlayMtu(state, options.underlayMtu) - 28,
    keys: state.keys,
    counter: state.counter,
    window: state.window,
  };
}

export function peerStatus(
  state: PeerState,
  options: { underlayMtu?: number; overhead: (path: PeerPathStatus["path"]) => number },
): PeerPathStatus {
  const { path, encrypted, reason, healthy } = state.choice;
  const mtu = pathUnderlayMtu(state, options.underlayMtu) - options.overhead(path);
  return { peer: state.name, path, encrypted, reason, mtu, healthy };
}

/**
 * What is wrong with one peer's data path: no route to its underlay address, or no path that
 * answers for longer than a failover takes.
 */
export function peerDiagnostics(
  state: PeerState,
  options: { now: number; deadAfterMs: number; vxlanPort: number; udpPort: number },
): Diagnostic[] {
  const out: Diagnostic[] = [];
  const ip = state.blob.ip;
  const relayed = state.choice.path === "relay";
  if (state.routeError) {
    out.push({
      code: "no-route-to-peer",
      severity: relayed ? "warning" : "error",
      message: `${state.routeError} (peer ${state.name})` +
        (relayed ? `: its pod traffic is relayed via ${state.nextHop}` : ""),
      fix: `Add a route toward ${ip} on this node, or make sure peer ${state.name} publishes ` +
        `an address this node can reach (its --host).`,
    });
  }
  const down = state.choice.path === "down" &&
    options.now >= state.fastdpGraceUntil + options.deadAfterMs;
  if (down) {
    out.push({
      code: "no-data-path",
      severity: "error",
      message: `No data path to peer ${state.name} (${ip}): ${state.choice.reason}`,
      fix: `Let UDP ${options.vxlanPort} (VXLAN) or ${options.udpPort} (userspace path) through ` +
        `between this node and ${ip}, in both directions; \`weft status connections\` shows ` +
        `each peer's path and why.`,
    });
  }
  return out;
}
