/**
 * IPAM: which pod interface holds which address, and which node may hand out which addresses.
 *
 * Design notes. Allocation is a synchronous choose-and-record step over a `Store`, so the agent
 * can serve concurrent CNI ADDs without locks and without duplicates. A node never owns "the
 * whole range": it owns the ranges the shared ring gives it, and peers move ranges between
 * them (ring.ts is the mergeable state; consensus.ts, space.ts, reclaim.ts and status.ts are
 * the pure decisions; cluster_ipam.ts is the I/O and the protocol glue). Time, randomness and
 * the network are passed in, so a whole cluster runs in one test process: the doubles for
 * that live in testing.ts, never here.
 */
export {
  CannotAdoptError,
  IpamConflictError,
  NoSpaceError,
  NotReadyError,
  type StoreFailure,
  StoreUnavailableError,
} from "./errors.ts";
export { type Allocation, DuplicateAllocationError, type Store } from "./store.ts";
export { openSqliteStore } from "./sqlite_store.ts";
export type { AllocateOptions, IpamStatus, OwnedRangeStatus } from "./common.ts";
export { ClusterIpam } from "./cluster_ipam.ts";
export type { PeerSigner } from "./authority.ts";
export {
  type ClusterIpamOptions,
  type ClusterIpamStatus,
  type Diagnostic,
  type IpamEvent,
  type IpamInit,
  type IpamTransport,
  parseIpamInit,
  type PeerStatus,
} from "./cluster_types.ts";
