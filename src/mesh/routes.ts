/**
 * Routes from the connection graph. An edge exists only when both ends report it, so one peer's
 * stale or lying record cannot attract traffic. Next hops come from a BFS over the sorted graph,
 * which makes every peer with the same view pick the same paths; broadcasts follow ONE spanning
 * tree per connected component (BFS from its lowest-named peer), so every peer with the same view
 * agrees on the tree and a change crosses each tree edge once: N-1 messages, not one per link.
 */
import type { PeerRecord } from "./record.ts";

export interface RouteTable {
  /** Peer name -> the neighbour to hand a message for it to; self is absent. */
  readonly nextHop: ReadonlyMap<string, string>;
  /** Peers in self's component of the graph, self included. */
  readonly reachable: ReadonlySet<string>;
  /** self's neighbours in the component's broadcast tree. */
  readonly treeNeighbors: ReadonlySet<string>;
}

/** Symmetric adjacency lists, each sorted by name. */
export function buildGraph(records: ReadonlyMap<string, PeerRecord>): Map<string, string[]> {
  const reported = new Map<string, Set<string>>();
  for (const record of records.values()) {
    reported.set(record.name, new Set(record.connections.map((c) => c.peer)));
  }
  const graph = new Map<string, string[]>();
  for (const [name, peers] of reported) {
    const list: string[] = [];
    for (const peer of peers) {
      if (peer !== name && reported.get(peer)?.has(name)) list.push(peer);
    }
    graph.set(name, list.sort());
  }
  return graph;
}

function bfs(graph: ReadonlyMap<string, string[]>, root: string): Map<string, string> {
  const parent = new Map<string, string>([[root, root]]);
  const queue = [root];
  for (let i = 0; i < queue.length; i++) {
    const node = queue[i];
    for (const next of graph.get(node) ?? []) {
      if (!parent.has(next)) {
        parent.set(next, node);
        queue.push(next);
      }
    }
  }
  return parent;
}

/** The route table of `self` over `records` (which should include self's own record). */
export function computeRoutes(
  self: string,
  records: ReadonlyMap<string, PeerRecord>,
): RouteTable {
  const graph = buildGraph(records);
  const parent = bfs(graph, self);
  const nextHop = new Map<string, string>();
  const hopOf = (peer: string): string => {
    const known = nextHop.get(peer);
    if (known !== undefined) return known;
    const up = parent.get(peer)!;
    const hop = up === self ? peer : hopOf(up);
    nextHop.set(peer, hop);
    return hop;
  };
  // Resolve in BFS order so the recursion above is always one level deep.
  for (const peer of parent.keys()) if (peer !== self) hopOf(peer);
  let root = self;
  for (const peer of parent.keys()) if (peer < root) root = peer;
  const treeParent = bfs(graph, root);
  const treeNeighbors = new Set<string>();
  for (const [child, up] of treeParent) {
    if (child === root) continue;
    if (child === self) treeNeighbors.add(up);
    if (up === self) treeNeighbors.add(child);
  }
  return { nextHop, reachable: new Set(parent.keys()), treeNeighbors };
}
