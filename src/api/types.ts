/**
 * What the admin API needs from the agent, declared here so the API depends on an interface
 * and the agent (or a test double) implements it. JSON shapes are the API's public contract:
 * the CLI, the CNI plugin and people with curl all read them.
 */
import type { HttpError } from "./errors.ts";
import type { TopologyView } from "./topology.ts";

export interface AllocationView {
  containerID: string;
  ifname: string;
  /** With the cluster range's prefix, e.g. 10.32.0.5/12. */
  address: string;
  gateway: string;
  mac: string;
  createdAt: string;
  /** The CNI network that asked for it, when the plugin said. */
  network?: string;
}

export interface BridgeView {
  name: string;
  address: string;
  mac: string;
  mtu: number;
}

/**
 * Something that explains why the node is not ready or not healthy, and what a person should
 * do about it. The same shape is declared by the IPAM, the mesh and the data path (areas do
 * not import each other); the agent gathers theirs and its own into `StatusView.problems`.
 */
export interface Diagnostic {
  /** A stable kebab-case id: "awaiting-consensus", "name-collision", "no-route-to-peer", ... */
  code: string;
  severity: "error" | "warning";
  /** What is wrong, with specifics (peer names, addresses, numbers). */
  message: string;
  /** What a person should do about it. */
  fix: string;
}

export interface StatusView {
  version: string;
  ready: boolean;
  /** Why the agent is not ready yet, in one line, for people and for the CNI plugin's message. */
  reason?: string;
  /** Everything that keeps the node from being ready or healthy, with a fix each; [] when none. */
  problems: Diagnostic[];
  peerName: string;
  nickname: string;
  range: string;
  bridge: BridgeView;
  ipam: IpamStatusView;
  mesh?: { peers: number; reachable: number; connections: number; established: number };
  datapath?: { mode: string; mtu: number };
  uptimeSeconds: number;
}

export interface IpamRangeView {
  start: string;
  end: string;
  size: number;
  used: number;
}

export interface IpamPeerView {
  peer: string;
  nickname?: string;
  owned: number;
  used?: number;
  free?: number;
  reachable: boolean;
  /** Removed by `rmpeer` or a reclaim; its space goes to the live peers. */
  removed?: boolean;
}

export interface IpamStatusView {
  range: string;
  ready: boolean;
  reason?: string;
  size: number;
  used: number;
  free: number;
  owned: IpamRangeView[];
  peers?: IpamPeerView[];
  unreachablePercentage?: number;
  pendingRequests?: number;
  /** Reclaims in progress: space nobody owns until the live peers acknowledge the removal. */
  reclaims?: Array<{ peer: string; addresses: number; waitingOn: string[] }>;
  /** What keeps the IPAM from being ready or healthy, with a fix each. */
  problems?: Diagnostic[];
}

/** One address on this node, as NetworkPolicy enforcement sees it (GET /status/policy). */
export interface PolicyPodView {
  address: string;
  /** `namespace/name`; absent when the CNI ADD named no pod. */
  pod?: string;
  /**
   * `enforced`: in its pod's sets; `pending`: its pod is not known yet and its namespace has
   * (or may have) policies, so all its traffic is dropped; `unknown`: its pod is not known but
   * nothing isolates its namespace; `unidentified`: the ADD named no pod (not filtered).
   */
  state: "enforced" | "pending" | "unknown" | "unidentified";
  /** Policies (`namespace/name`) isolating it for ingress; empty: ingress is open. */
  ingress: string[];
  egress: string[];
  /** Since when it has been pending (ISO time). */
  pendingSince?: string;
}

export interface PolicyStatusView {
  enabled: boolean;
  /** Why enforcement is off, when it is. */
  reason?: string;
  node?: string;
  /** True once pods, namespaces and policies have all been listed from the API. */
  synced: boolean;
  /** NetworkPolicies of the cluster in the rules the kernel holds. */
  policies: number;
  pods: PolicyPodView[];
  /** The last change applied to the kernel: a whole-table replacement or a patch. */
  lastApply?: { at: string; kind: "replace" | "patch" | "pending"; lines: number; ms: number };
  problems: Diagnostic[];
}

/**
 * The pod a CNI ADD attaches, from CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID): the
 * agent puts its address into the pod's NetworkPolicy sets before the ADD returns.
 */
export interface PodRef {
  namespace: string;
  name: string;
  uid?: string;
}

export interface AttachmentRef {
  containerID: string;
  ifname: string;
}

/** `weft report`: everything support needs about one node (see docs/operations.md). */
export interface ReportView {
  weft: { version: string; generatedAt: string; redacted: boolean; hostname: string };
  /** The configuration, without the password or any key material. */
  config: Record<string, unknown>;
  status: StatusView;
  peers: unknown[];
  connections: unknown[];
  targets: string[];
  ring: unknown;
  allocations: AllocationView[];
  /** Links, addresses, routes, VXLAN forwarding tables, weft's iptables chains and nft tables. */
  kernel: Record<string, unknown>;
  /** The agent's recent log lines, oldest first. */
  logs: Array<{ time: string; message: string }>;
  /** Older lines no longer kept. */
  logsDropped: number;
}

/** Optional mesh operations; an agent without a mesh leaves `mesh` undefined and the routes 404. */
export interface MeshPort {
  peers(): unknown[];
  connections(): unknown[];
  targets(): string[];
  connect(address: string, options: { replace: boolean }): void;
  forget(address: string): void;
  removePeer?(name: string): Promise<unknown>;
  /**
   * Forgets the identity key bound to peer `name` (after a legitimate reinstall), so its next
   * contact binds again; with `fingerprint`, only that key binds.
   */
  rebindPeer?(name: string, options: { fingerprint?: string }): Promise<unknown>;
  ring?(): unknown;
}

export interface AgentPort {
  /**
   * The agent's domain errors (IPAM, mesh, ...) as the HTTP errors they mean, or undefined for
   * an error it does not know, which the API then answers as a 500: one table, in the agent.
   */
  httpErrorOf?(error: unknown): HttpError | undefined;
  status(): StatusView;
  ipamStatus(): IpamStatusView;
  allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string; pod?: PodRef },
  ): Promise<AllocationView>;
  lookup(containerID: string, ifname?: string): AllocationView[];
  release(containerID: string, ifname?: string): Promise<AllocationView[]>;
  /** GC: releases every allocation not in `valid` (of `network` only, when given). */
  retainOnly(valid: AttachmentRef[], options?: { network?: string }): Promise<AllocationView[]>;
  allocations(): AllocationView[];
  /** Prometheus text exposition of the agent's metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
  countRequest(route: string, method: string, status: number): void;
  /**
   * Operator action when no live peer owns some of the range (every owner removed or gone):
   * this node takes the orphaned space. Run on ONE node only.
   */
  adoptOrphans?(): Promise<{ orphaned: number }>;
  /** Everything support needs, optionally with identifying values replaced. */
  report?(options: { redact: boolean }): Promise<ReportView>;
  /** Leave the cluster cleanly (give address space away), then stop. */
  leave?(): Promise<unknown>;
  expose?(): Promise<unknown>;
  hide?(): Promise<unknown>;
  /** NetworkPolicy enforcement on this node (GET /status/policy). */
  policyStatus?(): PolicyStatusView;
  /** The whole cluster as the topology page draws it (GET /status/topology). */
  topology?(): TopologyView;
  mesh?: MeshPort;
}
