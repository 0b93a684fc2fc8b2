import assert from "node:assert/strict";
import {
  type KubeNode,
  nodeAddress,
  type NodeSummary,
  peerAddresses,
  PeerAddressSet,
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

Deno.test("PeerAddressSet stays sorted and counts shared addresses", () => {
  const set = new PeerAddressSet();
  assert.equal(set.add("10.0.0.3"), true);
  assert.equal(set.add("10.0.0.1"), true);
  assert.equal(set.add("10.0.0.2"), true);
  assert.equal(set.add("10.0.0.2"), false, "a second node on the same address");
  assert.equal(set.add(undefined), false);
  assert.deepEqual(set.list(), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  assert.equal(set.remove("10.0.0.2"), false, "still used by the other node");
  assert.equal(set.remove("10.0.0.2"), true);
  assert.equal(set.remove("10.0.0.9"), false);
  assert.deepEqual(set.list(), ["10.0.0.1", "10.0.0.3"]);
});

Deno.test("PeerAddressSet agrees with peerAddresses under random changes", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const set = new PeerAddressSet();
  const nodes = new Map<string, NodeSummary>();
  for (let step = 0; step < 2000; step++) {
    const name = `n${Math.floor(random() * 50)}`;
    const old = nodes.get(name);
    set.remove(old?.address);
    if (random() < 0.3) {
      nodes.delete(name);
    } else {
      const address = random() < 0.1 ? undefined : `10.0.${Math.floor(random() * 40)}.1`;
      nodes.set(name, { name, uid: name, address });
      set.add(address);
    }
    assert.deepEqual(set.list(), peerAddresses(nodes.values(), "nobody"));
  }
});
