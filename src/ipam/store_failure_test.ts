/**
 * A state file that cannot be written (full disk, read-only, I/O error): the failed step takes
 * no effect anywhere (no address handed out, no ring change kept or sent, no allocations
 * dropped), the error says what and where, and the IPAM resumes by itself. The real SQLite on
 * a full tmpfs is tests/ipam_store_fault_test.ts; here the store fails on command.
 */
import assert from "node:assert/strict";
import { NoSpaceError, NotReadyError, StoreUnavailableError } from "./errors.ts";
import { Simulation, type SimulationOptions } from "./testing.ts";

const consensus3 = { mode: "consensus", peers: 3 } as const;

function threePeers(options: SimulationOptions = {}): Promise<Simulation> {
  return Simulation.withPeers(["a", "b", "c"], consensus3, options);
}

function isUnavailable(reason: string, path: RegExp) {
  return (error: Error) => {
    assert.ok(error instanceof StoreUnavailableError, String(error));
    assert.equal(error.reason, reason);
    assert.match(error.message, path);
    return true;
  };
}

Deno.test("a full disk: allocate hands out nothing, says where, and resumes by itself", async () => {
  using sim = await threePeers();
  const a = sim.peer("a");
  const first = await a.allocate("first");
  for (const at of ["write", "commit"] as const) {
    sim.failStore("a", "full", { at });
    await assert.rejects(a.allocate("pod"), isUnavailable("full", /\/sim\/a\/weft\.db/));
    assert.deepEqual(a.list(), [first], `nothing handed out (failing at ${at})`);
    assert.deepEqual(sim.storedAllocations("a"), [first], `nothing stored (failing at ${at})`);
  }
  sim.step();
  const problem = a.diagnostics().find((d) => d.code === "store-unavailable");
  assert.ok(problem, JSON.stringify(a.diagnostics()));
  assert.equal(problem.severity, "error");
  assert.match(problem.message, /\/sim\/a\/weft\.db/);
  assert.match(problem.fix, /Free space/);
  sim.failStore("a", undefined);
  sim.step(); // the tick's probe write succeeds: the problem clears without an allocation
  assert.ok(!a.diagnostics().some((d) => d.code === "store-unavailable"));
  assert.notEqual((await a.allocate("pod")).address, first.address);
});

Deno.test("a donor that cannot record a give gives nothing, and the requester moves on", async () => {
  using sim = await threePeers({ range: "10.32.0.0/28" });
  const o = await sim.start("o", { mode: "observer" });
  sim.settle();
  const rings = new Map(["a", "b", "c"].map((n) => [n, sim.peer(n).ringState()]));
  for (const name of ["a", "b", "c"]) sim.failStore(name, "read-only", { at: "commit" });
  await assert.rejects(sim.drive(o.allocate("pod")), (error: Error) => {
    assert.ok(error instanceof NoSpaceError);
    assert.match(error.message, /cannot record a give/);
    return true;
  });
  assert.equal(o.status().size, 0, "no give reached the requester");
  for (const name of ["a", "b", "c"]) {
    assert.equal(sim.peer(name).ringState(), rings.get(name), `${name} kept its ring`);
  }
  for (const name of ["a", "b", "c"]) sim.failStore(name, undefined);
  sim.settle();
  assert.ok((await sim.drive(o.allocate("pod"))).address > 0);
  const sizes = ["a", "b", "c", "o"].reduce((sum, n) => sum + sim.peer(n).status().size, 0);
  assert.equal(sizes, 14, "every address owned exactly once");
});

Deno.test("a give the recipient cannot write is not acknowledged, and arrives once it can", async () => {
  using sim = await threePeers({ range: "10.32.0.0/28" });
  const o = await sim.start("o", { mode: "observer" });
  sim.settle();
  sim.network.partition([["a", "o"], ["b", "c"]]);
  const before = o.ringState();
  sim.failStore("o", "full", { at: "commit" });
  await assert.rejects(sim.drive(o.allocate("pod")), NoSpaceError);
  assert.equal(o.ringState(), before, "the give was not taken in");
  assert.ok(sim.events.some((e) => e.peer === "o" && e.kind === "store"));
  sim.failStore("o", undefined);
  sim.settle(); // a resends its unacknowledged give
  assert.ok(o.status().size > 0, "the resent give arrived");
  assert.ok((await sim.drive(o.allocate("pod"))).address > 0);
});

Deno.test("starting clean is all or nothing: a failed write keeps generation and pods", async () => {
  using sim = await threePeers();
  const pod = await sim.peer("c").allocate("old-pod");
  sim.crash("c");
  sim.peer("a").rmpeer("c");
  sim.settle();
  sim.network.partition([["a", "b"], ["c"]]);
  const c = await sim.restart("c");
  sim.failStore("c", "io", { at: "commit" });
  sim.network.heal();
  for (const name of ["a", "b"]) sim.peer(name).gossip();
  sim.settle();
  assert.equal(c.status().gen, 0, "the reset was not written, so it did not happen");
  assert.deepEqual(c.list(), [pod]);
  assert.deepEqual(sim.storedAllocations("c"), [pod]);
  // Not having heard (its merge failed), it still allocates nothing from its old ranges.
  await assert.rejects(c.allocate("early"), NotReadyError);
  sim.failStore("c", undefined);
  for (const name of ["a", "b"]) sim.peer(name).gossip();
  sim.settle();
  assert.equal(c.status().gen, 1);
  assert.deepEqual(c.list(), []);
});

Deno.test("leave on a failing disk leaves nothing half done", async () => {
  using sim = await threePeers();
  const c = sim.peer("c");
  const pod = await c.allocate("pod");
  const ring = c.ringState();
  sim.failStore("c", "full");
  assert.throws(() => c.leave(), isUnavailable("full", /weft\.db/));
  assert.equal(c.ringState(), ring);
  assert.deepEqual(c.list(), [pod]);
  sim.failStore("c", undefined);
  assert.ok((await c.allocate("another")).address > 0, "still a member");
});
