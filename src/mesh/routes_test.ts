import assert from "node:assert/strict";
import fc from "fast-check";
import type { PeerRecord } from "./record.ts";
import { buildGraph, computeRoutes } from "./routes.ts";

function records(edges: Record<string, string[]>): Map<string, PeerRecord> {
  const map = new Map<string, PeerRecord>();
  for (const [name, peers] of Object.entries(edges)) {
    map.set(name, {
      name,
      nickname: name,
      incarnation: "00000001aaaa",
      version: 1,
      connections: peers.map((peer) => ({ peer, address: `${peer}:6783` })),
      data: {},
      key: "",
      sig: "",
    });
  }
  return map;
}

Deno.test("an edge counts only when both ends report it", () => {
  const graph = buildGraph(records({ a: ["b", "c"], b: ["a"], c: [] }));
  assert.deepEqual(graph.get("a"), ["b"]);
  assert.deepEqual(graph.get("c"), []);
});

Deno.test("next hops follow shortest paths on a line and a ring", () => {
  const line = computeRoutes("a", records({ a: ["b"], b: ["a", "c"], c: ["b", "d"], d: ["c"] }));
  assert.deepEqual(Object.fromEntries(line.nextHop), { b: "b", c: "b", d: "b" });
  const ring = computeRoutes(
    "a",
    records({ a: ["b", "e"], b: ["a", "c"], c: ["b", "d"], d: ["c", "e"], e: ["d", "a"] }),
  );
  assert.deepEqual(Object.fromEntries(ring.nextHop), { b: "b", c: "b", d: "e", e: "e" });
});

Deno.test("peers in another component are unreachable and have no next hop", () => {
  const table = computeRoutes("a", records({ a: ["b"], b: ["a"], c: ["d"], d: ["c"] }));
  assert.deepEqual([...table.reachable].sort(), ["a", "b"]);
  assert.equal(table.nextHop.get("c"), undefined);
});

Deno.test("every peer agrees on one broadcast spanning tree over random connected graphs", () => {
  fc.assert(fc.property(
    fc.integer({ min: 2, max: 30 }),
    fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 60 }),
    (n, extra) => {
      const names = Array.from({ length: n }, (_, i) => `p${String(i).padStart(2, "0")}`);
      const adjacency = new Map(names.map((name) => [name, new Set<string>()]));
      const link = (x: string, y: string) => {
        if (x === y) return;
        adjacency.get(x)!.add(y);
        adjacency.get(y)!.add(x);
      };
      // A random spanning path keeps the graph connected; extra edges add cycles.
      for (let i = 1; i < n; i++) link(names[i], names[(i * 7919) % i]);
      for (const [x, y] of extra) link(names[x % n], names[y % n]);
      const map = records(Object.fromEntries([...adjacency].map(([k, v]) => [k, [...v]])));
      const tables = new Map(names.map((name) => [name, computeRoutes(name, map)]));
      let treeEdges = 0;
      for (const [name, table] of tables) {
        assert.equal(table.reachable.size, n);
        for (const other of table.treeNeighbors) {
          // Tree edges are real links and both ends agree on them.
          assert.ok(adjacency.get(name)!.has(other));
          assert.ok(tables.get(other)!.treeNeighbors.has(name));
          treeEdges++;
        }
        // Following next hops from here reaches every peer without loops.
        for (const target of names) {
          if (target === name) continue;
          let at = name;
          for (let steps = 0; at !== target; steps++) {
            assert.ok(steps < n, `routing loop from ${name} to ${target}`);
            at = tables.get(at)!.nextHop.get(target)!;
          }
        }
      }
      assert.equal(treeEdges, 2 * (n - 1));
    },
  ));
});

Deno.test("the broadcast tree of a full mesh is not a star: fan-out stays capped", () => {
  const names = Array.from({ length: 50 }, (_, i) => `p${String(i).padStart(2, "0")}`);
  const map = records(Object.fromEntries(names.map((n) => [n, names.filter((m) => m !== n)])));
  let depthOk = true;
  for (const name of names) {
    const table = computeRoutes(name, map, { fanout: 4 });
    // At most 4 children plus one parent.
    assert.ok(table.treeNeighbors.size <= 5, `${name} has ${table.treeNeighbors.size} tree links`);
    depthOk &&= table.reachable.size === 50;
  }
  assert.ok(depthOk);
  const root = computeRoutes("p00", map, { fanout: 4 });
  assert.equal(root.treeNeighbors.size, 4);
});

Deno.test("a peer only full parents can reach still joins the tree", () => {
  // p0 is the root with five leaves; p0's fan-out of 2 cannot adopt them all, nobody else can.
  const table = computeRoutes(
    "p0",
    records({
      p0: ["a", "b", "c", "d", "e"],
      a: ["p0"],
      b: ["p0"],
      c: ["p0"],
      d: ["p0"],
      e: ["p0"],
    }),
    { fanout: 2 },
  );
  assert.deepEqual([...table.treeNeighbors].sort(), ["a", "b", "c", "d", "e"]);
});
