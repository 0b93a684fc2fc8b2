import assert from "node:assert/strict";
import { Reachability } from "./evaluate.ts";
import { compiledAllows, compileNodes, labels, podIp, policy, xyzCluster } from "./testing.ts";

const denyAllX = policy("x", "deny-all", { policyTypes: ["Ingress", "Egress"] });

function state(policies = [denyAllX]) {
  return { policies, ...xyzCluster() };
}

Deno.test("a pod and its own node always reach each other; another node does not", () => {
  const s = state();
  const oracle = new Reachability(s);
  const ruleSets = compileNodes(s);
  const probes = [
    { from: { node: "n1", ip: "10.250.0.1" }, to: { pod: "x/a" } }, // x/a runs on n1
    { from: { pod: "x/a" }, to: { node: "n1", ip: "10.250.0.1" } },
    { from: { node: "n2", ip: "10.250.0.2" }, to: { pod: "x/a" } },
    { from: { pod: "x/a" }, to: { node: "n2", ip: "10.250.0.2" } },
  ];
  const answers = probes.map((p) => {
    const probe = { ...p, protocol: "TCP" as const, port: 80 };
    const verdict = oracle.check(probe);
    assert.equal(compiledAllows(ruleSets, s, probe), verdict.allowed, JSON.stringify(probe));
    return [verdict.allowed, verdict.reason];
  });
  assert.deepEqual(answers, [[true, "own-node"], [true, "own-node"], [false, "policy"], [
    false,
    "policy",
  ]]);
});

Deno.test("a pod reaches itself whatever isolates it", () => {
  const verdict = new Reachability(state()).check({
    from: { pod: "x/a" },
    to: { pod: "x/a" },
    protocol: "TCP",
    port: 80,
  });
  assert.deepEqual([verdict.allowed, verdict.reason], [true, "same-pod"]);
});

Deno.test("only rules without ports allow protocols without ports (ICMP)", () => {
  const s = state([
    policy("x", "tcp-80", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: 80 }] }],
    }),
    policy("x", "all-to-b", { podSelector: labels({ pod: "b" }), ingress: [{}] }),
  ]);
  const oracle = new Reachability(s);
  const ruleSets = compileNodes(s);
  const ping = (to: string) => {
    const probe = { from: { pod: "y/a" }, to: { pod: to }, protocol: "ICMP" as const, port: 0 };
    const allowed = oracle.check(probe).allowed;
    assert.equal(compiledAllows(ruleSets, s, probe), allowed);
    return allowed;
  };
  assert.deepEqual([ping("x/a"), ping("x/b"), ping("x/c")], [false, true, true]);
});

Deno.test("a verdict says which policies select the pods and which allowed it", () => {
  const oracle = new Reachability(state([
    policy("x", "from-y", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }] }],
    }),
    policy("x", "deny-a", { podSelector: labels({ pod: "a" }) }),
    policy("y", "egress-80", { policyTypes: ["Egress"], egress: [{ ports: [{ port: 80 }] }] }),
  ]));
  const verdict = oracle.check({
    from: { pod: "y/b" },
    to: { pod: "x/a" },
    protocol: "TCP",
    port: 80,
  });
  assert.deepEqual(verdict, {
    allowed: true,
    reason: "policy",
    egress: { selectedBy: ["y/egress-80"], allowedBy: ["y/egress-80"], allowed: true },
    ingress: { selectedBy: ["x/deny-a", "x/from-y"], allowedBy: ["x/from-y"], allowed: true },
  });
  const denied = oracle.check({
    from: { pod: "y/b" },
    to: { pod: "x/a" },
    protocol: "TCP",
    port: 81,
  });
  assert.deepEqual([denied.allowed, denied.egress.allowed, denied.ingress.allowed], [
    false,
    false,
    true,
  ]);
  assert.deepEqual(oracle.selecting("x/a"), { ingress: ["x/deny-a", "x/from-y"], egress: [] });
  assert.deepEqual(oracle.selecting("y/c"), { ingress: [], egress: ["y/egress-80"] });
});

Deno.test("an address that belongs to a pod is judged as that pod", () => {
  const oracle = new Reachability(state([
    policy("x", "from-y-a", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }), podSelector: labels({ pod: "a" }) }],
      }],
    }),
  ]));
  const from = (ip: string) =>
    oracle.check({ from: { ip }, to: { pod: "x/a" }, protocol: "TCP", port: 80 }).allowed;
  assert.deepEqual([from(podIp("y", "a")), from(podIp("y", "b")), from("192.0.2.1")], [
    true,
    false,
    false,
  ]);
});

Deno.test("unknown pods are an error, not a guess", () => {
  assert.throws(
    () =>
      new Reachability(state()).check({
        from: { pod: "q/a" },
        to: { pod: "x/a" },
        protocol: "TCP",
        port: 80,
      }),
    /Unknown pod "q\/a"/,
  );
});
