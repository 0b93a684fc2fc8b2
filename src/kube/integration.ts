/**
 * The whole Kubernetes side of an agent in one call, so the composition root wires callbacks
 * instead of re-deriving the protocol: peers from the Node watcher, the once-only reclaim of a
 * deleted node's space (claimed through the ConfigMap, run only by the winner, off the watch
 * loop), and NetworkUnavailable=False once the agent says it is ready, retried until it lands.
 */
import type { KubeClient } from "./client.ts";
import { backoffDelay, type BackoffOptions, sleep as abortableSleep } from "./backoff.ts";
import { type NodeWatcher, startNodeWatcher } from "./node_watcher.ts";
import type { NodeSummary } from "./nodes.ts";
import { claimReclaim } from "./reclaim.ts";
import { setNetworkAvailable } from "./node_status.ts";

export interface KubeIntegrationOptions {
  client: KubeClient;
  /** This node's Node name, which is also its mesh nickname. */
  nodeName: string;
  /** The other nodes' addresses: connect to new ones, forget those gone. */
  onPeers: (addresses: string[]) => void | Promise<void>;
  /**
   * Runs on exactly one agent per deleted Node: give the space owned by the peer whose
   * nickname is `nodeName` back to the ring. Must be idempotent (a crash may repeat it).
   */
  reclaim: (nodeName: string, node: NodeSummary) => Promise<void>;
  /**
   * After every (re)list, all Nodes: lets the agent find IPAM owners whose Node vanished while
   * no agent was watching (then it may call `claimReclaim` itself for them).
   */
  onSynced?: (nodes: NodeSummary[]) => void | Promise<void>;
  /** The claim ledger; a Weave Net RBAC (which allows only `weave-net`) needs that name here. */
  reclaimConfigMap?: string;
  /** Resolves when this agent can carry pod traffic; then NetworkUnavailable is cleared. */
  ready: Promise<void>;
  onError?: (error: Error) => void;
  signal?: AbortSignal;
  backoff?: BackoffOptions;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface KubeIntegration {
  watcher: NodeWatcher;
  /** True once the node condition has been set; false when stopped first. */
  networkAvailable: Promise<boolean>;
  /** Resolves when the watcher and every reclaim it started have finished after `signal`. */
  done: Promise<void>;
}

export function startKubeIntegration(options: KubeIntegrationOptions): KubeIntegration {
  const { client, nodeName, signal } = options;
  const sleep = options.sleep ?? abortableSleep;
  const report = options.onError ??
    ((error: Error) => console.error(`weft: kubernetes: ${error.message}`));
  const pending = new Set<Promise<void>>();

  const reclaimOnce = async (name: string, node: NodeSummary) => {
    for (let attempt = 0; !signal?.aborted; attempt++) {
      try {
        const won = await claimReclaim(client, name, {
          claimant: nodeName,
          uid: node.uid || undefined,
          configMapName: options.reclaimConfigMap,
          now: options.now,
          signal,
        });
        if (won) await options.reclaim(name, node);
        return;
      } catch (error) {
        if (signal?.aborted) return;
        report(error as Error);
        await sleep(backoffDelay(attempt, options.backoff), signal);
      }
    }
  };

  const watcher = startNodeWatcher({
    client,
    nodeName,
    signal,
    onPeers: options.onPeers,
    onSynced: options.onSynced,
    onNodeDeleted: (name, node) => {
      const job = reclaimOnce(name, node).finally(() => pending.delete(job));
      pending.add(job);
    },
    onError: report,
    backoff: options.backoff,
    sleep,
  });

  const stopped = new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
  const networkAvailable = (async () => {
    await Promise.race([options.ready, stopped]);
    for (let attempt = 0; !signal?.aborted; attempt++) {
      try {
        await setNetworkAvailable(client, nodeName, { now: options.now, signal });
        return true;
      } catch (error) {
        if (signal?.aborted) break;
        report(error as Error);
        await sleep(backoffDelay(attempt, options.backoff), signal);
      }
    }
    return false;
  })();
  // A failed start (ready rejecting) is the agent's to report; keep it from going unhandled.
  networkAvailable.catch(() => {});

  const done = (async () => {
    await watcher.done;
    while (pending.size) await Promise.all([...pending]);
  })();
  return { watcher, networkAvailable, done };
}
