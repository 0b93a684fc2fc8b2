/**
 * Agent resident memory: idle, and after 100 pods attached through the CNI plugin. One lab node;
 * the agent is the bundled artifact as users run it. Prints a table; asserts nothing.
 *
 *   deno run -A bench/agent_memory.ts [--pods=100]
 */
import { Lab } from "../tests/support/lab.ts";

const pods = Number(Deno.args.find((a) => a.startsWith("--pods="))?.split("=")[1] ?? 100);

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

const lab = await Lab.create({ nodes: 1, prefix: "wbmem" });
try {
  const pid = lab.node(1).agent!.pid;
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await rssMiB(pid);
  const started = performance.now();
  for (let i = 0; i < pods; i++) await lab.addPod(1, `p${i}`);
  const attachSeconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2000));
  const loaded = await rssMiB(pid);
  console.log("\nweft agent resident memory (VmRSS)");
  console.log("| state | RSS MiB |");
  console.log("| --- | --- |");
  console.log(`| idle, 0 pods | ${idle.toFixed(1)} |`);
  console.log(`| after ${pods} pods | ${loaded.toFixed(1)} |`);
  console.log(`\n(${pods} sequential CNI ADDs took ${attachSeconds.toFixed(1)} s)`);
} finally {
  await lab.destroy();
}
