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
