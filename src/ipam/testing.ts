/**
 * Test doubles of the IPAM, for its own tests, the property tests in tests/ and the benchmark;
 * production code imports mod.ts only. A whole cluster runs in one process (`Simulation`:
 * ClusterIpam peers over a lossy `MemoryNetwork`, memory stores, a fake clock); `storeSuite` is
 * the behaviour every `Store` must have; `tempSqliteStore` is a SQLite file that removes itself.
 * `MemorySigners` gives each peer an Ed25519 key (the mesh's identity keys, in memory).
 * Fixtures that own something implement Symbol.dispose, so tests write `using`.
 */
export { MemoryStore, unclosable } from "./testing/memory_store.ts";
export { FailingStore } from "./testing/failing_store.ts";
export { MemorySigners, unverifiedSigner } from "./testing/memory_signers.ts";
export {
  MemoryNetwork,
  type MemoryNetworkOptions,
  seededRandom,
} from "./testing/memory_network.ts";
export { Simulation, type SimulationOptions } from "./testing/simulation.ts";
export { type OpenedStore, storeSuite } from "./testing/store_suite.ts";
export { type TempSqliteStore, tempSqliteStore } from "./testing/temp_sqlite.ts";
