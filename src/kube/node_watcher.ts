/**
 * Keeps the mesh's peer list equal to the cluster's Nodes: an informer over Nodes (which handles
 * relisting, resuming and backoff) and, on top, the peer list and the deleted-Node callback.
 * A Node that reappears under its name with a new uid is a deletion of the old one: the watch
 * that would have said so was lost, and the old node's space still needs reclaiming.
 */
import type { KubeClient } from "./client.ts";
import type { BackoffOptions } from "./backoff.ts";
import { type Change, startInformer } from "./informer.ts";
import { NODE_RESOURCE, type NodeSummary, PeerAddressSet } from "./nodes.ts";

export interface NodeWatcherOptions {
  client: KubeClient;
  /** This node's Node name (NODE_NAME); it is never its own peer and never reclaimed. */
  nodeName: string;
  /** Called with the full, sorted peer address list whenever it changes (and once at start). */
  onPeers: (addresses: string[]) => void | Promise<void>;
  /**
   * Called once per Node object that disappeared; `node.uid` tells incarnations apart. Events
   * wait while callbacks run, so long work (the IPAM reclaim) belongs in the background.
   */
  onNodeDeleted?: (name: string, node: NodeSummary) => void | Promise<void>;
  /**
   * Called after every successful (re)list with all Nodes, so the agent can compare the IPAM's
   * owners against the cluster and reclaim for nodes deleted while no agent was watching.
   */
  onSynced?: (nodes: NodeSummary[]) => void | Promise<void>;
  /** Failures the loop retries after; defaults to logging on stderr. */
  onError?: (error: Error) => void;
  signal?: AbortSignal;
  labelSelector?: string;
  /** Asks the server to end each watch after this long (default: random, 5 to 10 minutes). */
  watchTimeoutSeconds?: number;
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface NodeWatcher {
  /** Resolves after the first successful list has been reported through `onPeers`. */
  readonly ready: Promise<void>;
  /** Resolves when the loop has stopped (after `signal` aborts). */
  readonly done: Promise<void>;
  peers(): string[];
  nodes(): NodeSummary[];
  /** Lists done so far; a relist after expiry increments it. */
  readonly listCount: number;
}

/** Starts the list/watch loop in the background and returns at once. */
export function startNodeWatcher(options: NodeWatcherOptions): NodeWatcher {
  const { nodeName } = options;
  const informer = startInformer(NODE_RESOURCE, {
    client: options.client,
    signal: options.signal,
    labelSelector: options.labelSelector,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    idleTimeoutMs: options.idleTimeoutMs,
    backoff: options.backoff,
    sleep: options.sleep,
    onError: options.onError ??
      ((error) => console.error(`weft: node watcher: ${error.message}`)),
  });
  const peers = new PeerAddressSet();
  let published: string | undefined;
  /** The address a node adds to the peer list: none for ourselves. */
  const contribution = (node: NodeSummary | undefined) =>
    node && node.name !== nodeName ? node.address : undefined;
  const publish = async () => {
    const list = peers.list();
    if (list.join(",") === published) return;
    published = list.join(",");
    await options.onPeers(list);
  };

  informer.subscribe({
    async change(change: Change<NodeSummary>) {
      const { old, object } = change;
      peers.remove(contribution(old));
      peers.add(contribution(object));
      if (old && old.name !== nodeName && (!object || object.uid !== old.uid)) {
        await options.onNodeDeleted?.(old.name, old);
      }
      // During a list the peers are published once, when the whole list has been applied.
      if (!change.fromList) await publish();
    },
    async synced(nodes) {
      if (published === undefined) published = "\n"; // the first list always reports
      await publish();
      await options.onSynced?.(nodes);
    },
  });

  return {
    ready: informer.synced,
    done: informer.done,
    peers: () => peers.list(),
    nodes: () => informer.store.list(),
    get listCount() {
      return informer.listCount;
    },
  };
}
