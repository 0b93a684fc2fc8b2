import assert from "node:assert/strict";
import type { Diagnostic } from "./cluster_types.ts";
import { CannotAdoptError } from "./errors.ts";
import { Simulation } from "./testing.ts";

const consensus3 = { mode: "consensus", peers: 3 } as const;

function find(diagnostics: Diagnostic[], code: string): Diagnostic {
  const found = diagnostics.find((d) => d.code === code);
  assert.ok(found, `expected ${code} in ${JSON.stringify(diagnostics.map((d) => d.code))}`);
  return found;
}

Deno.test("awaiting consensus names the quorum, who is known, and who has not agreed", async () => {
  using sim = new Simulation();
  const a = await sim.start("a", consensus3);
  await sim.start("b", consensus3);
  sim.settle();
  const waiting = find(a.diagnostics(), "awaiting-consensus");
  assert.equal(waiting.severity, "error");
  assert.match(waiting.message, /first split of 10\.32\.0\.0\/24: quorum 3, 2 known \(a, b\)/);
  assert.match(waiting.fix, /1 more peer\(s\) with the same --ipalloc-init consensus=3/);
  // c joins but cannot hear a's vote: a voted, c has not agreed (and is unreachable).
  await sim.start("c", consensus3);
  sim.network.partition([["a", "b"], ["c"]]);
  sim.peer("c").gossip();
  sim.network.heal();
  sim.network.deliver();
  sim.network.partition([["a", "b"], ["c"]]);
  sim.settle();
  assert.match(
    find(a.diagnostics(), "awaiting-consensus").message,
    /voted to split among a, b, c, not yet agreed by c \(unreachable\)/,
  );
  sim.network.heal();
  for (const name of ["a", "b", "c"]) sim.peer(name).gossip();
  sim.settle();
  assert.deepEqual(a.diagnostics(), []);
});

Deno.test("an observer without a ring says it never splits the range itself", async () => {
  using sim = new Simulation();
  const o = await sim.start("o", { mode: "observer" });
  const waiting = find(o.diagnostics(), "awaiting-initial-split");
  assert.match(waiting.message, /this peer is an observer and never splits the range itself/);
  assert.match(waiting.fix, /consensus=N or seed=/);
});

Deno.test("a reclaim waiting on a peer names it and says it is unreachable", async () => {
  using sim = await Simulation.withPeers(["a", "b", "c"], consensus3);
  sim.crash("c");
  sim.network.partition([["a"], ["b"]]);
  sim.peer("a").rmpeer("c");
  sim.settle();
  const waiting = find(sim.peer("a").diagnostics(), "reclaim-waiting");
  assert.equal(waiting.severity, "warning");
  assert.match(
    waiting.message,
    /removed peer "c" \(\d+ addresses\).*waiting for b \(unreachable\)/,
  );
  assert.match(waiting.fix, /weft rmpeer NAME/);
});

Deno.test("cut off from most peers: a warning, an error once automatic reclaim fences us", async () => {
  using sim = await Simulation.withPeers(["a", "b", "c"], consensus3, { reclaimAfterMs: 10_000 });
  sim.network.partition([["a", "b"], ["c"]]);
  sim.step();
  sim.step();
  const early = find(sim.peer("c").diagnostics(), "cut-off");
  assert.equal(early.severity, "warning");
  assert.match(early.message, /reaching 0 of 2 \(none\), not a, b/);
  for (let i = 0; i < 10; i++) sim.step();
  const fenced = find(sim.peer("c").diagnostics(), "cut-off");
  assert.equal(fenced.severity, "error");
  assert.match(fenced.message, /hands out no addresses until it reaches most of them again/);
  assert.ok(!sim.peer("a").diagnostics().some((d) => d.code === "cut-off"));
});

Deno.test("a restarted peer waiting to hear from the ring's members says which", async () => {
  using sim = await Simulation.withPeers(["a", "b", "c"], consensus3);
  sim.network.partition([["a"], ["b", "c"]]);
  const a = await sim.restart("a");
  const waiting = find(a.diagnostics(), "awaiting-peer");
  assert.match(waiting.message, /shares with b, c.*none of them is reachable now/);
});

Deno.test("ownerless space: the fix is weft ipam adopt on one node; adopt says why it cannot", async () => {
  using sim = new Simulation();
  const solo = await sim.start("a", { mode: "consensus", peers: 1 });
  await solo.allocate("x");
  sim.network.partition([["a"]]);
  await solo.leave();
  sim.crash("a");
  sim.network.heal();
  const b = await sim.start("b", { mode: "observer" });
  await sim.start("c", { mode: "observer" });
  await sim.start("a", { mode: "consensus", peers: 1 });
  sim.settle();
  sim.crash("a");
  // Until c hears of the removal, the peers disagree on who is live: adopting is refused.
  sim.network.partition([["a", "b"], ["c"]]);
  b.rmpeer("a");
  sim.settle();
  const ownerless = find(b.diagnostics(), "ownerless-space");
  assert.match(ownerless.fix, /Run "weft ipam adopt" on exactly one node/);
  assert.throws(() => b.adoptOrphans(), (e: Error) => {
    assert.ok(e instanceof CannotAdoptError);
    assert.equal(e.reason, "disagreement");
    assert.match(e.message, /do not agree yet on who is live.*c lists a@1/);
    return true;
  });
  sim.network.heal();
  for (const name of ["b", "c"]) sim.peer(name).gossip();
  sim.settle();
  assert.equal(b.adoptOrphans().orphaned, 256);
  sim.settle();
  assert.ok(!b.diagnostics().some((d) => d.code === "ownerless-space"));
});

Deno.test("a new peer nobody gives to yet names the peer that does not know it", async () => {
  using sim = await Simulation.withPeers(["a", "b", "c"], consensus3);
  sim.network.partition([["a", "b", "o"], ["c"]]);
  const o = await sim.start("o", { mode: "observer" });
  sim.settle();
  const unknown = find(o.diagnostics(), "unknown-to-peers");
  assert.match(unknown.message, /c \(unreachable\) does not list o@0 yet/);
});
