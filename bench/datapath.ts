/**
 * Data path benchmark: single-stream TCP (iperf3) and ping p50 from a pod on one lab node to a
 * pod on another, for weft's fast path, sleeve and encrypted sleeve, side by side with
 * baselines built in the same run with plain `ip` commands: a veth pair (the limit) and the
 * same topology weft builds, made by hand (pod veth, bridge, kernel VXLAN, underlay, ...).
 * Also pod to pod within one node against veth-bridge-veth.
 *
 * weft's nodes are set up as the agent sets up a node: its iptables chains, br_netfilter on,
 * the data path's guard (nft). A second table gives what each of those costs, from labs that
 * differ in that one thing only: the guard's source checks on the fast path (with and without
 * the nft tables), per-frame integrity on the userspace path (sealed and plain), and
 * br_netfilter (bridge-nf-call-iptables on and off) across nodes and within one.
 *
 *   deno run -A bench/datapath.ts [--seconds 3] [--rounds 3]
 *
 * All setups are built first and then measured in interleaved rounds (A B C ... A B C), best
 * of the rounds reported: the machine is shared, and interleaving keeps a burst of someone
 * else's load from landing on one setup only. Everything lives in namespaces named `wtdx*` and
 * is removed at the end (and at the start).
 */
import { addNamespace, addVeth } from "../tests/support/netns.ts";
import { run } from "../src/net/exec.ts";
import { Lab, ping, sweepLab, tcpTransfer } from "../tests/support/datapath_lab.ts";

const PREFIX = "wtdx";
const secondsIndex = Deno.args.indexOf("--seconds");
const SECONDS = secondsIndex >= 0 ? Number(Deno.args[secondsIndex + 1]) : 3;
const roundsIndex = Deno.args.indexOf("--rounds");
const ROUNDS = roundsIndex >= 0 ? Number(Deno.args[roundsIndex + 1]) : 3;

interface Setup {
  name: string;
  baseline?: string;
  lab: Lab;
  from: string;
  to: string;
  toIp: string;
}

interface Row {
  name: string;
  baseline?: string;
  gbits: number;
  p50: number;
}

async function sh(command: string[]): Promise<void> {
  await run(command);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

/** Two namespaces joined by one veth pair: nothing between the two TCP stacks. */
async function vethPair(lab: Lab): Promise<Setup> {
  const a = `${lab.prefix}va`, b = `${lab.prefix}vb`;
  await addNamespace(a);
  await addNamespace(b);
  await addVeth({ netns: a, name: "eth0" }, { netns: b, name: "eth0" });
  for (const [ns, ip] of [[a, "10.99.0.1/24"], [b, "10.99.0.2/24"]]) {
    await sh(["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"]);
  }
  return { name: "veth pair (limit)", lab, from: a, to: b, toIp: "10.99.0.2" };
}

/** Two pods on one bridge in one namespace, the same-node baseline. */
async function vethBridgeVeth(lab: Lab): Promise<Setup> {
  const host = `${lab.prefix}bh`;
  await addNamespace(host);
  await sh(["ip", "-n", host, "link", "add", "hbr", "type", "bridge"]);
  await sh(["ip", "-n", host, "link", "set", "hbr", "up"]);
  for (const k of [1, 2]) {
    const pod = `${lab.prefix}bp${k}`;
    await addNamespace(pod);
    await addVeth({ netns: pod, name: "eth0" }, { netns: host, name: `p${k}` }, { bridgeB: "hbr" });
    await sh(["ip", "-n", pod, "addr", "add", `10.98.0.${k}/24`, "dev", "eth0"]);
  }
  const [from, to] = [`${lab.prefix}bp1`, `${lab.prefix}bp2`];
  return { name: "veth-bridge-veth (same node)", lab, from, to, toIp: "10.98.0.2" };
}

/** The fast-path topology made by hand: bridge + kernel VXLAN per node, flood entries. */
async function handMadeVxlan(lab: Lab): Promise<Setup> {
  for (const node of lab.nodes) {
    const other = lab.nodes.find((n) => n !== node)!;
    const ns = node.name;
    const local = lab.nodeUnderlayIp(node.index);
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
      local,
      "dev",
      "eth0",
    ]);
    await sh(["ip", "-n", ns, "link", "set", "vx", "mtu", "1450", "master", "weave", "up"]);
    const peer = lab.nodeUnderlayIp(other.index);
    await sh(["bridge", "-n", ns, "fdb", "append", "00:00:00:00:00:00", "dev", "vx", "dst", peer]);
    await lab.setPodMtu(node.index, 1450);
  }
  const [from, to, toIp] = [lab.podNs(1, 1), lab.podNs(2, 1), lab.podIp(2, 1)];
  return { name: "hand-made bridge+VXLAN", lab, from, to, toIp };
}

/**
 * Two weft nodes set up as the agent does it (iptables chains, br_netfilter on, the guard),
 * unless told otherwise. `encrypt`: a password, and both nodes require encryption.
 */
async function weftLab(
  prefix: string,
  options: {
    mode: "auto" | "sleeve";
    encrypt?: boolean;
    pods?: number;
    guard?: boolean;
    brNetfilter?: boolean;
  },
): Promise<Lab> {
  const lab = await Lab.create(prefix, { nodes: 2, podsPerNode: options.pods ?? 1 });
  for (const i of [1, 2]) {
    await lab.applyAgentRules(i);
    await lab.setBrNetfilter(i, options.brNetfilter ?? true);
  }
  await lab.startNodes({
    mode: options.mode,
    encrypt: options.encrypt,
    firewall: options.guard ?? true,
  });
  await lab.introduce({ keys: options.encrypt ? (a, b) => `${a}${b}`.repeat(32) : undefined });
  await lab.waitPath(1, 2, options.encrypt || options.mode === "sleeve" ? "sleeve" : "fastdp");
  return lab;
}

/** Pod 1 on node 1 to pod `k` on node `node` of `lab`. */
function podToPod(lab: Lab, name: string, to: { node: number; pod: number }, baseline?: string) {
  return {
    name,
    baseline,
    lab,
    from: lab.podNs(1, 1),
    to: lab.podNs(to.node, to.pod),
    toIp: lab.podIp(to.node, to.pod),
  };
}

await sweepLab(PREFIX);
const labs: Lab[] = [];
async function keep(lab: Promise<Lab>): Promise<Lab> {
  const made = await lab;
  labs.push(made);
  return made;
}

const rows: Row[] = [];
const setups: Setup[] = [];
try {
  const scratch = await keep(Lab.create(`${PREFIX}b`, { nodes: 1, podsPerNode: 0 }));
  const hand = await keep(Lab.create(`${PREFIX}h`, { nodes: 2 }));
  const fast = await keep(weftLab(`${PREFIX}f`, { mode: "auto", pods: 2 }));
  const open = await keep(weftLab(`${PREFIX}g`, { mode: "auto", guard: false }));
  const bare = await keep(weftLab(`${PREFIX}n`, { mode: "auto", pods: 2, brNetfilter: false }));
  const plain = await keep(weftLab(`${PREFIX}p`, { mode: "sleeve" }));
  const sealed = await keep(weftLab(`${PREFIX}e`, { mode: "sleeve", encrypt: true }));
  const vxlanBase = "hand-made bridge+VXLAN";
  const sameBase = "veth-bridge-veth (same node)";
  const remote = { node: 2, pod: 1 };
  const local = { node: 1, pod: 2 };
  setups.push(
    await vethPair(scratch),
    await vethBridgeVeth(scratch),
    await handMadeVxlan(hand),
    podToPod(fast, "weft fastdp", remote, vxlanBase),
    podToPod(plain, "weft sleeve", remote, vxlanBase),
    podToPod(sealed, "weft sleeve encrypted", remote, vxlanBase),
    podToPod(fast, "weft same node", local, sameBase),
    podToPod(open, "weft fastdp, no guard", remote, vxlanBase),
    podToPod(bare, "weft fastdp, br_netfilter off", remote, vxlanBase),
    podToPod(bare, "weft same node, br_netfilter off", local, sameBase),
  );
  const best = new Map<string, number>();
  const rtts = new Map<string, number[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const setup of setups) {
      const pinged = await ping(setup.lab, { from: setup.from, toIp: setup.toIp }, { count: 15 });
      rtts.set(setup.name, [...rtts.get(setup.name) ?? [], ...pinged.rtts]);
      const transfer = await tcpTransfer(setup, ["-t", String(SECONDS)]);
      if (!transfer.ok) throw new Error(`${setup.name}: iperf3 failed: ${transfer.error}`);
      best.set(setup.name, Math.max(best.get(setup.name) ?? 0, transfer.bitsPerSecond / 1e9));
    }
  }
  for (const setup of setups) {
    rows.push({
      name: setup.name,
      baseline: setup.baseline,
      gbits: best.get(setup.name)!,
      p50: median(rtts.get(setup.name)!),
    });
  }
} finally {
  for (const lab of labs) await lab.destroy().catch(() => {});
  await sweepLab(PREFIX);
}

const byName = new Map(rows.map((r) => [r.name, r]));
const lines = [
  `single-stream TCP, iperf3 -t ${SECONDS}, best of ${ROUNDS} interleaved rounds; ` +
  `ping p50 of ${15 * ROUNDS}; ${navigator.hardwareConcurrency} cores, ` +
  `load average ${Deno.loadavg()[0].toFixed(1)}`,
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
const costs: Array<[string, string, string]> = [
  ["source checks (the guard), fastdp", "weft fastdp", "weft fastdp, no guard"],
  ["per-frame integrity (sealed), userspace path", "weft sleeve encrypted", "weft sleeve"],
  ["br_netfilter on, fastdp", "weft fastdp", "weft fastdp, br_netfilter off"],
  ["br_netfilter on, same node", "weft same node", "weft same node, br_netfilter off"],
];
lines.push(
  "",
  "| what it costs | with Gbit/s | without Gbit/s | ratio | ping p50 ms with / without |",
  "| --- | ---: | ---: | ---: | ---: |",
);
for (const [what, withName, withoutName] of costs) {
  const a = byName.get(withName)!, b = byName.get(withoutName)!;
  lines.push(
    `| ${what} | ${a.gbits.toFixed(2)} | ${b.gbits.toFixed(2)} | ${
      (a.gbits / b.gbits).toFixed(2)
    } | ${a.p50.toFixed(3)} / ${b.p50.toFixed(3)} |`,
  );
}
console.log(lines.join("\n"));
