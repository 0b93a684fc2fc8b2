/**
 * The cluster as one picture: GET /status/topology, what the topology page (GET /ui) draws.
 *
 * Built from the same facts the other status routes serve (peers and their connections from the
 * mesh, paths from the data path, the ring and allocations from the IPAM, the node's problems),
 * by a pure function so a 50-node cluster can be simulated in a test. A link between two other
 * nodes carries a path only if one of its ends published its data path view (each agent gossips
 * a small summary of its own paths); otherwise it is drawn as a mesh connection alone.
 */

/** A problem in words, with what would fix it (the shape every component reports). */
export interface TopologyProblem {
  code: string;
  severity: "error" | "warning";
  message: string;
  fix: string;
}

/** One node's own view of how its traffic to one peer travels. */
export interface PathSummary {
  peer: string;
  path: "fastdp" | "sleeve" | "relay" | "down";
  encrypted: boolean;
  healthy: boolean;
  /** Set when the node expected the fast path and fell back (e.g. VXLAN blocked). */
  fellBack?: boolean;
  via?: string;
  reason?: string;
}

export interface TopologyNode {
  name: string;
  nickname: string;
  self: boolean;
  reachable: boolean;
  pods: Array<{ ip: string; name?: string }>;
}

export interface TopologyLink {
  /** Peer names, a < b. */
  a: string;
  b: string;
  aNickname: string;
  bNickname: string;
  /** "established" when both ends report the connection, "one-way" when only one does. */
  state: "established" | "one-way";
  path?: PathSummary["path"];
  encrypted?: boolean;
  healthy?: boolean;
  /** False when the fast path was expected and the pair fell back to the userspace path. */
  expected?: boolean;
  via?: string;
  reason?: string;
  /** Whose data path view the path comes from. */
  reportedBy?: string;
}

export interface RingSegment {
  start: string;
  end: string;
  size: number;
  owner: string;
  ownerNickname: string;
  reachable: boolean;
  /** Addresses handed out in this segment, when known (this node's own segments). */
  used?: number;
}

export interface OwnerSummary {
  peer: string;
  nickname: string;
  reachable: boolean;
  owned: number;
  used?: number;
  free?: number;
}

export interface TopologyView {
  generatedAt: string;
  self: string;
  ready: boolean;
  range: string;
  problems: TopologyProblem[];
  nodes: TopologyNode[];
  links: TopologyLink[];
  ring: RingSegment[];
  owners: OwnerSummary[];
}

/** What the agent gathers for `buildTopology`. */
export interface TopologyInputs {
  now: number;
  self: string;
  ready: boolean;
  range: string;
  problems: TopologyProblem[];
  peers: ReadonlyArray<{
    name: string;
    nickname: string;
    reachable: boolean;
    connections: ReadonlyArray<{ peer: string }>;
  }>;
  /** Each node's published path summaries (this node's own from its data path). */
  paths: ReadonlyMap<string, readonly PathSummary[]>;
  pods: ReadonlyMap<string, ReadonlyArray<{ ip: string; name?: string }>>;
  ring: ReadonlyArray<{ start: string; end: string; size: number; owner: string; used?: number }>;
  owners: ReadonlyArray<{ peer: string; owned: number; used?: number; free?: number }>;
}

function pairKey(a: string, b: string): [string, string] {
  return a < b ? [a, b] : [b, a];
}

/** The whole picture, problems first: unreachable peers, unexpected paths, then the node's own. */
export function buildTopology(inputs: TopologyInputs): TopologyView {
  const byName = new Map(inputs.peers.map((p) => [p.name, p]));
  const nickname = (name: string) => byName.get(name)?.nickname ?? name;
  const reachable = (name: string) => byName.get(name)?.reachable ?? false;

  // A connection counts once per pair; both ends reporting it makes it established.
  const reports = new Map<string, { a: string; b: string; ends: Set<string> }>();
  for (const peer of inputs.peers) {
    for (const connection of peer.connections) {
      if (connection.peer === peer.name) continue;
      const [a, b] = pairKey(peer.name, connection.peer);
      const key = `${a}\n${b}`;
      const entry = reports.get(key) ?? { a, b, ends: new Set<string>() };
      entry.ends.add(peer.name);
      reports.set(key, entry);
    }
  }
  // Paths: this node's own view wins for its pairs; for other pairs, the lower-named end's view.
  const pathOf = (a: string, b: string): { summary: PathSummary; by: string } | undefined => {
    const order = a === inputs.self ? [a, b] : b === inputs.self ? [b, a] : [a, b];
    for (const from of order) {
      const other = from === a ? b : a;
      const summary = inputs.paths.get(from)?.find((p) => p.peer === other);
      if (summary) return { summary, by: from };
    }
    return undefined;
  };
  // Relayed pairs have no mesh connection but a path: list them too, from our own view.
  for (const summary of inputs.paths.get(inputs.self) ?? []) {
    if (summary.path !== "relay") continue;
    const [a, b] = pairKey(inputs.self, summary.peer);
    const key = `${a}\n${b}`;
    if (!reports.has(key)) reports.set(key, { a, b, ends: new Set() });
  }

  const links: TopologyLink[] = [...reports.values()].map(({ a, b, ends }) => {
    const found = pathOf(a, b);
    const link: TopologyLink = {
      a,
      b,
      aNickname: nickname(a),
      bNickname: nickname(b),
      state: ends.size >= 2 ? "established" : "one-way",
    };
    if (found) {
      const { summary, by } = found;
      link.path = summary.path;
      link.encrypted = summary.encrypted;
      link.healthy = summary.healthy;
      link.expected = !summary.fellBack;
      link.reportedBy = nickname(by);
      if (summary.via) link.via = nickname(summary.via);
      if (summary.reason) link.reason = summary.reason;
    }
    // What an unreachable node last said about its links is stale: never show it as working.
    const gone = [a, b].filter((name) => name !== inputs.self && !reachable(name));
    if (gone.length > 0) {
      link.healthy = false;
      link.reason = `${gone.map(nickname).join(" and ")} unreachable`;
    }
    return link;
  }).sort((x, y) => (x.a + x.b < y.a + y.b ? -1 : 1));

  const nodes: TopologyNode[] = inputs.peers.map((p) => ({
    name: p.name,
    nickname: p.nickname,
    self: p.name === inputs.self,
    reachable: p.name === inputs.self || p.reachable,
    pods: [...(inputs.pods.get(p.name) ?? [])],
  })).sort((x, y) => (x.name < y.name ? -1 : 1));

  const problems: TopologyProblem[] = [];
  for (const node of nodes) {
    if (node.reachable) continue;
    problems.push({
      code: "peer-unreachable",
      severity: "error",
      message: `Node ${node.nickname} (${node.name}) is unreachable: no path to it in the mesh`,
      fix: "Check that the node is running weft and that its underlay address is reachable " +
        "(TCP 6783, UDP 6783-6784); remove it with `weft rmpeer` if it is gone for good",
    });
  }
  for (const link of links) {
    if (link.expected !== false) continue;
    problems.push({
      code: "sleeve-fallback",
      severity: "warning",
      message: `${link.aNickname} - ${link.bNickname} uses the userspace path where the fast ` +
        `path was expected${link.reason ? `: ${link.reason}` : ""}`,
      fix: "Allow UDP 6784 (VXLAN) between the two nodes' underlay addresses",
    });
  }
  problems.push(...inputs.problems);

  const ring: RingSegment[] = inputs.ring.map((r) => ({
    ...r,
    ownerNickname: nickname(r.owner),
    reachable: reachable(r.owner) || r.owner === inputs.self,
  }));
  const owners: OwnerSummary[] = inputs.owners.map((o) => ({
    ...o,
    nickname: nickname(o.peer),
    reachable: reachable(o.peer) || o.peer === inputs.self,
  }));

  return {
    generatedAt: new Date(inputs.now).toISOString(),
    self: inputs.self,
    ready: inputs.ready,
    range: inputs.range,
    problems,
    nodes,
    links,
    ring,
    owners,
  };
}
