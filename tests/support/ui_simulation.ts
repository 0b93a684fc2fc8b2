/**
 * A simulated cluster for the topology page: N nodes in a full mesh (as weft's discovery
 * builds one), with a few of the things the page must put first: unreachable nodes, pairs that
 * fell back to the userspace path, relayed pairs. Run as a script inside a namespace it serves
 * the real admin API (createApi) over an agent stand-in whose topology is this simulation:
 *
 *   deno run -A tests/support/ui_simulation.ts --nodes 50 --port 6784
 */
import { parseArgs } from "node:util";
import {
  type AgentPort,
  buildTopology,
  createApi,
  NotFoundError,
  type PathSummary,
  type TopologyView,
} from "../../src/api/mod.ts";

export interface SimulationOptions {
  nodes: number;
  unreachable?: number[];
  /** Pairs (indexes) that fell back to the userspace path. */
  sleeve?: Array<[number, number]>;
  podsPerNode?: number;
}

const name = (i: number) =>
  `0a:00:00:00:${Math.floor(i / 256).toString(16).padStart(2, "0")}:${
    (i % 256).toString(16).padStart(2, "0")
  }`;
const nickname = (i: number) => `node-${String(i + 1).padStart(2, "0")}`;

/** The topology node 0 would report for a simulated cluster. */
export function simulatedTopology(options: SimulationOptions): TopologyView {
  const n = options.nodes;
  const unreachable = new Set(options.unreachable ?? []);
  const sleeve = new Set((options.sleeve ?? []).map(([a, b]) => `${a}-${b}`));
  const podsPerNode = options.podsPerNode ?? 12;
  const live = (i: number) => !unreachable.has(i);
  const peers = Array.from({ length: n }, (_, i) => ({
    name: name(i),
    nickname: nickname(i),
    reachable: live(i),
    // An unreachable node's last record still lists its old connections; the live nodes'
    // records no longer list it.
    connections: Array.from({ length: n }, (_, j) => j)
      .filter((j) => j !== i && (!live(i) || live(j)))
      .map((j) => ({ peer: name(j) })),
  }));
  const paths = new Map<string, PathSummary[]>();
  for (let i = 0; i < n; i++) {
    if (!live(i)) continue;
    paths.set(
      name(i),
      Array.from({ length: n }, (_, j) => j).filter((j) => j !== i).map((j) => {
        const fellBack = sleeve.has(`${Math.min(i, j)}-${Math.max(i, j)}`);
        const path: PathSummary["path"] = !live(j) ? "down" : fellBack ? "sleeve" : "fastdp";
        return {
          peer: name(j),
          path,
          encrypted: path === "sleeve",
          healthy: live(j),
          ...(fellBack ? { fellBack: true, reason: "VXLAN heartbeats lost; using sleeve" } : {}),
        };
      }),
    );
  }
  const size = 1 << 20;
  const share = Math.floor(size / n);
  const base = (10 << 24) | (32 << 16);
  const ip = (value: number) =>
    [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
  const pods = new Map<string, Array<{ ip: string; name?: string }>>();
  for (let i = 0; i < n; i++) {
    pods.set(
      name(i),
      Array.from({ length: podsPerNode }, (_, k) => ({
        ip: ip(base + i * share + 2 + k),
        name: `default/web-${i + 1}-${k + 1}`,
      })),
    );
  }
  return buildTopology({
    now: Date.now(),
    self: name(0),
    ready: true,
    range: "10.32.0.0/12",
    problems: [],
    peers,
    paths,
    pods,
    ring: Array.from({ length: n }, (_, i) => ({
      start: ip(base + i * share),
      end: ip(base + (i + 1) * share - 1),
      size: share,
      owner: name(i),
      ...(i === 0 ? { used: podsPerNode + 1 } : {}),
    })),
    owners: Array.from({ length: n }, (_, i) => ({
      peer: name(i),
      owned: share,
      used: podsPerNode + 1,
      free: share - podsPerNode - 1,
    })),
  });
}

/** An agent stand-in that serves only the status the topology page reads. */
export function simulatedAgent(view: () => TopologyView): AgentPort {
  const unsupported = () => {
    throw new NotFoundError("Not part of the topology simulation");
  };
  return {
    status: unsupported,
    ipamStatus: unsupported,
    allocate: unsupported,
    lookup: unsupported,
    release: unsupported,
    retainOnly: unsupported,
    allocations: unsupported,
    metrics: unsupported,
    countRequest: () => {},
    topology: view,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      nodes: { type: "string", default: "50" },
      port: { type: "string", default: "6784" },
    },
  });
  const view = simulatedTopology({
    nodes: Number(values.nodes),
    unreachable: [7, 31],
    sleeve: [[0, 5], [12, 40], [3, 44]],
  });
  const app = createApi(simulatedAgent(() => ({ ...view, generatedAt: new Date().toISOString() })));
  Deno.serve({ hostname: "127.0.0.1", port: Number(values.port), onListen: () => {} }, app.fetch);
}
