import assert from "node:assert/strict";
import { buildTopology, type TopologyInputs } from "./topology.ts";

const base = (overrides: Partial<TopologyInputs> = {}): TopologyInputs => ({
  now: 0,
  self: "a",
  ready: true,
  range: "10.32.0.0/12",
  problems: [],
  peers: [
    { name: "a", nickname: "alpha", reachable: true, connections: [{ peer: "b" }, { peer: "c" }] },
    { name: "b", nickname: "bravo", reachable: true, connections: [{ peer: "a" }] },
    { name: "c", nickname: "charlie", reachable: true, connections: [{ peer: "a" }] },
  ],
  paths: new Map([["a", [
    { peer: "b", path: "fastdp", encrypted: false, healthy: true },
    {
      peer: "c",
      path: "sleeve",
      encrypted: true,
      healthy: true,
      fellBack: true,
      reason: "VXLAN lost",
    },
  ]]]),
  pods: new Map([["b", [{ ip: "10.32.0.9" }]]]),
  ring: [{ start: "10.32.0.0", end: "10.47.255.255", size: 1 << 20, owner: "a", used: 3 }],
  owners: [{ peer: "a", owned: 1 << 20, used: 3, free: (1 << 20) - 3 }],
  ...overrides,
});

Deno.test("topology: a pair both ends report is established, with this node's view of the path", () => {
  const view = buildTopology(base());
  const ab = view.links.find((l) => l.a === "a" && l.b === "b")!;
  assert.equal(ab.state, "established");
  assert.equal(ab.path, "fastdp");
  assert.equal(ab.reportedBy, "alpha");
  assert.deepEqual(view.nodes.find((n) => n.name === "b")!.pods, [{ ip: "10.32.0.9" }]);
});

Deno.test("topology: a fallback to the userspace path is a problem in words", () => {
  const view = buildTopology(base());
  const ac = view.links.find((l) => l.b === "c")!;
  assert.equal(ac.expected, false);
  assert.equal(view.problems.length, 1);
  assert.equal(view.problems[0].code, "sleeve-fallback");
  assert.match(view.problems[0].message, /alpha - charlie uses the userspace path.*VXLAN lost/);
});

Deno.test("topology: an unreachable node comes first, and its stale links never look healthy", () => {
  const view = buildTopology(base({
    peers: [
      { name: "a", nickname: "alpha", reachable: true, connections: [{ peer: "b" }] },
      { name: "b", nickname: "bravo", reachable: true, connections: [{ peer: "a" }] },
      // c's last record still lists b, but b no longer lists c
      { name: "c", nickname: "charlie", reachable: false, connections: [{ peer: "b" }] },
    ],
    paths: new Map(),
    problems: [{ code: "x", severity: "warning", message: "own", fix: "none" }],
  }));
  assert.deepEqual(view.problems.map((p) => p.code), ["peer-unreachable", "x"]);
  assert.match(view.problems[0].message, /charlie \(c\) is unreachable/);
  const bc = view.links.find((l) => l.a === "b" && l.b === "c")!;
  assert.equal(bc.state, "one-way");
  assert.equal(bc.healthy, false);
  assert.match(bc.reason!, /charlie unreachable/);
});

Deno.test("topology: a relayed peer without a mesh connection still gets a line", () => {
  const view = buildTopology(base({
    peers: [
      { name: "a", nickname: "alpha", reachable: true, connections: [{ peer: "b" }] },
      {
        name: "b",
        nickname: "bravo",
        reachable: true,
        connections: [{ peer: "a" }, { peer: "c" }],
      },
      { name: "c", nickname: "charlie", reachable: true, connections: [{ peer: "b" }] },
    ],
    paths: new Map([["a", [
      { peer: "c", path: "relay", encrypted: true, healthy: true, via: "b" },
    ]]]),
  }));
  const ac = view.links.find((l) => l.a === "a" && l.b === "c")!;
  assert.equal(ac.path, "relay");
  assert.equal(ac.via, "bravo");
});
