import assert from "node:assert/strict";
import { modelPolicies } from "./model.ts";
import { policy } from "./testing.ts";
import type { NetworkPolicy } from "./types.ts";

function one(p: NetworkPolicy) {
  const { policies, problems } = modelPolicies([p]);
  return { model: policies[0], problems };
}

Deno.test("policyTypes default to Ingress, and Egress only when egress rules exist", () => {
  assert.deepEqual(one(policy("x", "p", {})).model.ingress, []);
  assert.equal(one(policy("x", "p", {})).model.egress, undefined);
  assert.equal(one(policy("x", "p", { egress: [] })).model.egress, undefined);
  const both = one(policy("x", "p", { egress: [{}] })).model;
  assert.deepEqual(both.ingress, []);
  assert.deepEqual(both.egress, [{ peers: "all", ports: "all" }]);
  const listed = one(policy("x", "p", { policyTypes: ["Egress"], ingress: [{}] })).model;
  assert.equal(listed.ingress, undefined);
  assert.deepEqual(listed.egress, []);
});

Deno.test("absent and empty from/ports mean all; a rule list that is empty means none", () => {
  const { model } = one(policy("x", "p", { ingress: [{ from: [], ports: [] }, {}] }));
  assert.deepEqual(model.ingress, [{ peers: "all", ports: "all" }, { peers: "all", ports: "all" }]);
});

Deno.test("a podSelector peer is scoped to the policy's namespace, a namespaceSelector is not", () => {
  const { model } = one(policy("x", "p", {
    ingress: [{
      from: [
        { podSelector: { matchLabels: { a: "1" } } },
        { namespaceSelector: {} },
        { namespaceSelector: { matchLabels: { team: "t" } }, podSelector: {} },
      ],
    }],
  }));
  const peers = model.ingress![0].peers;
  assert.ok(peers !== "all");
  assert.deepEqual(peers.map((p) => p.kind === "pods" && p.group.namespaces), [
    { name: "x" },
    { selector: [] },
    { selector: [{ key: "team", operator: "In", values: ["t"] }] },
  ]);
});

Deno.test("ports: protocol defaults to TCP, endPort makes a range, a name stays a name", () => {
  const { model, problems } = one(policy("x", "p", {
    ingress: [{
      ports: [{ port: 80 }, { port: 8000, endPort: 8080, protocol: "UDP" }, { port: "http" }, {
        protocol: "SCTP",
      }],
    }],
  }));
  assert.deepEqual(problems, []);
  assert.deepEqual(model.ingress![0].ports, [
    { kind: "numeric", protocol: "TCP", first: 80, last: 80 },
    { kind: "numeric", protocol: "UDP", first: 8000, last: 8080 },
    { kind: "named", protocol: "TCP", name: "http" },
    { kind: "numeric", protocol: "SCTP", first: 0, last: 65535 },
  ]);
});

Deno.test("ipBlock: except cuts holes, host bits are masked, IPv6 matches nothing here", () => {
  const { model } = one(policy("x", "p", {
    egress: [{
      to: [
        {
          ipBlock: {
            cidr: "10.0.0.1/24",
            except: ["10.0.0.16/28", "10.0.0.128/25", "192.168.0.0/16"],
          },
        },
        { ipBlock: { cidr: "2001:db8::/32" } },
      ],
    }],
  }));
  const peers = model.egress![0].peers;
  assert.ok(peers !== "all");
  assert.deepEqual(peers[0].kind === "block" && peers[0].block.ranges, [
    { start: 0x0a000000, end: 0x0a000010 },
    { start: 0x0a000020, end: 0x0a000080 },
  ]);
  assert.deepEqual(peers[1].kind === "block" && peers[1].block.ranges, []);
});

Deno.test("a malformed peer or port is dropped and reported; the rule never widens to all", () => {
  const { model, problems } = one(policy("x", "p", {
    ingress: [{
      from: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }],
      ports: [{ port: 80, endPort: 70 }],
    }, {
      // deno-lint-ignore no-explicit-any
      from: [{} as any, { podSelector: { matchLabels: { a: "b" } } }],
      ports: [{ port: "80" }, { port: 0 }, { protocol: "ICMP" as "TCP" }, {
        port: "web",
        endPort: 90,
      }],
    }],
  }));
  assert.deepEqual(model.ingress!.map((r) => [r.peers, r.ports]), [
    [[], []],
    [[{
      kind: "pods",
      group: { namespaces: { name: "x" }, pods: [{ key: "a", operator: "In", values: ["b"] }] },
    }], []],
  ]);
  assert.deepEqual(problems.map((p) => p.message), [
    "NetworkPolicy x/p: spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector; this peer is ignored (the rule allows less)",
    "NetworkPolicy x/p: spec.ingress[0].ports[0]: endPort 70 must be from port 80 to 65535; this port is ignored (the rule allows less)",
    "NetworkPolicy x/p: spec.ingress[1].from[0]: a peer needs podSelector, namespaceSelector or ipBlock; this peer is ignored (the rule allows less)",
    'NetworkPolicy x/p: spec.ingress[1].ports[0]: port "80" is neither a number nor a port name (1-15 of a-z, 0-9, "-", with a letter); this port is ignored (the rule allows less)',
    "NetworkPolicy x/p: spec.ingress[1].ports[1]: port 0 is outside 1-65535; this port is ignored (the rule allows less)",
    'NetworkPolicy x/p: spec.ingress[1].ports[2]: unknown protocol "ICMP" (TCP, UDP, SCTP); this port is ignored (the rule allows less)',
    'NetworkPolicy x/p: spec.ingress[1].ports[3]: endPort cannot follow the named port "web"; this port is ignored (the rule allows less)',
  ]);
  assert.ok(problems.every((p) => p.code === "invalid-policy" && p.severity === "error" && p.fix));
});

Deno.test("a malformed podSelector isolates the whole namespace with nothing allowed", () => {
  const { model, problems } = one(policy("x", "p", {
    podSelector: { matchExpressions: [{ key: "a", operator: "Has" as "In" }] },
    policyTypes: ["Ingress", "Egress"],
    ingress: [{}],
    egress: [{}],
  }));
  assert.deepEqual(model.target, { namespaces: { name: "x" }, pods: [] });
  assert.deepEqual([model.ingress, model.egress], [[], []]);
  assert.match(
    problems[0].message,
    /spec.podSelector: .*unknown operator "Has".*every pod of the namespace is isolated/,
  );
});

Deno.test("an unknown policyType isolates both directions; a nameless policy is skipped", () => {
  const { model, problems } = one(policy("x", "p", {
    policyTypes: ["Ingres" as "Ingress"],
    ingress: [{}],
  }));
  assert.deepEqual([model.ingress, model.egress], [[{ peers: "all", ports: "all" }], []]);
  assert.match(problems[0].message, /unknown type "Ingres"/);
  const nameless = modelPolicies([
    { metadata: { namespace: "x" }, spec: { podSelector: {} } } as NetworkPolicy,
  ]);
  assert.deepEqual(nameless.policies, []);
  assert.match(nameless.problems[0].message, /without metadata.namespace and metadata.name/);
});

Deno.test("models come out sorted by namespace and name", () => {
  const { policies } = modelPolicies([
    policy("y", "a", {}),
    policy("x", "b", {}),
    policy("x", "a", {}),
  ]);
  assert.deepEqual(policies.map((p) => `${p.namespace}/${p.name}`), ["x/a", "x/b", "y/a"]);
});
