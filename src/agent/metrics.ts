/**
 * The agent's Prometheus metrics. Gauges that mirror state (addresses, connections) are read at
 * scrape time from the live objects, so they can never drift from what `/status` says; only
 * request counts are counted as they happen.
 *
 * Why no client library: prom-client brought 180 KB of CommonJS (with @opentelemetry/api,
 * tdigest and bintrees) that the agent loaded, kept resident and ran through the Node
 * compatibility layer for ten families of plain numbers; it also made `deno compile` overflow
 * its stack. The text exposition format (version 0.0.4) is a few lines to write: a HELP and a
 * TYPE line per family, one line per sample, label values and help text escaped.
 */

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
  /** NetworkPolicy drop counters, read from the kernel at scrape time (absent: not enforcing). */
  policyDrops?(): Promise<[Labels, number][]> | undefined;
}

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  /** The samples at scrape time; a family without samples prints its HELP and TYPE only. */
  samples(): [Labels, number][] | Promise<[Labels, number][]>;
}

const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export class AgentMetrics {
  readonly #families: Family[];
  /** Request counts by `route\0method\0status`; routes are the API's patterns, so few. */
  readonly #requests = new Map<string, number>();

  constructor(sources: MetricSources) {
    const mesh = () => sources.mesh?.();
    const meshTotal = (name: string, help: string, pick: (m: MeshFigures) => number): Family => ({
      name,
      help,
      type: "counter",
      samples: () => {
        const figures = mesh();
        return figures ? [[{}, pick(figures)]] : [];
      },
    });
    this.#families = [
      {
        name: "weft_api_requests_total",
        help: "Admin API requests by route, method and status code.",
        type: "counter",
        samples: () =>
          [...this.#requests].map(([key, count]) => {
            const [route, method, status] = key.split("\0");
            return [{ route, method, status }, count];
          }),
      },
      {
        name: "weft_ips",
        help: "Addresses this node owns, by state (used or free).",
        type: "gauge",
        samples: () => {
          const ipam = sources.ipam();
          return [[{ state: "used" }, ipam.used], [{ state: "free" }, ipam.free]];
        },
      },
      {
        name: "weft_max_ips",
        help: "Size of the cluster pod range.",
        type: "gauge",
        samples: () => [[{}, sources.ipam().size]],
      },
      {
        name: "weft_ipam_unreachable_percentage",
        help: "Percentage of the pod range owned by peers this node cannot reach.",
        type: "gauge",
        samples: () => [[{}, sources.ipam().unreachablePercentage ?? 0]],
      },
      {
        name: "weft_ipam_pending_requests",
        help: "Space requests this node has sent and not yet had answered.",
        type: "gauge",
        samples: () => [[{}, sources.ipam().pending ?? 0]],
      },
      {
        name: "weft_connections",
        help: "Mesh connections by state.",
        type: "gauge",
        samples: () =>
          Object.entries(mesh()?.connections ?? {}).map(([state, count]) => [{ state }, count]),
      },
      meshTotal(
        "weft_connection_terminations_total",
        "Mesh connections that ended since the agent started.",
        (m) => m.terminations,
      ),
      meshTotal("weft_gossip_bytes_sent_total", "Gossip bytes sent.", (m) => m.gossipBytesSent),
      meshTotal(
        "weft_gossip_bytes_received_total",
        "Gossip bytes received.",
        (m) => m.gossipBytesReceived,
      ),
      {
        name: "weft_policy_dropped_packets_total",
        help: "Packets NetworkPolicy dropped on this node, per policy isolating the pod and " +
          'direction (a packet counts once per such policy); direction="pending": packets of ' +
          "pods not known yet.",
        type: "counter",
        samples: async () => (await sources.policyDrops?.()) ?? [],
      },
      // the process's own footprint, under the names Prometheus' client libraries use
      {
        name: "process_resident_memory_bytes",
        help: "Resident memory of the agent process (every thread, sleeve workers included).",
        type: "gauge",
        samples: () => [[{}, Deno.memoryUsage().rss]],
      },
      {
        name: "weft_heap_bytes",
        help: "The agent's main JavaScript heap: used and total, and memory held outside it.",
        type: "gauge",
        samples: () => {
          const memory = Deno.memoryUsage();
          return [
            [{ kind: "used" }, memory.heapUsed],
            [{ kind: "total" }, memory.heapTotal],
            [{ kind: "external" }, memory.external],
          ];
        },
      },
    ];
  }

  countRequest(route: string, method: string, status: number): void {
    const key = `${route}\0${method}\0${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const lines: string[] = [];
    for (const family of this.#families) {
      lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
      lines.push(`# TYPE ${family.name} ${family.type}`);
      for (const [labels, value] of await family.samples()) {
        lines.push(`${family.name}${formatLabels(labels)} ${formatValue(value)}`);
      }
    }
    return { contentType: CONTENT_TYPE, body: lines.join("\n") + "\n" };
  }
}

type MeshFigures = NonNullable<ReturnType<NonNullable<MetricSources["mesh"]>>>;

function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

/** Label values escape backslash, double quote and newline (exposition format 0.0.4). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Help text escapes backslash and newline only. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
