/**
 * Test doubles for the mesh, for tests and the simulation bench only: the in-memory network
 * (loss, latency, reordering, partitions) and the discrete-event clock. Production code reaches
 * the mesh through mod.ts, which does not export these.
 */
export { SimClock } from "./clock.ts";
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  MemoryTransport,
  type NetworkFaults,
} from "./memory_transport.ts";
export { seededRandom, SimCluster } from "./sim_cluster.ts";
export { InsiderClient, type InsiderOptions } from "./insider_client.ts";
export { IdentityKey, type SignatureScheme } from "./keys.ts";
export { KnownPeers } from "./known_peers.ts";
export { unsignedScheme } from "./unsigned_scheme.ts";
