import assert from "node:assert/strict";
import {
  type KubeNode,
  nodeAddress,
  type NodeSummary,
  peerAddresses,
  vanishedNodes,
} from "./nodes.ts";

function node(name: string, addresses: [string, string][]): KubeNode {
  return {
    metadata: { name, uid: `uid-${name}` },
    status: { addresses: addresses.map(([type, address]) => ({ type, address })) },
  };
}

Deno.test("nodeAddress prefers InternalIP over ExternalIP", () => {
  const n = node("a", [["ExternalIP", "203.0.113.5"], ["Hostname", "a"], [
    "InternalIP",
    "10.0.0.5",
  ]]);
  assert.equal(nodeAddress(n), "10.0.0.5");
});

Deno.test("nodeAddress falls back to ExternalIP when there is no InternalIP", () => {
  assert.equal(
    nodeAddress(node("a", [["Hostname", "a"], ["ExternalIP", "203.0.113.5"]])),
    "203.0.113.5",
  );
});

Deno.test("nodeAddress picks the IPv4 InternalIP on a dual-stack node", () => {
  assert.equal(
    nodeAddress(node("a", [["InternalIP", "fd00::5"], ["InternalIP", "10.0.0.5"]])),
    "10.0.0.5",
  );
  assert.equal(nodeAddress(node("a", [["InternalIP", "fd00::5"]])), "fd00::5");
});

Deno.test("nodeAddress is undefined for a Node without addresses yet", () => {
  assert.equal(nodeAddress({ metadata: { name: "a" } }), undefined);
  assert.equal(nodeAddress(node("a", [["Hostname", "a"]])), undefined);
});

Deno.test("peerAddresses leaves out self and address-less nodes, sorted and unique", () => {
  const nodes: NodeSummary[] = [
    { name: "c", uid: "3", address: "10.0.0.3" },
    { name: "self", uid: "0", address: "10.0.0.9" },
    { name: "a", uid: "1", address: "10.0.0.1" },
    { name: "b", uid: "2" },
    { name: "a2", uid: "4", address: "10.0.0.1" },
  ];
  assert.deepEqual(peerAddresses(nodes, "self"), ["10.0.0.1", "10.0.0.3"]);
});

Deno.test("vanishedNodes reports removed nodes and same-name nodes with a new uid", () => {
  const before = new Map<string, NodeSummary>([
    ["a", { name: "a", uid: "1" }],
    ["b", { name: "b", uid: "2" }],
    ["c", { name: "c", uid: "3" }],
  ]);
  const after = new Map<string, NodeSummary>([
    ["a", { name: "a", uid: "1" }],
    ["c", { name: "c", uid: "33" }],
    ["d", { name: "d", uid: "4" }],
  ]);
  assert.deepEqual(vanishedNodes(before, after).map((n) => `${n.name}/${n.uid}`), ["b/2", "c/3"]);
});
