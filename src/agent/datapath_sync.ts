/**
 * Keeps the data path in step with the mesh. The mesh knows who the peers are, what they
 * published about their data path (an opaque blob), how to reach them (next hop) and the key
 * each direct connection agreed; the data path knows how to move frames. This is the only
 * place that knows both.
 *
 * Reconciliation is level-based rather than event-based: every mesh event (and a slow timer,
 * for route and key changes the mesh does not announce as peer events) recomputes what the data
 * path should hold and applies only the differences. A missed or reordered event can then never
 * leave a stale forwarding entry behind; the next pass removes it.
 *
 * Our own blob is published once the data path knows its underlay address, which it may learn
 * only from the route toward a peer: each pass hands it the mesh's addresses (targets and
 * connections) and publishes the blob when it appeared or changed.
 */
import type { Datapath, Endpoint } from "../datapath/mod.ts";
import type { Mesh } from "../mesh/mod.ts";

export const DATAPATH_CHANNEL = "datapath";

export class DatapathSync {
  readonly #mesh: Mesh;
  readonly #datapath: Datapath;
  readonly #log: (message: string) => void;
  /** What was last handed to the data path per peer, to apply only changes. */
  readonly #applied = new Map<string, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #pending: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;
  /** The blob last published through the mesh. */
  #published = "";

  constructor(mesh: Mesh, datapath: Datapath, options: { log?: (message: string) => void } = {}) {
    this.#mesh = mesh;
    this.#datapath = datapath;
    this.#log = options.log ?? (() => {});
  }

  start(): void {
    for (const event of ["peer-up", "peer-down", "peer-changed", "peer-removed"] as const) {
      this.#mesh.on(event, () => this.schedule());
    }
    this.#timer = setInterval(() => this.schedule(), 1000);
    this.schedule();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#pending);
    return this.#running;
  }

  /** Publishes this node's endpoints (pods and bridge) to every peer through the mesh. */
  publishEndpoints(endpoints: Endpoint[]): void {
    this.#datapath.setLocalEndpoints(endpoints);
    this.#publishLocal();
  }

  /** Publishes our blob when there is one (the underlay is known) and it changed. */
  #publishLocal(): void {
    const data = this.#datapath.localData();
    if (!data || data === this.#published) return;
    this.#published = data;
    this.#mesh.setLocalData(DATAPATH_CHANNEL, data);
  }

  /** Coalesces bursts of events into one reconciliation pass. */
  schedule(): void {
    if (this.#stopped || this.#pending !== undefined) return;
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.#running = this.#running.then(() => this.#reconcile()).catch((error) =>
        this.#log(`data path sync failed, will retry: ${(error as Error).message}`)
      );
    }, 20);
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    await this.#datapath.setUnderlayHints?.(this.#mesh.connections().map((c) => c.address));
    const wanted = new Map<string, { data: string; nextHop?: string; sessionKey?: Uint8Array }>();
    for (const peer of this.#mesh.peers()) {
      const data = peer.data[DATAPATH_CHANNEL];
      if (peer.self || !peer.reachable || !data) continue;
      const hop = this.#mesh.nextHop(peer.name);
      wanted.set(peer.name, {
        data,
        nextHop: hop && hop !== peer.name ? hop : undefined,
        sessionKey: this.#mesh.sessionKey(peer.name),
      });
    }
    for (const name of [...this.#applied.keys()]) {
      if (!wanted.has(name)) {
        await this.#datapath.removePeer(name);
        this.#applied.delete(name);
        this.#log(`data path: removed peer ${name}`);
      }
    }
    for (const [name, peer] of wanted) {
      const key = peer.sessionKey ? [...peer.sessionKey.subarray(0, 8)].join(".") : "";
      const signature = `${peer.data}\n${peer.nextHop ?? ""}\n${key}`;
      if (this.#applied.get(name) === signature) continue;
      try {
        await this.#datapath.upsertPeer({ name, ...peer });
        this.#applied.set(name, signature);
      } catch (error) {
        this.#log(`data path: cannot add peer ${name}: ${(error as Error).message}`);
      }
    }
    this.#publishLocal();
  }
}
