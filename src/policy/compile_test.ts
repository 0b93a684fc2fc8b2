import assert from "node:assert/strict";
import { compile, mergePortRanges, planRules } from "./compile.ts";
import { interpret } from "./interpret.ts";
import type { CompiledRuleSet } from "./ir.ts";
import { labels, podIp, policy, xyzCluster } from "./testing.ts";
import type { NetworkPolicy } from "./types.ts";

const fromYtoA = policy("x", "from-y", {
  podSelector: labels({ pod: "a" }),
  ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }] }],
});

function members(rs: CompiledRuleSet, prefix: string) {
  return rs.sets.filter((s) => s.name.startsWith(prefix)).map((s) => rs.members.get(s.name));
}

const ip = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");

Deno.test("set names follow meaning: shared by policies, blind to label order and to pods", () => {
  const a = planRules([
    fromYtoA,
    policy("x", "also-from-y", {
      podSelector: labels({ pod: "b" }),
      ingress: [{
        from: [{
          namespaceSelector: { matchExpressions: [{ key: "ns", operator: "In", values: ["y"] }] },
        }],
      }],
    }),
  ]);
  const peerSets = a.sets.filter((s) => s.name.startsWith("p-"));
  assert.equal(peerSets.length, 1, "one set for namespace y's pods");
  const again = planRules([fromYtoA]);
  assert.deepEqual(again.sets.filter((s) => s.name.startsWith("p-")), peerSets);
  // A pod selector that lists the same labels in another order is the same target set.
  const t1 = planRules([policy("x", "p", { podSelector: labels({ a: "1", b: "2" }) })]);
  const t2 = planRules([policy("x", "q", { podSelector: labels({ b: "2", a: "1" }) })]);
  assert.deepEqual(t1.sets.map((s) => s.name), t2.sets.map((s) => s.name));
  // The same selector in another namespace means other pods: another set.
  const t3 = planRules([policy("y", "p", { podSelector: labels({ a: "1", b: "2" }) })]);
  assert.notDeepEqual(t1.sets.map((s) => s.name), t3.sets.map((s) => s.name));
});

Deno.test("target sets hold this node's pods; peer sets every pod", () => {
  const state = { policies: [fromYtoA, policy("y", "all", {})], ...xyzCluster() };
  const n1 = compile(state, { node: "n1" });
  const n2 = compile(state, { node: "n2" });
  // x/a runs on n1; namespace y's pods are on n2, n1, n2.
  const yIps = ["a", "b", "c"].map((p) => podIp("y", p));
  assert.deepEqual(
    n1.members.get("ingress-isolated")!.map((e) => ip(e[0])),
    [podIp("x", "a"), podIp("y", "b")],
  );
  assert.deepEqual(
    n2.members.get("ingress-isolated")!.map((e) => ip(e[0])),
    [podIp("y", "a"), podIp("y", "c")],
  );
  for (const rs of [n1, n2]) {
    assert.deepEqual(members(rs, "p-").map((m) => m!.map((e) => ip(e[0]))), [yIps]);
  }
});

Deno.test("a port name becomes (address, port) of every pod naming a port so, per protocol", () => {
  const cluster = xyzCluster();
  cluster.pods[0].ports!.push({ name: "web", containerPort: 8080 });
  cluster.pods[4].ports!.push({ name: "web", containerPort: 9090 }, {
    name: "web",
    containerPort: 53,
    protocol: "UDP",
  });
  const rs = compile({
    policies: [
      policy("x", "web", {
        ingress: [{ ports: [{ port: "web" }, { port: "web", protocol: "UDP" }] }],
      }),
    ],
    ...cluster,
  });
  const named = rs.sets.filter((s) => s.kind === "addr-port");
  assert.deepEqual(
    named.map((s) => s.comment),
    ["port web/TCP of every pod", "port web/UDP of every pod"].sort(),
  );
  const byComment = Object.fromEntries(
    named.map((s) => [s.comment, rs.members.get(s.name)!.map(([a, p]) => `${ip(a)}:${p}`)]),
  );
  assert.deepEqual(byComment["port web/TCP of every pod"], [
    `${podIp("x", "a")}:8080`,
    `${podIp("y", "b")}:9090`,
  ]);
  assert.deepEqual(byComment["port web/UDP of every pod"], [`${podIp("y", "b")}:53`]);
});

Deno.test("pods whose state is pending are dropped both ways, before any policy", () => {
  const state = { policies: [], ...xyzCluster() };
  const rs = compile(state, { node: "n1", pending: [podIp("x", "a")] });
  const send = interpret(rs, {
    saddr: podIp("x", "a"),
    daddr: podIp("y", "a"),
    protocol: "TCP",
    port: 80,
  });
  const receive = interpret(rs, {
    saddr: podIp("y", "a"),
    daddr: podIp("x", "a"),
    protocol: "UDP",
    port: 53,
  });
  const other = interpret(rs, {
    saddr: podIp("y", "a"),
    daddr: podIp("x", "c"),
    protocol: "TCP",
    port: 80,
  });
  assert.deepEqual([send.verdict, send.counters], ["drop", ["drop-pending"]]);
  assert.deepEqual([receive.verdict, receive.counters], ["drop", ["drop-pending"]]);
  assert.equal(other.verdict, "accept");
});

Deno.test("a drop counts against every policy selecting the pod, and logs when asked", () => {
  const policies: NetworkPolicy[] = [fromYtoA, policy("x", "deny-all", {})];
  const state = { policies, ...xyzCluster() };
  const rs = compile(state, { node: "n1", log: { perSecond: 5 } });
  const denied = interpret(rs, {
    saddr: podIp("z", "a"),
    daddr: podIp("x", "a"),
    protocol: "TCP",
    port: 80,
  });
  const byName = new Map(rs.counters.map((c) => [c.name, c.policy]));
  assert.equal(denied.verdict, "drop");
  assert.deepEqual(denied.counters.map((c) => byName.get(c)), [
    { namespace: "x", name: "deny-all", direction: "ingress" },
    { namespace: "x", name: "from-y", direction: "ingress" },
  ]);
  assert.deepEqual(denied.logs, [
    "weft-policy deny x/deny-all ingress: ",
    "weft-policy deny x/from-y ingress: ",
  ]);
  const allowed = interpret(rs, {
    saddr: podIp("y", "a"),
    daddr: podIp("x", "a"),
    protocol: "TCP",
    port: 80,
  });
  assert.deepEqual([allowed.verdict, allowed.counters, allowed.logs], ["accept", [], []]);
  assert.ok(!compile(state, { node: "n1" }).chains.some((c) => c.rules.some((r) => r.log)));
});

Deno.test("replies of allowed connections pass where a new connection would not", () => {
  const state = {
    policies: [policy("x", "deny-all", { policyTypes: ["Ingress", "Egress"] })],
    ...xyzCluster(),
  };
  const rs = compile(state, { node: "n1" });
  const reply = {
    saddr: podIp("x", "a"),
    daddr: podIp("y", "b"),
    protocol: "TCP" as const,
    port: 40000,
  };
  assert.equal(interpret(rs, reply).verdict, "drop");
  assert.equal(interpret(rs, { ...reply, ct: "established" }).verdict, "accept");
});

Deno.test("the policies' problems travel with the compiled rule set", () => {
  const rs = compile({
    policies: [policy("x", "bad", { ingress: [{ ports: [{ port: 99999 }] }] })],
    ...xyzCluster(),
  });
  assert.equal(rs.problems.length, 1);
  assert.match(rs.problems[0].message, /x\/bad: spec.ingress\[0\].ports\[0\]: port 99999/);
});

Deno.test("port ranges of one protocol merge when they overlap or touch", () => {
  assert.deepEqual(
    mergePortRanges([
      { protocol: "UDP", first: 53, last: 53 },
      { protocol: "TCP", first: 81, last: 90 },
      { protocol: "TCP", first: 80, last: 80 },
      { protocol: "TCP", first: 85, last: 100 },
      { protocol: "TCP", first: 102, last: 102 },
    ]),
    [
      { protocol: "TCP", first: 80, last: 100 },
      { protocol: "TCP", first: 102, last: 102 },
      { protocol: "UDP", first: 53, last: 53 },
    ],
  );
});

Deno.test("structure does not depend on pods, namespaces or the node", () => {
  const policies = [
    fromYtoA,
    policy("y", "egress", { policyTypes: ["Egress"], egress: [{ to: [{ podSelector: {} }] }] }),
  ];
  const a = compile({ policies, ...xyzCluster() }, { node: "n1" });
  const b = compile({ policies, pods: [], namespaces: [] }, { node: "n2" });
  assert.deepEqual([a.sets, a.counters, a.chains], [b.sets, b.counters, b.chains]);
});
