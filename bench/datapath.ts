/**
 * Data path benchmark: single-stream TCP (iperf3) and ping p50 from a pod on one lab node to a
 * pod on another, for weft's fast path, sleeve and encrypted sleeve, side by side with
 * baselines built in the same run with plain `ip` commands: a veth pair (the limit) and the
 * same topology weft builds, made by hand (pod veth, bridge, kernel VXLAN, underlay, ...).
 * Also pod to pod within one node against veth-bridge-veth.
 *
 *   deno run -A bench/datapath.ts [--seconds 3]
 *
 * Everything lives in namespaces named `wtdx*` and is removed at the end (and at the start).
 */
import { run } from "../src/net/exec.ts";
import { Lab, ping, sweepLab, tcpTransfer } from "../tests/support/datapath_lab.ts";

const PREFIX = "wtdx";
const secondsIndex = Deno.args.indexOf("--seconds");
const SECONDS = secondsIndex >= 0 ? Number(Deno.args[secondsIndex + 1]) : 3;

interface Row {
  name: string;
  gbits: number;
  p50: number;
  baseline?: string;
}

async function sh(command: string[]): Promise<void> {
  await run(command);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

async function measure(lab: Lab, from: string, to: string, toIp: string) {
  const pinged = await ping(lab, from, toIp, { count: 30 });
  const transfer = await tcpTransfer(lab, { from, to, toIp }, ["-t", String(SECONDS)]);
  if (!transfer.ok) throw new Error(`iperf3 ${from} -> ${toIp} failed: ${transfer.error}`);
  return { gbits: transfer.bitsPerSecond / 1e9, p50: median(pinged.rtts) };
}

/** Two namespaces joined by one veth pair: nothing between the two TCP stacks. */
async function vethPair(lab: Lab): Promise<Row> {
  const a = `${PREFIX}va`, b = `${PREFIX}vb`;
  await sh(["ip", "netns", "add", a]);
  await sh(["ip", "netns", "add", b]);
  await sh([
    "ip",
    "-n",
    a,
    "link",
    "add",
    "eth0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    b,
  ]);
  for (const [ns, ip] of [[a, "10.99.0.1/24"], [b, "10.99.0.2/24"]]) {
    await sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await sh(["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"]);
    await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
  }
  return { name: "veth pair (limit)", ...await measure(lab, a, b, "10.99.0.2") };
}

/** Two pods on one bridge in one namespace, the same-node baseline. */
async function vethBridgeVeth(lab: Lab): Promise<Row> {
  const host = `${PREFIX}bh`;
  await sh(["ip", "netns", "add", host]);
  await sh(["ip", "-n", host, "link", "add", "hbr", "type", "bridge"]);
  await sh(["ip", "-n", host, "link", "set", "hbr", "up"]);
  for (const k of [1, 2]) {
    const pod = `${PREFIX}bp${k}`;
    await sh(["ip", "netns", "add", pod]);
    await sh(["ip", "-n", pod, "link", "set", "lo", "up"]);
    await sh([
      "ip",
      "-n",
      pod,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      `p${k}`,
      "netns",
      host,
    ]);
    await sh(["ip", "-n", pod, "addr", "add", `10.98.0.${k}/24`, "dev", "eth0"]);
    await sh(["ip", "-n", pod, "link", "set", "eth0", "up"]);
    await sh(["ip", "-n", host, "link", "set", `p${k}`, "master", "hbr", "up"]);
  }
  return {
    name: "veth-bridge-veth (same node)",
    ...await measure(lab, `${PREFIX}bp1`, `${PREFIX}bp2`, "10.98.0.2"),
  };
}

/** The fast-path topology made by hand: bridge + kernel VXLAN per node, flood entries. */
async function handMadeVxlan(): Promise<Row> {
  const lab = await Lab.create(`${PREFIX}h`, { nodes: 2 });
  try {
    for (const node of lab.nodes) {
      const other = lab.nodes.find((n) => n !== node)!;
      const ns = node.name;
      await sh([
        "ip",
        "-n",
        ns,
        "link",
        "add",
        "vx",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        lab.nodeUnderlayIp(node.index),
        "dev",
        "eth0",
      ]);
      await sh(["ip", "-n", ns, "link", "set", "vx", "mtu", "1450", "master", "weave", "up"]);
      await sh([
        "bridge",
        "-n",
        ns,
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx",
        "dst",
        lab.nodeUnderlayIp(other.index),
      ]);
      await lab.setPodMtu(node.index, 1450);
    }
    return {
      name: "hand-made bridge+VXLAN",
      ...await measure(lab, lab.podNs(1, 1), lab.podNs(2, 1), lab.podIp(2, 1)),
    };
  } finally {
    await lab.destroy();
  }
}

async function weft(
  name: string,
  options: { mode: "auto" | "sleeve"; keys?: boolean; sameNode?: boolean },
): Promise<Row> {
  const lab = await Lab.create(`${PREFIX}w`, { nodes: 2, podsPerNode: options.sameNode ? 2 : 1 });
  try {
    await lab.startNodes({ mode: options.mode });
    await lab.introduce({ keys: options.keys ? (a, b) => `${a}${b}`.repeat(32) : undefined });
    const want = options.keys || options.mode === "sleeve" ? "sleeve" : "fastdp";
    const status = await lab.waitFor(() => lab.pathTo(1, 2), (s) => s?.path === want);
    if (status?.path !== want) throw new Error(`${name}: path is ${JSON.stringify(status)}`);
    const to = options.sameNode ? 1 : 2;
    const k = options.sameNode ? 2 : 1;
    return { name, ...await measure(lab, lab.podNs(1, 1), lab.podNs(to, k), lab.podIp(to, k)) };
  } finally {
    await lab.destroy();
  }
}

await sweepLab(PREFIX);
const rows: Row[] = [];
const scratch = await Lab.create(`${PREFIX}s`, { nodes: 1, podsPerNode: 0 });
try {
  rows.push(await vethPair(scratch));
  rows.push(await vethBridgeVeth(scratch));
  rows.push(await handMadeVxlan());
  rows.push({ ...await weft("weft fastdp", { mode: "auto" }), baseline: "hand-made bridge+VXLAN" });
  rows.push({
    ...await weft("weft sleeve", { mode: "sleeve" }),
    baseline: "hand-made bridge+VXLAN",
  });
  rows.push({
    ...await weft("weft sleeve encrypted", { mode: "sleeve", keys: true }),
    baseline: "hand-made bridge+VXLAN",
  });
  rows.push({
    ...await weft("weft same node", { mode: "auto", sameNode: true }),
    baseline: "veth-bridge-veth (same node)",
  });
} finally {
  await scratch.destroy();
  await sweepLab(PREFIX);
}

const byName = new Map(rows.map((r) => [r.name, r]));
const lines = [
  `single-stream TCP, iperf3 -t ${SECONDS}; ping p50 of 30; ${navigator.hardwareConcurrency} cores`,
  "| path | Gbit/s | ratio | vs | ping p50 ms |",
  "| --- | ---: | ---: | --- | ---: |",
];
for (const row of rows) {
  const base = row.baseline ? byName.get(row.baseline) : undefined;
  const ratio = base ? (row.gbits / base.gbits).toFixed(2) : "";
  lines.push(
    `| ${row.name} | ${row.gbits.toFixed(2)} | ${ratio} | ${row.baseline ?? ""} | ${
      row.p50.toFixed(3)
    } |`,
  );
}
console.log(lines.join("\n"));
