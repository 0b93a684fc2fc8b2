/**
 * weft's link to Kubernetes: where the API is, a small fetch-based client, a generic list+watch
 * informer with indexed stores, and what the agent builds on it: the Node watcher that turns
 * Nodes into mesh peers, the once-only reclaim of a deleted node's address space, the
 * NetworkUnavailable condition, and the cluster state NetworkPolicy needs (Pods, Namespaces,
 * NetworkPolicies). Only the agent imports this folder; the CNI plugin never does, so none of it
 * is on the plugin's start-up path. The in-memory API server for tests lives in tests/support.
 *
 * Name mapping: the Kubernetes Node name is the agent's mesh nickname (NODE_NAME), so the agent
 * turns a deleted Node name into the weft peer whose nickname it is before reclaiming its space.
 */
export {
  type KubeConfig,
  KubeConfigError,
  loadKubeConfig,
  type LoadKubeConfigOptions,
  SERVICE_ACCOUNT_DIR,
} from "./config.ts";
export {
  KubeClient,
  type KubeClientOptions,
  type KubeRequestOptions,
  type KubeWatchOptions,
  type WatchEvent,
} from "./client.ts";
export {
  KubeApiError,
  KubeConflictError,
  KubeConnectionError,
  KubeForbiddenError,
  KubeGoneError,
  KubeNotFoundError,
  KubeUnauthorizedError,
} from "./errors.ts";
export {
  type IndexFunction,
  type KubeObjectRef,
  labelPair,
  objectKey,
  type ReadonlyStore,
  Store,
} from "./store.ts";
export {
  type Change,
  type Informer,
  type InformerListener,
  type InformerOptions,
  type RawObject,
  type ResourceType,
  startInformer,
} from "./informer.ts";
export {
  type LabelSelector,
  type NamedPort,
  type Namespace,
  NAMESPACE_RESOURCE,
  type NamespaceIndex,
  NETWORK_POLICY_RESOURCE,
  type NetworkPolicy,
  type NetworkPolicyIndex,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
  type NetworkPolicySpec,
  type Pod,
  POD_RESOURCE,
  type PodIndex,
  slimPod,
} from "./cluster_objects.ts";
export {
  type ClusterState,
  type ClusterStateOptions,
  getPod,
  type PodLookupOptions,
  startClusterState,
} from "./cluster_state.ts";
export {
  type KubeNode,
  NODE_RESOURCE,
  nodeAddress,
  type NodeSummary,
  peerAddresses,
} from "./nodes.ts";
export { type NodeWatcher, type NodeWatcherOptions, startNodeWatcher } from "./node_watcher.ts";
export {
  claimReclaim,
  type ClaimReclaimOptions,
  ReclaimClaimError,
  reclaimKey,
  RECLAIMS_CONFIGMAP,
  RECLAIMS_NAMESPACE,
} from "./reclaim.ts";
export { networkAvailablePatch, setNetworkAvailable } from "./node_status.ts";
export {
  type KubeIntegration,
  type KubeIntegrationOptions,
  startKubeIntegration,
} from "./integration.ts";
