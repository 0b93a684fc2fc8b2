/**
 * The admin API's JSON views of the agent's parts: allocations, IPAM status, the mesh summary
 * and connections joined with the data path's per-peer paths. Pure functions of what they are
 * given, so the agent stays the composition and these stay easy to read beside the API types.
 */
import type { AllocationView, Diagnostic, IpamStatusView, StatusView } from "../api/mod.ts";
import { type Cidr, formatCidr, formatIp, macForAddress } from "../net/cidr.ts";
import type { Allocation, ClusterIpam } from "../ipam/mod.ts";
import type { Mesh } from "../mesh/mod.ts";
import type { Datapath } from "../datapath/mod.ts";
import type { AgentConfig } from "./config.ts";
import type { NodePhase } from "./node_setup.ts";
import { VERSION } from "../version.ts";

/** GET /status: ready only when the node is up AND the IPAM can allocate. */
export function statusView(parts: {
  config: AgentConfig;
  phase: NodePhase;
  gatewayCidr?: string;
  ipam: IpamStatusView;
  mesh: Pick<Mesh, "name" | "nickname" | "peers" | "connections">;
  /** The problems, given the one-line reason the node is not ready (if it is not). */
  problems: (reason: string | undefined) => Diagnostic[];
  uptimeSeconds: number;
}): StatusView {
  const { config, phase, ipam } = parts;
  const up = phase.kind === "up" ? phase : undefined;
  const ready = up !== undefined && ipam.ready;
  const reason = ready
    ? undefined
    : (up ? ipam.reason : phase.kind === "waiting" ? phase.reason : undefined) ?? "not ready";
  return {
    version: VERSION,
    ready,
    reason,
    problems: parts.problems(reason),
    peerName: parts.mesh.name,
    nickname: parts.mesh.nickname,
    range: formatCidr(config.ipallocRange),
    bridge: {
      name: config.bridge,
      address: parts.gatewayCidr ?? "",
      mac: up?.bridge?.mac ?? "",
      mtu: up?.datapath?.mtu() ?? up?.bridge?.mtu ?? config.mtu ?? 1500,
    },
    ipam,
    mesh: meshSummary(parts.mesh),
    datapath: up?.datapath ? { mode: config.datapathMode, mtu: up.datapath.mtu() } : undefined,
    uptimeSeconds: parts.uptimeSeconds,
  };
}

export function allocationView(
  allocation: Allocation,
  options: { range: Cidr; gateway?: number },
): AllocationView {
  return {
    containerID: allocation.containerId,
    ifname: allocation.ifname,
    address: `${formatIp(allocation.address)}/${options.range.prefix}`,
    gateway: options.gateway === undefined ? "" : formatIp(options.gateway),
    mac: macForAddress(allocation.address),
    createdAt: new Date(allocation.createdAt).toISOString(),
    ...(allocation.network ? { network: allocation.network } : {}),
  };
}

export function ipamStatusView(
  ipam: ClusterIpam | undefined,
  options: { range: Cidr; mesh: Pick<Mesh, "peers">; reason?: string },
): IpamStatusView {
  const range = formatCidr(options.range);
  if (!ipam) {
    return { range, ready: false, reason: options.reason, size: 0, used: 0, free: 0, owned: [] };
  }
  const status = ipam.status();
  const nicknames = new Map(options.mesh.peers().map((p) => [p.name, p.nickname]));
  return {
    range,
    ready: status.ready,
    reason: status.waitingFor,
    size: status.size,
    used: status.used,
    free: status.free,
    owned: status.owned,
    peers: status.peers.map((p) => ({
      peer: p.name,
      nickname: nicknames.get(p.name),
      owned: p.owned,
      used: p.used,
      free: p.free,
      reachable: p.reachable,
      removed: p.removed,
    })),
    unreachablePercentage: status.unreachablePercentage,
    pendingRequests: status.pendingRequests,
    reclaims: status.reclaims,
  };
}

export function meshSummary(mesh: Pick<Mesh, "peers" | "connections">): StatusView["mesh"] {
  const peers = mesh.peers().filter((p) => !p.self);
  const connections = mesh.connections();
  return {
    peers: peers.length,
    reachable: peers.filter((p) => p.reachable).length,
    connections: connections.length,
    established: connections.filter((c) => c.state === "established").length,
  };
}

/**
 * Mesh connections, each with the data path's word on how pod traffic to that peer travels,
 * followed by the peers whose traffic is relayed (no direct connection, but a data path).
 */
export function connectionsView(
  mesh: Pick<Mesh, "connections">,
  datapath: Pick<Datapath, "status"> | undefined,
) {
  const paths = new Map((datapath?.status() ?? []).map((p) => [p.peer, p]));
  const describe = (peer: string) => {
    const path = paths.get(peer);
    paths.delete(peer);
    return path && {
      path: path.path,
      encrypted: path.encrypted,
      pathMtu: path.mtu,
      pathHealthy: path.healthy,
      reason: path.reason,
    };
  };
  const direct = mesh.connections().map((connection) => ({
    ...connection,
    ...(connection.peer ? describe(connection.peer) : undefined),
  }));
  const relayed = [...paths.keys()].map((peer) => ({
    peer,
    state: "indirect",
    ...describe(peer),
  }));
  return [...direct, ...relayed];
}
