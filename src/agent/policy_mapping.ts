/**
 * Kubernetes objects as NetworkPolicy reads them: src/kube keeps slim API objects, src/policy
 * declares its own plain shapes, and the two areas never import each other, so the agent maps.
 *
 * What is left out on purpose: host-network pods (they are their node; traffic between a node
 * and its own pods always passes) and finished pods (Succeeded, Failed: their address may
 * already belong to a new pod). A pod keeps its first IPv4 address; weft has no other kind.
 */
import type {
  Namespace as KubeNamespace,
  NetworkPolicy as KubeNetworkPolicy,
  Pod as KubePod,
} from "../kube/mod.ts";
import type { ContainerPort, Namespace, NetworkPolicy, Pod, Protocol } from "../policy/mod.ts";

const FINISHED = new Set(["Succeeded", "Failed"]);
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** True for pods policy must ignore: on the host's network, or finished. */
export function outsidePolicy(pod: KubePod): boolean {
  return pod.hostNetwork || FINISHED.has(pod.phase);
}

/** Store objects are replaced, never changed, on an update: their mapping can be kept. */
const mapped = new WeakMap<KubePod, Pod | null>();

/**
 * The pod as policy sees it, or undefined when policy ignores it. `ip` replaces the API's
 * address (for a local pod, the address the CNI ADD was given, which the API learns later);
 * `null` leaves the pod without one. `node` replaces spec.nodeName.
 */
export function policyPod(
  pod: KubePod,
  options: { ip?: string | null; node?: string } = {},
): Pod | undefined {
  let base = mapped.get(pod);
  if (base === undefined) {
    base = mapPod(pod) ?? null;
    mapped.set(pod, base);
  }
  if (base === null) return undefined;
  if (options.ip === undefined && options.node === undefined) return base;
  const { ip: _, ...rest } = base;
  const ip = options.ip === null ? undefined : options.ip ?? base.ip;
  const node = options.node ?? base.node;
  return { ...rest, ...(ip ? { ip } : {}), ...(node ? { node } : {}) };
}

function mapPod(pod: KubePod): Pod | undefined {
  if (outsidePolicy(pod)) return undefined;
  const ip = pod.ips.find((a) => IPV4.test(a));
  return {
    namespace: pod.namespace,
    name: pod.name,
    labels: pod.labels as Record<string, string>,
    ...(ip ? { ip } : {}),
    ...(pod.nodeName ? { node: pod.nodeName } : {}),
    ...(pod.namedPorts.length ? { ports: pod.namedPorts.flatMap(containerPort) } : {}),
  };
}

function containerPort(port: KubePod["namedPorts"][number]): ContainerPort[] {
  const protocol = port.protocol as Protocol;
  // a protocol the API does not know cannot be named by a policy port either
  if (!["TCP", "UDP", "SCTP"].includes(protocol)) return [];
  return [{ name: port.name, containerPort: port.port, protocol }];
}

export function policyNamespace(namespace: KubeNamespace): Namespace {
  return { name: namespace.name, labels: namespace.labels as Record<string, string> };
}

/**
 * The API's policy. Field types are the API's own (strings where src/policy has unions): the
 * policy model reads anything malformed fail-closed and reports it, so nothing is checked here.
 */
export function policyOf(policy: KubeNetworkPolicy): NetworkPolicy {
  return {
    metadata: { namespace: policy.namespace, name: policy.name },
    spec: policy.spec as unknown as NetworkPolicy["spec"],
  };
}
