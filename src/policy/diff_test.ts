import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIp } from "../net/cidr.ts";
import { compile } from "./compile.ts";
import { diffRuleSets, isElementOnly, isEmptyDiff } from "./diff.ts";
import { compareElements, sortElements } from "./elements.ts";
import type { CompiledRuleSet, Element } from "./ir.ts";
import { applyRuleSetDiff, labels, policy, xyzCluster } from "./testing.ts";
import { clusterState, pods as randomPods } from "./testing_arbitrary.ts";
import type { NetworkPolicy } from "./types.ts";

/** A rule set as maps by name (order of objects does not matter to the kernel, rules' does). */
function view(rs: CompiledRuleSet) {
  return {
    sets: new Map(rs.sets.map((s) => [s.name, s])),
    counters: new Map(rs.counters.map((c) => [c.name, c])),
    chains: new Map(rs.chains.map((c) => [c.name, c])),
    members: new Map<string, readonly Element[]>(
      rs.sets.map((s) => [s.name, rs.members.get(s.name) ?? []]),
    ),
  };
}

const base = xyzCluster();
const fromY = policy("x", "from-y", {
  podSelector: labels({ pod: "a" }),
  ingress: [{
    from: [{ namespaceSelector: labels({ ns: "y" }) }],
    ports: [{ port: "serve-80-tcp" }],
  }],
});
const denyEgressZ = policy("z", "deny-egress", { policyTypes: ["Egress"] });

function at(policies: NetworkPolicy[], cluster = base) {
  return compile({ policies, ...cluster }, { node: "n1" });
}

Deno.test("no change, no diff", () => {
  const rs = at([fromY, denyEgressZ]);
  assert.ok(isEmptyDiff(diffRuleSets(rs, at([fromY, denyEgressZ]))));
});

Deno.test("pod churn changes set members only: a new pod, a relabelled one, a deleted one", () => {
  const before = at([fromY, denyEgressZ]);
  const pods = base.pods
    .filter((p) => !(p.namespace === "y" && p.name === "c"))
    .map((p) => p.namespace === "x" && p.name === "c" ? { ...p, labels: { pod: "a" } } : p);
  pods.push({ ...base.pods[4], name: "d", ip: "10.32.2.4", node: "n1" });
  const diff = diffRuleSets(
    before,
    at([fromY, denyEgressZ], { pods, namespaces: base.namespaces }),
  );
  assert.ok(isElementOnly(diff), JSON.stringify(diff));
  assert.equal(diff.kind, "patch");
  if (diff.kind !== "patch") return;
  const comment = new Map(before.sets.map((s) => [s.name, s.comment]));
  const text = (es: Element[]) => es.map(([a, p]) => formatIp(a) + (p ? `:${p}` : ""));
  const changes = diff.elements.map((c) => [comment.get(c.set), text(c.add), text(c.remove)]);
  assert.deepEqual(changes.sort(), [
    ["every pod in namespaces ns=y", ["10.32.2.4"], ["10.32.2.3"]],
    ["local pods isolated for ingress", ["10.32.1.3"], []],
    ["pods pod=a in x (this node)", ["10.32.1.3"], []],
    ["port serve-80-tcp/TCP of every pod", ["10.32.2.4:80"], ["10.32.2.3:80"]],
  ]);
});

Deno.test("namespace relabelling changes members only", () => {
  const namespaces = base.namespaces.map((n) => n.name === "z" ? { ...n, labels: { ns: "y" } } : n);
  const diff = diffRuleSets(at([fromY]), at([fromY], { pods: base.pods, namespaces }));
  assert.ok(isElementOnly(diff));
  assert.ok(diff.kind === "patch" && diff.elements.length > 0);
});

Deno.test("changing one policy's rules renews its chain alone", () => {
  const changed = policy("x", "from-y", {
    ...fromY.spec,
    ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }] }],
  });
  const before = at([fromY, denyEgressZ]);
  const diff = diffRuleSets(before, at([changed, denyEgressZ]));
  assert.equal(diff.kind, "patch");
  if (diff.kind !== "patch") return;
  assert.deepEqual(diff.chains.add, []);
  assert.deepEqual(diff.chains.remove, []);
  assert.deepEqual(diff.chains.replace.map((c) => c.name), [
    before.chains.find((c) => c.name.startsWith("in-"))!.name,
  ]);
  // The port name's set is no longer used by any rule.
  assert.deepEqual(diff.sets.remove.map((n) => before.sets.find((s) => s.name === n)!.comment), [
    "port serve-80-tcp/TCP of every pod",
  ]);
  assert.deepEqual([diff.sets.add, diff.counters.add, diff.counters.remove], [[], [], []]);
});

Deno.test("adding a policy adds its objects and renews the dispatch chain; removing undoes it", () => {
  const before = at([fromY]);
  const after = at([fromY, denyEgressZ]);
  const added = diffRuleSets(before, after);
  assert.equal(added.kind, "patch");
  if (added.kind !== "patch") return;
  assert.deepEqual(added.chains.replace.map((c) => c.name), ["egress"]);
  assert.equal(added.chains.add.length, 1);
  assert.equal(added.counters.add[0].policy?.name, "deny-egress");
  const removed = diffRuleSets(after, before);
  assert.ok(removed.kind === "patch");
  if (removed.kind !== "patch") return;
  assert.deepEqual(removed.chains.remove, added.chains.add.map((c) => c.name));
  assert.deepEqual(removed.counters.remove, added.counters.add.map((c) => c.name));
  assert.deepEqual(removed.sets.remove.sort(), added.sets.add.map((s) => s.name).sort());
});

Deno.test("a base chain's hook cannot change in place: the whole table is replaced", () => {
  const before = at([fromY]);
  const after = {
    ...before,
    chains: before.chains.map((c) =>
      c.hook ? { ...c, hook: { priority: c.hook.priority + 10 } } : c
    ),
  };
  const diff = diffRuleSets(before, after);
  assert.equal(diff.kind, "replace");
});

Deno.test("applying the diff of any two states to the first gives the second", () => {
  fc.assert(
    fc.property(clusterState, clusterState, fc.constantFrom("n1", "n2"), (a, b, node) => {
      const before = compile(a, { node });
      const after = compile(b, { node });
      assert.deepEqual(view(applyRuleSetDiff(before, diffRuleSets(before, after))), view(after));
    }),
    { numRuns: 200, seed: 7 },
  );
});

Deno.test("with the same policies, any pod churn is element-only", () => {
  fc.assert(
    fc.property(clusterState, randomPods, (a, pods) => {
      const diff = diffRuleSets(
        compile(a, { node: "n1" }),
        compile({ ...a, pods }, { node: "n1" }),
      );
      assert.ok(isElementOnly(diff));
    }),
    { numRuns: 200, seed: 8 },
  );
});

Deno.test("elements sort numerically and lose duplicates", () => {
  assert.deepEqual(sortElements([[10, 2], [9, 70000], [10, 2], [10, 1]]), [[9, 70000], [10, 1], [
    10,
    2,
  ]]);
  assert.ok(compareElements([1], [1, 0]) < 0);
});
