/**
 * IPAM: which pod interface holds which address, and which node may hand out which addresses.
 *
 * Design notes. Allocation is a synchronous choose-and-record step over a `Store`, so the agent
 * can serve concurrent CNI ADDs without locks and without duplicates. A node never owns "the
 * whole range": it owns a list of ranges, which is what lets the cluster mode move space
 * between peers. Everything here is pure apart from the store; time, randomness and the network
 * are passed in, so multi-peer behaviour is tested with an in-memory transport.
 */
export { IpamConflictError, NoSpaceError, NotReadyError } from "./errors.ts";
export { type Allocation, DuplicateAllocationError, MemoryStore, type Store } from "./store.ts";
export { openSqliteStore } from "./sqlite_store.ts";
export { type AllocateOptions, NodeIpam, type NodeIpamOptions } from "./node_ipam.ts";
export { ClusterIpam } from "./cluster_ipam.ts";
export {
  type ClusterIpamOptions,
  type ClusterIpamStatus,
  type IpamEvent,
  type IpamInit,
  type IpamTransport,
  parseIpamInit,
  type PeerStatus,
} from "./cluster_types.ts";
export { MemoryNetwork, type MemoryNetworkOptions, seededRandom } from "./memory_transport.ts";
export { Simulation, type SimulationOptions } from "./simulation.ts";
export type { Ipam, IpamStatus, OwnedRangeStatus } from "./common.ts";
