/**
 * Keeps the mesh's peer list equal to the cluster's Nodes. The usual list-then-watch loop:
 * list to get a consistent snapshot and its resourceVersion, watch from there, and on 410 Gone
 * (history compacted) or a broken stream (API server restarted) list again and diff against what
 * we knew, so a deletion that happened while we were not watching is still reported once.
 */
import type { KubeClient } from "./client.ts";
import { backoffDelay, type BackoffOptions, sleep as abortableSleep } from "./backoff.ts";
import { KubeGoneError } from "./errors.ts";
import {
  type KubeNode,
  type KubeNodeList,
  type NodeSummary,
  PeerAddressSet,
  summarizeNode,
  vanishedNodes,
} from "./nodes.ts";

const NODES_PATH = "/api/v1/nodes";

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
  /** Lists done so far; a relist after expiry or a broken stream increments it. */
  readonly listCount: number;
}

/** Starts the list/watch loop in the background and returns at once. */
export function startNodeWatcher(options: NodeWatcherOptions): NodeWatcher {
  const state = new NodeWatcherLoop(options);
  const done = state.run();
  return {
    ready: state.ready,
    done,
    peers: () => state.peers.list(),
    nodes: () => [...state.known.values()],
    get listCount() {
      return state.listCount;
    },
  };
}

class NodeWatcherLoop {
  readonly ready: Promise<void>;
  known = new Map<string, NodeSummary>();
  peers = new PeerAddressSet();
  listCount = 0;
  readonly #options: NodeWatcherOptions;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #markReady!: () => void;
  #failReady!: (error: unknown) => void;
  #resourceVersion?: string;

  constructor(options: NodeWatcherOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? abortableSleep;
    this.ready = new Promise((resolve, reject) => {
      this.#markReady = resolve;
      this.#failReady = reject;
    });
    // Nobody is obliged to await `ready`; an unobserved rejection must not kill the process.
    this.ready.catch(() => {});
  }

  async run(): Promise<void> {
    const { signal } = this.#options;
    let failures = 0;
    let goneStreak = 0;
    while (!signal?.aborted) {
      let events = 0;
      try {
        if (this.#resourceVersion === undefined) await this.#relist();
        const timeoutSeconds = this.#watchTimeoutSeconds();
        const stream = this.#options.client.watch<KubeNode>(NODES_PATH, {
          query: {
            resourceVersion: this.#resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds,
            labelSelector: this.#options.labelSelector,
          },
          signal,
          // The server closes the watch after timeoutSeconds; silence well past that means the
          // connection is dead even though TCP has not noticed.
          idleTimeoutMs: this.#options.idleTimeoutMs ?? (timeoutSeconds + 60) * 1000,
        });
        for await (const event of stream) {
          events++;
          failures = 0;
          goneStreak = 0;
          await this.#apply(event.type, event.object);
        }
        // The server ended the watch (timeoutSeconds): resume from where we are. An empty
        // stream still counts as a failure so a server that hangs up at once is not spun on.
        if (events === 0 && !signal?.aborted) {
          await this.#sleep(backoffDelay(failures++, this.#options.backoff), signal);
        }
      } catch (error) {
        if (signal?.aborted) break;
        this.#resourceVersion = undefined;
        if (error instanceof KubeGoneError && goneStreak++ === 0) continue; // relist at once
        this.#report(error as Error);
        await this.#sleep(backoffDelay(failures++, this.#options.backoff), signal);
      }
    }
    this.#failReady(new DOMException("Node watcher stopped before its first list", "AbortError"));
  }

  /** 5 to 10 minutes, spread so agents do not all re-watch at the same moment. */
  #watchTimeoutSeconds(): number {
    if (this.#options.watchTimeoutSeconds !== undefined) return this.#options.watchTimeoutSeconds;
    const random = this.#options.backoff?.random ?? Math.random;
    return 300 + Math.floor(random() * 300);
  }

  async #relist(): Promise<void> {
    const list = await this.#options.client.request<KubeNodeList>("GET", NODES_PATH, {
      query: { labelSelector: this.#options.labelSelector },
      signal: this.#options.signal,
    });
    this.listCount++;
    const next = new Map(list.items.map((node) => [node.metadata.name, summarizeNode(node)]));
    const vanished = vanishedNodes(this.known, next);
    const before = this.peers.list();
    this.known = next;
    this.peers = new PeerAddressSet();
    for (const node of next.values()) this.peers.add(this.#contribution(node));
    for (const node of vanished) await this.#deleted(node);
    const after = this.peers.list();
    if (this.listCount === 1 || after.join(",") !== before.join(",")) await this.#publishPeers();
    this.#resourceVersion = list.metadata.resourceVersion ?? "";
    await this.#callback(() => this.#options.onSynced?.([...next.values()]));
    this.#markReady();
  }

  async #apply(type: string, node: KubeNode): Promise<void> {
    const version = node.metadata?.resourceVersion;
    if (version) this.#resourceVersion = version;
    if (type === "BOOKMARK") return;
    const summary = summarizeNode(node);
    const previous = this.known.get(summary.name);
    let changed: boolean;
    if (type === "DELETED") {
      if (!previous || previous.uid !== summary.uid) return; // an old incarnation, reported
      this.known.delete(summary.name);
      changed = this.peers.remove(this.#contribution(previous));
      await this.#deleted(previous);
    } else {
      this.known.set(summary.name, summary);
      // Kubelets rewrite their Node status every few seconds; in a big cluster that is a steady
      // stream of MODIFIED events, and one that changes nothing weft uses must cost nothing.
      if (previous?.uid === summary.uid && previous.address === summary.address) return;
      const removed = this.peers.remove(this.#contribution(previous));
      changed = this.peers.add(this.#contribution(summary)) || removed;
      // A DELETED we missed shows up as a new uid under an old name.
      if (previous && previous.uid !== summary.uid) await this.#deleted(previous);
    }
    if (changed) await this.#publishPeers();
  }

  /** The address a node adds to the peer list: none for ourselves. */
  #contribution(node: NodeSummary | undefined): string | undefined {
    return node && node.name !== this.#options.nodeName ? node.address : undefined;
  }

  async #deleted(node: NodeSummary): Promise<void> {
    if (node.name === this.#options.nodeName) return;
    await this.#callback(() => this.#options.onNodeDeleted?.(node.name, node));
  }

  async #publishPeers(): Promise<void> {
    const peers = this.peers.list();
    await this.#callback(() => this.#options.onPeers(peers));
  }

  /** A throwing callback is the agent's bug, not the API's: report it and keep watching. */
  async #callback(call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.#report(error as Error);
    }
  }

  #report(error: Error): void {
    if (this.#options.onError) this.#options.onError(error);
    else console.error(`weft: node watcher: ${error.message}`);
  }
}
