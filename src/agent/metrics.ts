/**
 * The agent's Prometheus metrics. Gauges that mirror state (addresses, connections) are filled
 * in a `collect` callback at scrape time from the live objects, so they can never drift from
 * what `/status` says; only request counts are counted as they happen.
 */
import { Counter, Gauge, Registry } from "prom-client";

export interface MetricSources {
  ipam(): {
    size: number;
    used: number;
    free: number;
    unreachablePercentage?: number;
    pending?: number;
  };
  mesh?(): {
    connections: Record<string, number>;
    terminations: number;
    gossipBytesSent: number;
    gossipBytesReceived: number;
  } | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<"route" | "method" | "status">;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: "weft_api_requests_total",
      help: "Admin API requests by route, method and status code.",
      labelNames: ["route", "method", "status"],
      registers,
    });
    new Gauge({
      name: "weft_ips",
      help: "Addresses this node owns, by state (used or free).",
      labelNames: ["state"],
      registers,
      collect() {
        const ipam = sources.ipam();
        this.set({ state: "used" }, ipam.used);
        this.set({ state: "free" }, ipam.free);
      },
    });
    new Gauge({
      name: "weft_max_ips",
      help: "Size of the cluster pod range.",
      registers,
      collect() {
        this.set(sources.ipam().size);
      },
    });
    new Gauge({
      name: "weft_ipam_unreachable_percentage",
      help: "Percentage of the pod range owned by peers this node cannot reach.",
      registers,
      collect() {
        this.set(sources.ipam().unreachablePercentage ?? 0);
      },
    });
    new Gauge({
      name: "weft_ipam_pending_requests",
      help: "Space requests this node has sent and not yet had answered.",
      registers,
      collect() {
        this.set(sources.ipam().pending ?? 0);
      },
    });
    new Gauge({
      name: "weft_connections",
      help: "Mesh connections by state.",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const [state, count] of Object.entries(sources.mesh?.()?.connections ?? {})) {
          this.set({ state }, count);
        }
      },
    });
    const meshCounter = (
      name: string,
      help: string,
      pick: (m: NonNullable<ReturnType<NonNullable<MetricSources["mesh"]>>>) => number,
    ) =>
      // A Counter filled at scrape time: the mesh keeps the running totals.
      new Counter({
        name,
        help,
        registers,
        collect() {
          const mesh = sources.mesh?.();
          this.reset();
          if (mesh) this.inc(pick(mesh));
        },
      });
    meshCounter(
      "weft_connection_terminations_total",
      "Mesh connections that ended since the agent started.",
      (m) => m.terminations,
    );
    meshCounter("weft_gossip_bytes_sent_total", "Gossip bytes sent.", (m) => m.gossipBytesSent);
    meshCounter(
      "weft_gossip_bytes_received_total",
      "Gossip bytes received.",
      (m) => m.gossipBytesReceived,
    );
  }

  countRequest(route: string, method: string, status: number): void {
    this.#requests.inc({ route, method, status: String(status) });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
