/**
 * The agent on Kubernetes: Nodes are the peer list. Every other Node's address becomes a mesh
 * target (and a deleted Node's address is forgotten); a deleted Node's IPAM space is reclaimed
 * by exactly one agent, the one whose claim lands in the API's optimistic concurrency (and
 * retried with backoff until it is done: a failed reclaim is thrown back to the integration,
 * never swallowed); and the node's NetworkUnavailable condition is cleared once this agent
 * carries pod traffic.
 */
import {
  KubeClient,
  type KubeIntegration,
  loadKubeConfig,
  type NodeSummary,
  startKubeIntegration,
} from "../kube/mod.ts";
import type { Mesh } from "../mesh/mod.ts";
import type { AgentConfig } from "./config.ts";
import { ConfigError } from "./config.ts";

export interface KubernetesWiring {
  config: AgentConfig;
  mesh: Pick<Mesh, "connect" | "forget">;
  signal: AbortSignal;
  /** Resolves when the node is up (bridge, data path): then NetworkUnavailable=False. */
  ready: Promise<void>;
  log: (message: string) => void;
  /** Set when the IPAM waits for the Node count to agree its first split. */
  openIpam?: (peers: number) => Promise<void>;
  /**
   * Removes the peer whose nickname is this Node's name from the IPAM ring; resolves when done
   * or when there is nothing to do, rejects when it should be tried again.
   */
  reclaim: (nodeName: string, options: { nodeExists: () => boolean }) => Promise<void>;
}

export async function startKubernetes(wiring: KubernetesWiring): Promise<KubeIntegration> {
  const { config, mesh, log } = wiring;
  if (!config.nodeName) {
    throw new ConfigError(
      "On Kubernetes the agent needs its Node name: set NODE_NAME or --node-name",
    );
  }
  const client = new KubeClient(await loadKubeConfig({ kubeconfig: config.kubeconfig }));
  wiring.signal.addEventListener("abort", () => client.close(), { once: true });
  let targets = new Set<string>();
  let ipamOpened = !wiring.openIpam;
  const integration = startKubeIntegration({
    client,
    nodeName: config.nodeName,
    signal: wiring.signal,
    ready: wiring.ready,
    reclaimConfigMap: config.reclaimConfigMap,
    onPeers: (addresses) => {
      const next = new Set(addresses);
      for (const address of next) if (!targets.has(address)) mesh.connect(address);
      for (const address of targets) if (!next.has(address)) mesh.forget(address);
      targets = next;
    },
    onSynced: async (nodes: NodeSummary[]) => {
      if (ipamOpened) return;
      ipamOpened = true;
      log(`kubernetes: ${nodes.length} Nodes; agreeing the IPAM's first split among them`);
      await wiring.openIpam!(nodes.length);
    },
    reclaim: async (nodeName) => {
      log(`kubernetes: Node ${nodeName} was deleted; reclaiming its address space`);
      // a failure goes back to the integration, which retries (with backoff) until it is done
      await wiring.reclaim(nodeName, {
        nodeExists: () => integration.watcher.nodes().some((node) => node.name === nodeName),
      });
    },
    onError: (error) => log(`kubernetes: ${error.message}`),
  });
  integration.networkAvailable.then((done) => {
    if (done) log("kubernetes: node condition NetworkUnavailable=False set");
  });
  return integration;
}
