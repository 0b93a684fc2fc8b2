/**
 * The objects the fake API's typed helpers build: Nodes with addresses, and Pods shaped as the
 * API serves them (labels, node, host network, one container's ports, phase and addresses).
 */
import type { StoredObject } from "./fake_kube_store.ts";

export interface FakeNodeSpec {
  internalIp?: string;
  externalIp?: string;
}

export interface FakePodSpec {
  labels?: Record<string, string>;
  /** status.podIP (and podIPs); a pod without one has not been given its network yet. */
  ip?: string;
  /** spec.nodeName */
  node?: string;
  hostNetwork?: boolean;
  /** Defaults to Running with an address, Pending without. */
  phase?: string;
  /** Ports of the pod's one container. */
  ports?: { name?: string; containerPort: number; protocol?: string }[];
}

export function nodeAddresses(name: string, spec: FakeNodeSpec) {
  return [
    ...(spec.internalIp ? [{ type: "InternalIP", address: spec.internalIp }] : []),
    ...(spec.externalIp ? [{ type: "ExternalIP", address: spec.externalIp }] : []),
    { type: "Hostname", address: name },
  ];
}

export function podObject(namespace: string, name: string, spec: FakePodSpec): StoredObject {
  const ports = (spec.ports ?? []).map((p) => ({ protocol: "TCP", ...p }));
  return {
    metadata: { name, namespace, labels: spec.labels ?? {} },
    spec: {
      ...(spec.node ? { nodeName: spec.node } : {}),
      ...(spec.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: "main", image: "registry.k8s.io/pause:3.10", ports }],
    },
    status: {
      phase: spec.phase ?? (spec.ip ? "Running" : "Pending"),
      ...(spec.ip ? { podIP: spec.ip, podIPs: [{ ip: spec.ip }] } : {}),
    },
  } as unknown as StoredObject;
}

export function podSpecOf(pod: StoredObject): FakePodSpec {
  const spec = pod.spec as {
    nodeName?: string;
    hostNetwork?: boolean;
    containers: { ports?: FakePodSpec["ports"] }[];
  };
  const status = pod.status as { phase?: string; podIP?: string };
  return {
    labels: pod.metadata.labels,
    ip: status.podIP,
    node: spec.nodeName,
    hostNetwork: spec.hostNetwork,
    phase: status.podIP ? status.phase : undefined,
    ports: spec.containers[0]?.ports,
  };
}
