/**
 * weft's link to Kubernetes: where the API is, a small fetch-based client, the Node watcher
 * that turns Nodes into mesh peers, the once-only reclaim of a deleted node's address space,
 * and the NetworkUnavailable condition. Only the agent imports this folder; the CNI plugin never
 * does, so none of it is on the plugin's start-up path.
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
export { type KubeNode, nodeAddress, type NodeSummary, peerAddresses } from "./nodes.ts";
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
export { FakeKubeApi, type FakeNodeSpec } from "./fake_api.ts";
