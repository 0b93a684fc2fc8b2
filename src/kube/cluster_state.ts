/**
 * The cluster as NetworkPolicy sees it: one informer each for Pods, Namespaces and
 * NetworkPolicies, cluster-wide, started together. A pod's CNI ADD may arrive before the watch
 * has delivered the pod (the kubelet asks for the network right after the pod is bound), so
 * {@link ClusterState.pod} falls back to reading that one pod from the API.
 */
import type { KubeClient } from "./client.ts";
import { KubeNotFoundError } from "./errors.ts";
import { type Informer, type InformerOptions, startInformer } from "./informer.ts";
import {
  type Namespace,
  NAMESPACE_RESOURCE,
  type NamespaceIndex,
  NETWORK_POLICY_RESOURCE,
  type NetworkPolicy,
  type NetworkPolicyIndex,
  type Pod,
  POD_RESOURCE,
  type PodIndex,
  slimPod,
} from "./cluster_objects.ts";

export type ClusterStateOptions = Omit<InformerOptions, "labelSelector" | "fieldSelector">;

export interface ClusterState {
  pods: Informer<Pod, PodIndex>;
  namespaces: Informer<Namespace, NamespaceIndex>;
  policies: Informer<NetworkPolicy, NetworkPolicyIndex>;
  /** Resolves once all three have listed; rejects if stopped first. */
  synced: Promise<void>;
  /** Resolves when all three have stopped (after `signal` aborts). */
  done: Promise<void>;
  /**
   * The pod from the store, else from the API; undefined when it does not exist. With `uid`
   * (the CNI's K8S_POD_UID), a stored pod of another incarnation is not the answer either.
   */
  pod(namespace: string, name: string, options?: PodLookupOptions): Promise<Pod | undefined>;
}

export interface PodLookupOptions {
  uid?: string;
  signal?: AbortSignal;
}

export function startClusterState(options: ClusterStateOptions): ClusterState {
  const pods = startInformer(POD_RESOURCE, options);
  const namespaces = startInformer(NAMESPACE_RESOURCE, options);
  const policies = startInformer(NETWORK_POLICY_RESOURCE, options);
  const synced = Promise.all([pods.synced, namespaces.synced, policies.synced]).then(() => {});
  synced.catch(() => {});
  return {
    pods,
    namespaces,
    policies,
    synced,
    done: Promise.all([pods.done, namespaces.done, policies.done]).then(() => {}),
    pod: async (namespace, name, lookup = {}) => {
      const stored = pods.store.get(`${namespace}/${name}`);
      if (stored && (!lookup.uid || stored.uid === lookup.uid)) return stored;
      return await getPod(options.client, namespace, name, lookup);
    },
  };
}

/** GETs one pod (slimmed as the store keeps it); undefined on 404. */
export async function getPod(
  client: KubeClient,
  namespace: string,
  name: string,
  options: { signal?: AbortSignal } = {},
): Promise<Pod | undefined> {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${
    encodeURIComponent(name)
  }`;
  try {
    return slimPod(await client.request("GET", path, { signal: options.signal }));
  } catch (error) {
    if (error instanceof KubeNotFoundError) return undefined;
    throw error;
  }
}
