/**
 * What weft keeps of Pods, Namespaces and NetworkPolicies, and how the informer files them.
 * NetworkPolicy enforcement needs every pod in the cluster (a rule on this node may name pods
 * anywhere), so the slim shapes hold only what policy reads: for a pod its labels, addresses,
 * node, phase and named container ports, not its spec and status. Annotations (kubectl's
 * last-applied copy of the whole object among them) and managedFields are dropped, which is most
 * of an object's size. The shapes are plain data; src/policy declares its own and the agent maps.
 */
import type { ResourceType } from "./informer.ts";
import { labelPair } from "./store.ts";

export interface NamedPort {
  name: string;
  port: number;
  /** TCP, UDP or SCTP; TCP when the API omits it. */
  protocol: string;
}

export interface Pod {
  namespace: string;
  name: string;
  uid: string;
  labels: Readonly<Record<string, string>>;
  /** spec.nodeName; undefined until the pod is scheduled. */
  nodeName?: string;
  /** status.podIPs; empty until the pod's sandbox has its network. */
  ips: readonly string[];
  /** A host-network pod has the node's address; NetworkPolicy does not apply to it. */
  hostNetwork: boolean;
  /** Pending, Running, Succeeded, Failed or Unknown. */
  phase: string;
  /** The containers' ports that have a name (what a policy's named port resolves against). */
  namedPorts: readonly NamedPort[];
}

export interface Namespace {
  name: string;
  uid: string;
  labels: Readonly<Record<string, string>>;
}

/** A label selector as the API writes it. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

/** networking.k8s.io/v1 NetworkPolicySpec, as the API sends it. */
export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes?: string[];
  ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
}

export interface NetworkPolicy {
  namespace: string;
  name: string;
  uid: string;
  spec: NetworkPolicySpec;
}

export type PodIndex = "namespace" | "label" | "node" | "ip";
export type NamespaceIndex = "label";
export type NetworkPolicyIndex = "namespace";

interface RawPod {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string> };
  spec?: {
    nodeName?: string;
    hostNetwork?: boolean;
    containers?: { ports?: { name?: string; containerPort?: number; protocol?: string }[] }[];
  };
  status?: { phase?: string; podIP?: string; podIPs?: { ip?: string }[] };
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});
const NO_PORTS: readonly NamedPort[] = Object.freeze([]);
const TERMINAL_PHASES = new Set(["Succeeded", "Failed"]);

function labelsOf(labels: Record<string, string> | undefined): Readonly<Record<string, string>> {
  return labels && Object.keys(labels).length ? labels : NO_LABELS;
}

function labelPairs(object: { labels: Readonly<Record<string, string>> }): string[] {
  return Object.entries(object.labels).map(([key, value]) => labelPair(key, value));
}

export function slimPod(raw: RawPod): Pod {
  const { metadata = {}, spec = {}, status = {} } = raw;
  const ips = status.podIPs?.map((entry) => entry.ip).filter((ip): ip is string => !!ip) ??
    (status.podIP ? [status.podIP] : []);
  const namedPorts: NamedPort[] = [];
  for (const container of spec.containers ?? []) {
    for (const port of container.ports ?? []) {
      if (port.name && port.containerPort) {
        namedPorts.push({
          name: port.name,
          port: port.containerPort,
          protocol: port.protocol ?? "TCP",
        });
      }
    }
  }
  return {
    namespace: metadata.namespace ?? "",
    name: metadata.name ?? "",
    uid: metadata.uid ?? "",
    labels: labelsOf(metadata.labels),
    ...(spec.nodeName ? { nodeName: spec.nodeName } : {}),
    ips,
    hostNetwork: spec.hostNetwork === true,
    phase: status.phase ?? "Pending",
    namedPorts: namedPorts.length ? namedPorts : NO_PORTS,
  };
}

export const POD_RESOURCE: ResourceType<Pod, PodIndex> = {
  path: "/api/v1/pods",
  slim: (raw) => slimPod(raw as RawPod),
  indexes: {
    namespace: (pod) => [pod.namespace],
    label: labelPairs,
    node: (pod) => (pod.nodeName ? [pod.nodeName] : []),
    // A host-network pod shares the node's address, and a finished pod's address may already
    // belong to a new pod: neither is "the pod with this address".
    ip: (pod) => (pod.hostNetwork || TERMINAL_PHASES.has(pod.phase) ? [] : pod.ips),
  },
};

export const NAMESPACE_RESOURCE: ResourceType<Namespace, NamespaceIndex> = {
  path: "/api/v1/namespaces",
  slim: ({ metadata = {} }) => ({
    name: metadata.name ?? "",
    uid: metadata.uid ?? "",
    labels: labelsOf((metadata as { labels?: Record<string, string> }).labels),
  }),
  indexes: { label: labelPairs },
};

export const NETWORK_POLICY_RESOURCE: ResourceType<NetworkPolicy, NetworkPolicyIndex> = {
  path: "/apis/networking.k8s.io/v1/networkpolicies",
  slim: ({ metadata = {}, spec }) => ({
    namespace: metadata.namespace ?? "",
    name: metadata.name ?? "",
    uid: metadata.uid ?? "",
    spec: (spec as NetworkPolicySpec | undefined) ?? { podSelector: {} },
  }),
  indexes: { namespace: (policy) => [policy.namespace] },
};
