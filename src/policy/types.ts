/**
 * The cluster state NetworkPolicy needs, as plain objects. The policy is the networking.k8s.io/v1
 * JSON as the API serves it (so a fixture reads like a manifest); pods and namespaces keep only
 * what enforcement looks at, and the agent maps the Kubernetes objects onto them.
 */

export type Protocol = "TCP" | "UDP" | "SCTP";
export const PROTOCOLS: readonly Protocol[] = ["TCP", "UDP", "SCTP"];

/** The label Kubernetes puts on every namespace (immutable, equal to its name). */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

export interface ContainerPort {
  /** Only named ports matter to policy (an IANA service name, e.g. "http"). */
  name?: string;
  containerPort: number;
  /** Default TCP, as in the Pod API. */
  protocol?: Protocol;
}

/**
 * A pod as policy sees it. Map only pods that are on the pod network: host-network pods share
 * the node's address and are never selected (traffic from a node to its own pods always
 * passes), and finished pods (Succeeded/Failed) must be left out because their address may
 * already belong to a new pod.
 */
export interface Pod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** The pod's IPv4 address; a pod without one cannot be matched yet. */
  ip?: string;
  /** The node it runs on; ingress is enforced there for it, and egress from it. */
  node?: string;
  /** Every container's ports (named ones are what `port: "name"` resolves against). */
  ports?: ContainerPort[];
}

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface IpBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IpBlock;
}

export interface NetworkPolicyPort {
  /** Default TCP. */
  protocol?: Protocol;
  /** A number, or the name of a container port on the destination pod. Absent: every port. */
  port?: number | string;
  /** With a numeric `port`: the last port of the range `port..endPort`. */
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export type PolicyType = "Ingress" | "Egress";

export interface NetworkPolicy {
  metadata: { namespace: string; name: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: PolicyType[];
    ingress?: NetworkPolicyIngressRule[];
    egress?: NetworkPolicyEgressRule[];
  };
}

/** What the policy engine can explain about itself (the shape every area shares). */
export interface Diagnostic {
  code: string;
  severity: "error" | "warning";
  message: string;
  fix: string;
}
