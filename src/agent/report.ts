/**
 * `weft report` / `GET /report`: one JSON document with everything support needs to understand
 * a node, as Weave Net's `weave report` was: the configuration, status and problems, the mesh
 * (peers, connections, targets), the IPAM (ring, allocations), the kernel state weft made
 * (links, addresses, routes, the VXLAN device's forwarding table, weft's iptables chains and
 * nft tables) and the agent's recent log lines.
 *
 * The configuration is copied field by field from a whitelist, so a secret (the password, TLS
 * material) can never reach a report, redacted or not, even when AgentConfig grows. Every
 * kernel query is allowed to fail on its own (a missing tool, a table that does not exist): its
 * error is listed and the rest of the report is still made.
 */
import type { AllocationView, ReportView, StatusView } from "../api/mod.ts";
import { formatCidr } from "../net/cidr.ts";
import { ipJson } from "../net/exec.ts";
import { FORWARD_CHAIN, listChain, NAT_CHAIN, OUTPUT_CHAIN } from "../net/iptables.ts";
import { listTable, type NftFamily } from "../net/nft.ts";
import { listFdb } from "../net/vxlan.ts";
import type { AgentConfig } from "./config.ts";
import type { LogBuffer } from "./log_buffer.ts";
import { type IdentifyingKind, redact } from "./redact.ts";
import { BRIDGE_CONTAINER_ID } from "./node_setup.ts";
import { VERSION } from "../version.ts";

/** The nft tables weft owns (CONTRACTS #4; the data path's guard also has a bridge table). */
const NFT_TABLES: Array<[NftFamily, string]> = [
  ["inet", "weft-underlay"],
  ["bridge", "weft-underlay"],
  ["inet", "weft-policy"],
];

export interface ReportSources {
  config: AgentConfig;
  status(): StatusView;
  peers(): Array<{ name?: string; nickname?: string }>;
  connections(): unknown[];
  targets(): string[];
  ring(): unknown;
  allocations(): AllocationView[];
  logs: LogBuffer;
  /** False when the agent runs without kernel work (tests): no kernel section then. */
  kernel: boolean;
}

export async function buildReport(
  sources: ReportSources,
  options: { redact: boolean },
): Promise<ReportView> {
  const { config } = sources;
  const status = sources.status();
  const peers = sources.peers();
  const allocations = sources.allocations();
  const logs = sources.logs.read();
  const report: ReportView = {
    weft: {
      version: VERSION,
      generatedAt: new Date().toISOString(),
      redacted: options.redact,
      hostname: hostname(),
    },
    config: reportConfig(config),
    status,
    peers,
    connections: sources.connections(),
    targets: sources.targets(),
    ring: sources.ring(),
    allocations,
    kernel: sources.kernel
      ? await kernelState({ bridge: config.bridge })
      : { skipped: "this agent runs without kernel work" },
    logs: logs.lines,
    logsDropped: logs.dropped,
  };
  if (!options.redact) return report;
  const known: Array<{ kind: IdentifyingKind; value: string | undefined }> = [
    { kind: "peer", value: status.peerName },
    { kind: "node", value: status.nickname },
    { kind: "node", value: config.nodeName },
    { kind: "host", value: report.weft.hostname },
    { kind: "path", value: config.stateDir },
    { kind: "path", value: config.kubeconfig },
    ...peers.flatMap((p) => [
      { kind: "peer" as const, value: p.name },
      { kind: "node" as const, value: p.nickname },
    ]),
    ...(status.ipam.peers ?? []).flatMap((p) => [
      { kind: "peer" as const, value: p.peer },
      { kind: "node" as const, value: p.nickname },
    ]),
    // host names in --peers (addresses are replaced like every other address)
    ...config.peers.map((p) => p.replace(/:\d+$/, "")).filter((host) => !/^[\d.]+$|:/.test(host))
      .map((host) => ({ kind: "host" as const, value: host })),
    ...allocations.filter((a) => a.containerID !== BRIDGE_CONTAINER_ID)
      .map((a) => ({ kind: "container" as const, value: a.containerID })),
  ];
  return redact(report, {
    podRange: config.ipallocRange,
    known: known.filter((k): k is { kind: IdentifyingKind; value: string } => Boolean(k.value)),
  });
}

/** The configuration without anything secret: a whitelist, never a copy with fields deleted. */
export function reportConfig(config: AgentConfig): Record<string, unknown> {
  return {
    bridge: config.bridge,
    ipallocRange: formatCidr(config.ipallocRange),
    ipallocInit: config.ipallocInit ?? "from the Kubernetes Node list",
    apiAddr: `${config.apiAddr.hostname}:${config.apiAddr.port}`,
    stateDir: config.stateDir,
    mtu: config.mtu ?? "detected",
    nickname: config.nickname,
    peerName: config.peerName ?? "from the machine id",
    password: config.password ? "set (not shown)" : "none",
    encrypt: config.encrypt,
    peers: config.peers,
    port: config.port,
    meshHost: config.meshHost,
    discovery: config.discovery,
    connLimit: config.connLimit,
    tls: config.tls ? "serving the mesh over TLS (certificate and key not shown)" : "off",
    tlsCa: config.tlsCa ? "extra CA given (not shown)" : "none",
    vxlanPort: config.vxlanPort,
    sleevePort: config.sleevePort,
    datapathMode: config.datapathMode,
    ipamReclaimAfterMs: config.ipamReclaimAfterMs,
    kubernetes: config.kubernetes,
    nodeName: config.nodeName,
    kubeconfig: config.kubeconfig,
    reclaimConfigMap: config.reclaimConfigMap,
    networkPolicy: config.networkPolicy,
    policyLogRate: config.policyLogRate ?? "off",
  };
}

interface LinkJson {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

/** What weft made in the kernel, and the surroundings it depends on; errors listed, not thrown. */
export async function kernelState(options: { bridge: string }): Promise<Record<string, unknown>> {
  const errors: string[] = [];
  const attempt = async <T>(what: string, query: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await query();
    } catch (error) {
      errors.push(`${what}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const [links, addresses, routes, iptables, nft] = await Promise.all([
    attempt("links", () => ipJson<LinkJson>(["-d", "link", "show"])),
    attempt("addresses", () => ipJson(["addr", "show"])),
    attempt("routes", () => ipJson(["route", "show"])),
    attempt("iptables", weftIptables),
    Promise.all(
      NFT_TABLES.map(async ([family, table]) => [
        `${family} ${table}`,
        (await attempt(`nft ${family} ${table}`, () => listTable(family, table))) ?? null,
      ]),
    ),
  ]);
  // the forwarding table of every VXLAN device on the bridge: which MAC lives behind which peer
  const vxlans = (links ?? []).filter((l) =>
    l.linkinfo?.info_kind === "vxlan" && l.master === options.bridge
  );
  const fdb = Object.fromEntries(
    await Promise.all(
      vxlans.map(async (
        l,
      ) => [l.ifname, await attempt(`fdb ${l.ifname}`, () => listFdb(l.ifname))]),
    ),
  );
  return { links, addresses, routes, fdb, iptables, nft: Object.fromEntries(nft), errors };
}

/** weft's own iptables chains, and the jumps into them from the built-in chains. */
async function weftIptables(): Promise<Record<string, string[]>> {
  const own: Array<[string, string]> = [
    ["nat", NAT_CHAIN],
    ["filter", FORWARD_CHAIN],
    ["filter", OUTPUT_CHAIN],
  ];
  const builtIn: Array<[string, string]> = [
    ["nat", "POSTROUTING"],
    ["filter", "FORWARD"],
    ["filter", "OUTPUT"],
  ];
  const result: Record<string, string[]> = {};
  for (const [table, chain] of own) result[`${table} ${chain}`] = await listChain(table, chain);
  for (const [table, chain] of builtIn) {
    const jumps = (await listChain(table, chain)).filter((rule) => /-j WEFT/.test(rule));
    result[`${table} ${chain}`] = jumps;
  }
  return result;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}
