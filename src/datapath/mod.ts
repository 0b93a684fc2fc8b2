/**
 * The data path: how frames between pods on different nodes travel.
 *
 * Design notes. The agent drives a `Datapath` from mesh events; the data path never imports the
 * mesh, and what a node tells its peers about its data path is an opaque blob only this folder
 * decodes, so the two can evolve apart. The kernel implementation prefers VXLAN (fast, never
 * encrypted here: this kernel has no IPsec) and falls back per peer to a userspace sleeve over a
 * TAP, which can relay through the mesh's next hop and encrypt with keys from the mesh handshake.
 * Path choice, the wire format, key handling, the forwarding-table plan and the sleeve engine
 * are pure modules with tests beside them. Three modules touch the system, through src/net:
 * kernel.ts is the per-peer switch (which path each peer's frames take), vxlan_device.ts owns
 * the VXLAN device and the forwarding entries, sleeve_supervisor.ts the TAP, the socket and the
 * worker threads (sleeve_thread.ts: blocking poll() through FFI, because a nonblocking FFI call
 * on the event loop cost milliseconds per frame), underlay_guard.ts the node's nftables guard
 * (who may send us VXLAN and sleeve packets; what pods may not reach). A test double lives in
 * testing.ts.
 */
import { KernelDatapath, type KernelDatapathOptions } from "./kernel.ts";
import type { Datapath } from "./types.ts";

export {
  type Datapath,
  type DatapathMode,
  type DatapathPeer,
  DatapathStateError,
  type Endpoint,
  type PathKind,
  type PeerPathStatus,
} from "./types.ts";
export {
  type DatapathCounters,
  KernelDatapath,
  type KernelDatapathOptions,
  SLEEVE_OVERHEAD,
  VXLAN_OVERHEAD,
} from "./kernel.ts";
export { decodePeerBlob, type PeerBlob, PeerBlobError } from "./blob.ts";
export { installSleeveWorker, SLEEVE_WORKER_NAME } from "./sleeve_thread.ts";
export { GUARD_RULES, GUARD_TABLE, removeUnderlayGuard } from "./underlay_guard.ts";

/** Builds the kernel data path; call `start()` inside the node's network namespace. */
export function createDatapath(options: KernelDatapathOptions): Promise<Datapath> {
  return Promise.resolve(new KernelDatapath(options));
}
