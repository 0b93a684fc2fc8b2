/**
 * The kernel data path's options and their defaults, and the per-packet overheads its MTU
 * arithmetic uses.
 */
import { VNET_HEADER_BYTES } from "../net/tap.ts";
import { TAG_BYTES } from "./crypto.ts";
import { DEFAULT_TIMINGS, type HealthTimings } from "./health.ts";
import type { DatapathMode, PathKind } from "./types.ts";
import { HEADER_BYTES, RECORD_HEADER_BYTES } from "./wire.ts";

/** Outer IPv4 + UDP + VXLAN + inner Ethernet. */
export const VXLAN_OVERHEAD = 20 + 8 + 8 + 14;
/** Outer IPv4 + UDP + sleeve header + AEAD tag + record length + virtio-net header + Ethernet. */
export const SLEEVE_OVERHEAD = 20 + 8 + HEADER_BYTES + TAG_BYTES + RECORD_HEADER_BYTES +
  VNET_HEADER_BYTES + 14;

export function overheadOf(path: PathKind): number {
  return path === "fastdp" ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
}

export interface KernelDatapathOptions {
  /** Our mesh name: identifies us on the wire and in key derivation. */
  name: string;
  bridge: string;
  /** Our underlay address (`--host`); otherwise the route toward the peers decides. */
  underlayIp?: string;
  vxlanPort?: number;
  udpPort?: number;
  vni?: number;
  /** Pod MTU override (WEAVE_MTU); otherwise derived from the underlay. */
  mtu?: number;
  /** Require encryption with every peer (no plaintext fallback, no fast path). */
  encrypt?: boolean;
  mode?: DatapathMode;
  vxlanDevice?: string;
  tapDevice?: string;
  heartbeatMs?: number;
  timings?: HealthTimings;
  /**
   * Module the sleeve worker threads run. Default: sleeve_worker.ts beside this file (running
   * from source). A bundle has no such file: pass `Deno.mainModule` and make the entry call
   * `installSleeveWorker()` instead of its normal work when `self.name === SLEEVE_WORKER_NAME`.
   */
  workerUrl?: string;
  /** The sleeve's threads stop after this long without a peer or traffic needing them. */
  sleeveIdleMs?: number;
  /**
   * The node's firewall for the data path (underlay_guard.ts), on by default; `false` only
   * for measuring what it costs.
   */
  firewall?: boolean;
  /** TCP ports pods must not reach on the node (besides the UDP ports above): mesh and API. */
  meshPort?: number;
  apiPort?: number;
  now?: () => number;
  log?: (message: string) => void;
}

export type ResolvedOptions =
  & Required<Omit<KernelDatapathOptions, "underlayIp" | "mtu" | "sleeveIdleMs">>
  & { underlayIp?: string; mtu?: number; sleeveIdleMs?: number };

/** sleeve_worker.ts when the source tree is here; "" in a bundle (start() then says why). */
function defaultWorkerUrl(): string {
  const beside = new URL("./sleeve_worker.ts", import.meta.url);
  try {
    Deno.statSync(beside);
    return beside.href;
  } catch {
    return "";
  }
}

export function resolveOptions(options: KernelDatapathOptions): ResolvedOptions {
  const vxlanPort = options.vxlanPort ?? 6784;
  // Spelled out rather than spread over defaults, so a new option without a default fails to
  // type-check instead of arriving as undefined.
  return {
    name: options.name,
    bridge: options.bridge,
    underlayIp: options.underlayIp,
    mtu: options.mtu,
    sleeveIdleMs: options.sleeveIdleMs,
    vxlanPort,
    udpPort: options.udpPort ?? 6783,
    vni: options.vni ?? 1,
    encrypt: options.encrypt ?? false,
    mode: options.mode ?? "auto",
    vxlanDevice: options.vxlanDevice ?? `vxlan-${vxlanPort}`,
    tapDevice: options.tapDevice ?? "weft-sleeve",
    heartbeatMs: options.heartbeatMs ?? 500,
    firewall: options.firewall ?? true,
    meshPort: options.meshPort ?? 6783,
    apiPort: options.apiPort ?? 6784,
    workerUrl: options.workerUrl ?? defaultWorkerUrl(),
    timings: options.timings ?? DEFAULT_TIMINGS,
    now: options.now ?? (() => performance.now()),
    log: options.log ?? (() => {}),
  };
}
