/**
 * Routes from the connection graph. An edge exists only when both ends report it, so one peer's
 * stale or lying record cannot attract traffic. Next hops come from a BFS over the sorted graph,
 * which makes every peer with the same view pick the same paths; broadcasts follow ONE spanning
 * tree per connected component (from its lowest-named peer, fan-out capped), so every peer with
 * the same view agrees on the tree and a change crosses each tree edge once: N-1 messages, not
 * one per link, and no peer sends more than a handful of copies.
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

/**
 * A spanning tree in which no peer adopts more than `fanout` children while another parent is
 * possible: BFS that skips full parents, then a second, uncapped pass for peers only full parents
 * could reach. Without the cap a densely connected mesh gives a star and the root would send
 * every change to everyone; with it each peer forwards a change at most about fanout + 1 times
 * and the depth stays near log(N) / log(fanout). Deterministic for a given graph.
 */
function broadcastTree(
  graph: ReadonlyMap<string, string[]>,
  root: string,
  fanout: number,
): Map<string, string> {
  const parent = new Map<string, string>([[root, root]]);
  const queue = [root];
  for (let i = 0; i < queue.length; i++) {
    let children = 0;
    for (const next of graph.get(queue[i]) ?? []) {
      if (children >= fanout) break;
      if (!parent.has(next)) {
        parent.set(next, queue[i]);
        queue.push(next);
        children++;
      }
    }
  }
  for (let i = 0; i < queue.length; i++) {
    for (const next of graph.get(queue[i]) ?? []) {
      if (!parent.has(next)) {
        parent.set(next, queue[i]);
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
  options: { fanout?: number } = {},
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
  const treeParent = broadcastTree(graph, root, options.fanout ?? 4);
  const treeNeighbors = new Set<string>();
  for (const [child, up] of treeParent) {
    if (child === root) continue;
    if (child === self) treeNeighbors.add(up);
    if (up === self) treeNeighbors.add(child);
  }
  return { nextHop, reachable: new Set(parent.keys()), treeNeighbors };
}
