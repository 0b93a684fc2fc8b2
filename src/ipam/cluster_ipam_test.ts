import assert from "node:assert/strict";
import { formatIp, parseCidr } from "../net/cidr.ts";
import { ClusterIpam } from "./cluster_ipam.ts";
import { parseIpamInit } from "./cluster_types.ts";
import { CannotAdoptError, NoSpaceError, NotReadyError } from "./errors.ts";
import { decodeRing } from "./ring_codec.ts";
import {
  MemoryNetwork,
  MemorySigners,
  Simulation,
  type SimulationOptions,
  tempSqliteStore,
} from "./testing.ts";

const consensus3 = { mode: "consensus", peers: 3 } as const;

function threePeers(options: SimulationOptions = {}): Promise<Simulation> {
  return Simulation.withPeers(["a", "b", "c"], consensus3, options);
}

Deno.test("parseIpamInit accepts the three modes and names bad input", () => {
  assert.deepEqual(parseIpamInit("consensus=3"), { mode: "consensus", peers: 3 });
  assert.deepEqual(parseIpamInit("seed=b,a,b"), { mode: "seed", seeds: ["a", "b"] });
  assert.deepEqual(parseIpamInit("observer"), { mode: "observer" });
  assert.throws(() => parseIpamInit("consensus=0"), /consensus=0/);
  assert.throws(() => parseIpamInit("paxos"), /"paxos"/);
});

Deno.test("consensus: NotReady says what it waits for, then the range is split three ways", async () => {
  using sim = new Simulation();
  const a = await sim.start("a", consensus3);
  await sim.start("b", consensus3);
  sim.settle();
  await assert.rejects(a.allocate("c1"), (e: Error) => {
    assert.ok(e instanceof NotReadyError);
    assert.match(e.message, /consensus among 3 peers.*2 of 3 known \(a, b\)/);
    return true;
  });
  assert.equal(a.status().ready, false);
  await sim.start("c", consensus3);
  sim.settle();
  const sizes = ["a", "b", "c"].map((n) => sim.peer(n).status().size);
  assert.equal(sizes.reduce((x, y) => x + y), 254, "all usable addresses are owned");
  assert.ok(sizes.every((s) => s >= 84));
  const states = ["a", "b", "c"].map((n) => sim.peer(n).ringState());
  assert.equal(new Set(states).size, 1, "every peer holds the same ring");
  assert.equal(formatIp((await a.allocate("c1")).address), "10.32.0.1");
});

Deno.test("seed: seeds agree without a vote; a non-seed waits as an observer would", async () => {
  using sim = new Simulation();
  const init = { mode: "seed", seeds: ["a", "b"] } as const;
  const x = await sim.start("x", init);
  await assert.rejects(x.allocate("c"), /not among the seeds/);
  const a = await sim.start("a", init);
  await assert.rejects(a.allocate("c"), /waiting to hear from another peer/);
  await sim.start("b", init);
  sim.settle();
  assert.equal(a.status().size + sim.peer("b").status().size, 254);
  assert.equal(x.status().size, 0);
  // x owns nothing: its first allocation asks a seed for space.
  const got = await sim.drive(x.allocate("c"));
  assert.ok(x.status().size > 0 && x.status().used === 1);
  assert.equal(a.list().length + sim.peer("b").list().length, 0);
  assert.ok(got.address > 0);
});

Deno.test("an observer gets space from the peer with the most free space", async () => {
  using sim = await threePeers();
  for (let i = 0; i < 40; i++) await sim.peer("a").allocate(`a${i}`);
  sim.step();
  sim.settle();
  const o = await sim.start("o", { mode: "observer" });
  sim.settle();
  await sim.drive(o.allocate("pod"));
  const donated = sim.events.filter((e) => e.kind === "donated");
  assert.equal(donated.length, 1);
  assert.notEqual(donated[0].peer, "a", "a had the least free space");
  assert.equal(o.status().pendingRequests, 0);
});

Deno.test("a peer that runs out asks others, and exhaustion of the whole range says so", async () => {
  using sim = await threePeers({ range: "10.32.0.0/28" });
  const a = sim.peer("a");
  const got = [];
  for (let i = 0; i < 14; i++) got.push(await sim.drive(a.allocate(`p${i}`)));
  assert.equal(new Set(got.map((g) => g.address)).size, 14);
  await assert.rejects(sim.drive(a.allocate("one-too-many")), (e: Error) => {
    assert.ok(e instanceof NoSpaceError);
    assert.match(e.message, /no peer could give space/);
    return true;
  });
});

Deno.test("released addresses come back to the pool", async () => {
  using sim = await threePeers({ range: "10.32.0.0/28" });
  const a = sim.peer("a");
  for (let i = 0; i < 14; i++) await sim.drive(a.allocate(`p${i}`));
  a.release("p3");
  const again = await sim.drive(a.allocate("new"));
  assert.equal(a.lookup("new")[0].address, again.address);
});

Deno.test("leave hands every range to another peer, which acknowledges", async () => {
  using sim = await threePeers();
  const c = sim.peer("c");
  await c.allocate("x");
  const owned = c.status().size;
  const before = new Map(["a", "b"].map((n) => [n, sim.peer(n).status().size]));
  const leaving = c.leave();
  sim.settle();
  const result = await leaving;
  assert.ok(result.givenTo === "a" || result.givenTo === "b");
  const after = sim.peer(result.givenTo!).status().size;
  assert.equal(after, before.get(result.givenTo!)! + owned);
  sim.crash("c");
  sim.settle();
  const total = ["a", "b"].reduce((sum, n) => sum + sim.peer(n).status().size, 0);
  assert.equal(total, 254);
  await assert.rejects(c.allocate("y"), NotReadyError);
});

Deno.test("rmpeer on two nodes at once reclaims exactly once", async () => {
  using sim = await threePeers();
  const before = sim.peer("c").status().size;
  sim.crash("c");
  sim.peer("a").rmpeer("c");
  sim.peer("b").rmpeer("c");
  sim.settle();
  const claims = decodeRing(sim.peer("a").ringState()).entries;
  assert.ok(claims.every((e) => e.owner !== "c"));
  assert.equal(sim.peer("a").status().size + sim.peer("b").status().size, 254);
  assert.equal(sim.peer("a").ringState(), sim.peer("b").ringState());
  assert.ok(before > 0);
  assert.deepEqual(sim.peer("a").status().reclaims, []);
});

Deno.test("reclaim waits until every live peer has seen the removal", async () => {
  using sim = await threePeers();
  sim.crash("c");
  sim.network.partition([["a"], ["b"]]);
  sim.peer("a").rmpeer("c");
  sim.settle();
  const status = sim.peer("a").status();
  assert.deepEqual(status.reclaims.map((r) => [r.peer, r.waitingOn]), [["c", ["b"]]]);
  assert.equal(status.peers.find((p) => p.name === "b")?.reachable, false);
  sim.network.heal();
  sim.peer("a").gossip();
  sim.settle();
  assert.deepEqual(sim.peer("a").status().reclaims, []);
  assert.equal(sim.peer("a").status().size + sim.peer("b").status().size, 254);
});

Deno.test("a removed peer that returns notices, drops its old allocations, starts clean", async () => {
  using sim = await threePeers();
  await sim.peer("c").allocate("old-pod");
  sim.crash("c");
  sim.peer("a").rmpeer("c");
  sim.settle();
  const c = await sim.restart("c");
  await assert.rejects(c.allocate("early"), /waiting to hear from another peer/);
  sim.settle();
  assert.deepEqual(c.list(), []);
  assert.ok(sim.events.some((e) => e.peer === "c" && e.kind === "reset"));
  assert.equal(c.status().gen, 1);
  const fresh = await sim.drive(c.allocate("new-pod"));
  const everywhere = ["a", "b", "c"].flatMap((n) => sim.peer(n).list().map((x) => x.address));
  assert.equal(new Set(everywhere).size, everywhere.length);
  assert.ok(fresh.address > 0);
});

Deno.test("a restarted peer keeps its ranges and allocations", async () => {
  using sim = await threePeers();
  const pod = await sim.peer("b").allocate("pod");
  const owned = sim.peer("b").status().owned;
  sim.crash("b");
  const b = await sim.restart("b");
  sim.settle();
  assert.deepEqual(b.list(), [pod]);
  assert.deepEqual(b.status().owned, owned);
  assert.equal(b.status().ready, true);
});

Deno.test("automatic reclaim: majority reclaims, the cut-off minority stops allocating", async () => {
  using sim = await threePeers({ reclaimAfterMs: 10_000 });
  const minority = sim.peer("c");
  sim.network.partition([["a", "b"], ["c"]]);
  for (let i = 0; i < 12; i++) sim.step();
  await assert.rejects(minority.allocate("late"), /cut off from most peers/);
  const status = sim.peer("a").status();
  assert.ok(status.unreachablePercentage > 30 && status.unreachablePercentage < 35);
  for (let i = 0; i < 12; i++) sim.step();
  sim.settle();
  assert.equal(sim.peer("a").status().size + sim.peer("b").status().size, 254);
  assert.ok(sim.events.some((e) => e.kind === "reclaim" && /unreachable/.test(e.message)));
  sim.network.heal();
  minority.gossip();
  sim.settle();
  assert.equal(minority.status().gen, 1, "the minority noticed it was removed");
});

Deno.test("a partitioned minority allocates only from its own ranges", async () => {
  using sim = await threePeers();
  sim.network.partition([["a", "b"], ["c"]]);
  const fromC = [];
  for (let i = 0; i < 50; i++) fromC.push(await sim.drive(sim.peer("c").allocate(`c${i}`)));
  const fromAB = [];
  for (let i = 0; i < 120; i++) {
    fromAB.push(await sim.drive(sim.peer(i % 2 ? "a" : "b").allocate(`ab${i}`)));
  }
  const all = [...fromC, ...fromAB].map((x) => x.address);
  assert.equal(new Set(all).size, all.length);
  const subnet = parseCidr("10.32.0.0/24");
  assert.ok(all.every((x) => x > subnet.base));
});

Deno.test("when every owner is gone, only an explicit adopt on one node claims the space", async () => {
  using sim = new Simulation();
  const solo = await sim.start("a", { mode: "consensus", peers: 1 });
  await solo.allocate("x");
  sim.network.partition([["a"]]);
  await solo.leave();
  sim.crash("a");
  sim.network.heal();
  const b = await sim.start("b", { mode: "observer" });
  const c = await sim.start("c", { mode: "observer" });
  // b and c have not heard the ring yet; a restarted "a" brings it back to them.
  await sim.start("a", { mode: "consensus", peers: 1 });
  sim.settle();
  sim.crash("a");
  sim.peer("b").rmpeer("a");
  sim.settle();
  assert.equal(b.status().ownerless, true);
  await assert.rejects(sim.drive(b.allocate("p")), /no live peer owns any space.*weft ipam adopt/);
  assert.equal(b.adoptOrphans().orphaned, 256);
  sim.settle();
  assert.equal(b.status().size, 254);
  assert.equal(c.status().size, 0, "c did not adopt too");
  // Adopting again, anywhere, is refused with the reason: the space has an owner now.
  assert.throws(() => c.adoptOrphans(), (e: Error) => {
    assert.ok(e instanceof CannotAdoptError);
    assert.equal(e.reason, "owned");
    assert.match(e.message, /peer "c".*live peers own space \(b\)/);
    return true;
  });
  assert.ok((await sim.drive(c.allocate("q"))).address > 0);
});

Deno.test("donations wait until every live peer knows the new peer, and the error says who", async () => {
  using sim = await threePeers();
  sim.network.partition([["a", "b", "o"], ["c"]]);
  const o = await sim.start("o", { mode: "observer" });
  sim.settle();
  await assert.rejects(sim.drive(o.allocate("pod")), (e: Error) => {
    assert.ok(e instanceof NoSpaceError);
    assert.match(e.message, /o@0 not yet known to c/);
    return true;
  });
  sim.network.heal();
  for (const name of ["a", "b", "c", "o"]) sim.peer(name).gossip();
  sim.settle();
  assert.ok((await sim.drive(o.allocate("pod"))).address > 0);
});

Deno.test("ClusterIpam over SQLite: a restart keeps ring, generation and allocations", async () => {
  using temp = tempSqliteStore();
  const network = new MemoryNetwork();
  const signer = new MemorySigners().for("solo");
  const open = () =>
    ClusterIpam.open({
      store: temp.open(),
      clusterRange: parseCidr("10.32.0.0/24"),
      peerName: "solo",
      transport: network.join("solo"),
      init: { mode: "consensus", peers: 1 },
      signer,
    });
  const first = await open();
  const pod = await first.allocate("pod", { ifname: "net1" });
  const ring = first.ringState();
  first.close();
  using again = await open();
  assert.deepEqual(again.list(), [pod]);
  // Same split; only the published free/used counts moved on.
  assert.deepEqual(decodeRing(again.ringState()).entries, decodeRing(ring).entries);
  assert.equal(again.status().gen, 0);
  assert.equal(again.status().size, 254);
  assert.notEqual((await again.allocate("next")).address, pod.address);
});
