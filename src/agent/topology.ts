/**
 * The agent's side of the topology page: it gathers what `buildTopology` (src/api) draws from
 * the parts that own it, and publishes this node's own path summary so the other nodes' pages
 * can show how pairs they are not part of travel.
 *
 * The summary rides the mesh as this node's `paths` data: a few bytes per peer, republished
 * only when a path, its encryption or its health changes (checked once a second), so a quiet
 * cluster gossips nothing new. What another node published is untrusted input: it is parsed
 * field by field and anything malformed is ignored, never shown.
 */
import {
  buildTopology,
  type PathSummary,
  type StatusView,
  type TopologyInputs,
  type TopologyView,
} from "../api/mod.ts";
import { formatIp } from "../net/cidr.ts";
import type { Datapath, PeerPathStatus } from "../datapath/mod.ts";
import { decodePeerBlob } from "../datapath/mod.ts";
import type { ClusterIpam } from "../ipam/mod.ts";
import type { Mesh } from "../mesh/mod.ts";
import { BRIDGE_CONTAINER_ID } from "./node_setup.ts";

/** The mesh data key of a node's path summary. */
export const PATHS_KEY = "paths";
const MAX_PATHS = 10_000;
const PATH_KINDS = new Set(["fastdp", "sleeve", "relay", "down"]);

/** This node's paths in the topology's words, with the data path's reasons. */
export function summarizePaths(statuses: readonly PeerPathStatus[], mode: string): PathSummary[] {
  const expectFastdp = mode === "auto" || mode === "fastdp";
  return statuses.map((s) => ({
    peer: s.peer,
    path: s.path,
    encrypted: s.encrypted,
    healthy: s.healthy,
    // fell back: an unencrypted pair the fast path was expected for travels in userspace
    ...(expectFastdp && !s.encrypted && s.path === "sleeve" ? { fellBack: true } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
  })).sort((a, b) => (a.peer < b.peer ? -1 : 1));
}

/** The summary as published: compact, one array per peer, reasons left out. */
export function encodePaths(summaries: readonly PathSummary[]): string {
  return JSON.stringify(
    summaries.map((
      s,
    ) => [s.peer, s.path, s.encrypted ? 1 : 0, s.healthy ? 1 : 0, s.fellBack ? 1 : 0]),
  );
}

/** A peer's published summary; anything malformed yields nothing rather than a wrong picture. */
export function decodePaths(text: string | undefined): PathSummary[] {
  if (text === undefined || text.length > 1 << 20) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(raw) || raw.length > MAX_PATHS) return [];
  const out: PathSummary[] = [];
  for (const item of raw) {
    if (
      !Array.isArray(item) || typeof item[0] !== "string" || item[0].length > 128 ||
      !PATH_KINDS.has(item[1])
    ) continue;
    out.push({
      peer: item[0],
      path: item[1],
      encrypted: item[2] === 1,
      healthy: item[3] === 1,
      ...(item[4] === 1 ? { fellBack: true } : {}),
    });
  }
  return out;
}

/** Republishes this node's path summary when it changes; returns a stop function. */
export function publishPaths(
  mesh: Pick<Mesh, "setLocalData">,
  source: { datapath: () => Datapath | undefined; mode: string },
  options: { intervalMs?: number } = {},
): () => void {
  let last = "";
  const publish = () => {
    const datapath = source.datapath();
    if (!datapath) return;
    const text = encodePaths(summarizePaths(datapath.status(), source.mode));
    if (text === last) return;
    last = text;
    mesh.setLocalData(PATHS_KEY, text);
  };
  publish();
  const timer = setInterval(publish, options.intervalMs ?? 1000);
  return () => clearInterval(timer);
}

export interface TopologySources {
  mesh: Pick<Mesh, "name" | "peers">;
  ipam: ClusterIpam | undefined;
  datapath: Datapath | undefined;
  datapathMode: string;
  status: Pick<StatusView, "ready" | "range" | "problems">;
}

/** The cluster as this node sees it, for GET /status/topology. */
export function agentTopology(sources: TopologySources): TopologyView {
  return buildTopology(topologyInputs(sources, Date.now()));
}

/** Everything `buildTopology` needs, read from the parts that own it. */
export function topologyInputs(sources: TopologySources, now: number): TopologyInputs {
  const peers = sources.mesh.peers();
  const paths = new Map<string, PathSummary[]>();
  const pods = new Map<string, Array<{ ip: string; name?: string }>>();
  for (const peer of peers) {
    if (peer.self) continue;
    paths.set(peer.name, decodePaths(peer.data[PATHS_KEY]));
    pods.set(peer.name, remotePods(peer.data.datapath));
  }
  if (sources.datapath) {
    paths.set(sources.mesh.name, summarizePaths(sources.datapath.status(), sources.datapathMode));
  }
  // this node's pods by address and the start of their container ID (the bridge left out)
  pods.set(
    sources.mesh.name,
    (sources.ipam?.list() ?? []).filter((a) => a.containerId !== BRIDGE_CONTAINER_ID)
      .map((a) => ({ ip: formatIp(a.address), name: a.containerId.slice(0, 12) })),
  );
  const status = sources.ipam?.status();
  return {
    now,
    self: sources.mesh.name,
    ready: sources.status.ready,
    range: sources.status.range,
    problems: sources.status.problems ?? [],
    peers: peers.map((p) => ({
      name: p.name,
      nickname: p.nickname,
      reachable: p.reachable,
      connections: p.connections,
    })),
    paths,
    pods,
    ring: (sources.ipam?.segments() ?? []).map((s) => ({
      start: formatIp(s.start),
      end: formatIp(s.end - 1),
      size: s.end - s.start,
      owner: s.owner,
    })),
    owners: (status?.peers ?? []).filter((p) => !p.removed && !p.left).map((p) => ({
      peer: p.name,
      owned: p.owned,
      used: p.used,
      free: p.free,
    })),
  };
}

/** A remote node's pods, from the endpoints its data path publishes (its bridge left out). */
function remotePods(blob: string | undefined): Array<{ ip: string }> {
  if (blob === undefined) return [];
  try {
    const decoded = decodePeerBlob(blob);
    return decoded.endpoints.filter((e) => e.ip !== decoded.bridgeIp).map((e) => ({ ip: e.ip }));
  } catch {
    return [];
  }
}
