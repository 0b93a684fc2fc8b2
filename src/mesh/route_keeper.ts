/**
 * Routes, recomputed from the gossiped graph at most every `routeDelayMs` (a burst of changes
 * costs one computation), or at once when someone needs them. Each recomputation also updates
 * every peer's reachability and reports the peers that came up or went down.
 */
import type { Clock, TimerId } from "./clock.ts";
import { computeRoutes, type RouteTable } from "./routes.ts";
import type { Topology } from "./topology.ts";

export interface RouteKeeperOptions {
  name: string;
  clock: Clock;
  routeDelayMs: number;
  topology: Topology;
  /** Directly connected peers count as reachable even before the graph shows the edge. */
  connected(peer: string): boolean;
  stopped(): boolean;
  reachabilityChanged(peer: string, reachable: boolean): void;
}

export class RouteKeeper {
  #options: RouteKeeperOptions;
  #routes: RouteTable = { nextHop: new Map(), reachable: new Set(), treeNeighbors: new Set() };
  #dirty = false;
  #timer?: TimerId;

  constructor(options: RouteKeeperOptions) {
    this.#options = options;
  }

  /** The table last computed, possibly behind the graph by up to `routeDelayMs`. */
  get last(): RouteTable {
    return this.#routes;
  }

  /** The table for the graph as it is now. */
  current(): RouteTable {
    this.refreshIfDirty();
    return this.#routes;
  }

  stop(): void {
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
  }

  markDirty(): void {
    if (this.#dirty || this.#options.stopped()) return;
    this.#dirty = true;
    this.#timer = this.#options.clock.setTimeout(
      () => this.refreshIfDirty(),
      this.#options.routeDelayMs,
    );
  }

  refreshIfDirty(): void {
    if (!this.#dirty) return;
    const { name, clock, topology } = this.#options;
    this.#dirty = false;
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#routes = computeRoutes(name, topology.records);
    const now = clock.now();
    for (const [peer, meta] of topology.metas()) {
      if (peer === name) continue;
      const reachable = this.#routes.reachable.has(peer) || this.#options.connected(peer);
      if (reachable === meta.reachable) continue;
      meta.reachable = reachable;
      meta.unreachableSince = reachable ? undefined : now;
      if (reachable) meta.lastSeen = now;
      this.#options.reachabilityChanged(peer, reachable);
    }
  }
}
