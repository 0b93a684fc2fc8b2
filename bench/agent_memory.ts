/**
 * Agent resident memory: idle, and after 100 pods attached through the CNI plugin, on one lab
 * node; then on a node with one peer and 20 pods, with pod traffic between the nodes on kernel
 * VXLAN and on the userspace path (`--datapath sleeve`). The agent is the bundled artifact as
 * users run it. Prints a table; asserts nothing.
 *
 *   deno run -A bench/agent_memory.ts [--pods=100] [--peer-pods=20]
 */
import { Lab, waitFor } from "../tests/support/lab.ts";

const pods = Number(Deno.args.find((a) => a.startsWith("--pods="))?.split("=")[1] ?? 100);
const peerPods = Number(
  Deno.args.find((a) => a.startsWith("--peer-pods="))?.split("=")[1] ?? 20,
);

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

const rows: string[] = [];
const lab = await Lab.create({ nodes: 1, prefix: "wbmem" });
let attachSeconds = 0;
try {
  const pid = lab.node(1).agent!.pid;
  await new Promise((r) => setTimeout(r, 3000));
  rows.push(`| idle, 0 pods | ${(await rssMiB(pid)).toFixed(1)} |`);
  const started = performance.now();
  for (let i = 0; i < pods; i++) await lab.addPod(1, `p${i}`);
  attachSeconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2000));
  rows.push(`| after ${pods} pods | ${(await rssMiB(pid)).toFixed(1)} |`);
} finally {
  await lab.destroy();
}

/** Node 1's RSS with one peer, `peerPods` pods and pod traffic to the peer on `path`. */
async function withPeer(datapath: "auto" | "sleeve", path: string): Promise<number> {
  const lab = await Lab.create({
    nodes: 2,
    prefix: "wbmemp",
    agentArgs: ["--ipalloc-init", "consensus=2", "--datapath", datapath],
  });
  try {
    const local = [];
    for (let i = 0; i < peerPods; i++) local.push(await lab.addPod(1, `p${i}`));
    const remote = await lab.addPod(2, "r");
    await waitFor(`node1 -> node2 on ${path}`, async () => {
      const list = (await lab.api(1, "GET", "/status/connections")).json as Array<
        { peer?: string; path?: string }
      >;
      return list?.some((c) => c.peer === lab.node(2).peerName && c.path === path);
    });
    if (!await lab.ping(local[0], remote.ip, { count: 3, timeout: 3 })) {
      throw new Error(`no pod traffic on ${path}`);
    }
    await new Promise((r) => setTimeout(r, 3000));
    return await rssMiB(lab.node(1).agent!.pid);
  } finally {
    await lab.destroy();
  }
}

rows.push(
  `| one peer on VXLAN, ${peerPods} pods | ${(await withPeer("auto", "fastdp")).toFixed(1)} |`,
);
rows.push(
  `| one peer on the userspace path, ${peerPods} pods | ${
    (await withPeer("sleeve", "sleeve")).toFixed(1)
  } |`,
);

console.log("\nweft agent resident memory (VmRSS)");
console.log("| state | RSS MiB |");
console.log("| --- | --- |");
for (const row of rows) console.log(row);
console.log(`\n(${pods} sequential CNI ADDs took ${attachSeconds.toFixed(1)} s)`);
