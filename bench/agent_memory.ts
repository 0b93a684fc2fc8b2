/**
 * The agent's memory, as users run it (the shipped file in lab namespaces), in the states the
 * targets name, and what each part of it costs. Prints tables; asserts nothing.
 *
 *   deno run -A bench/agent_memory.ts [--pods 20] [--idle-seconds 10]
 *
 * Agents (node 1 of two; node 2 is its one peer), each idle after attaching pods:
 * - `none`: `--datapath none` (mesh, IPAM, API, no data path);
 * - `fastdp`: the default data path with a peer on kernel VXLAN, checked by a ping;
 * - `sleeve`: the userspace path forced (`--datapath sleeve`), checked by a ping.
 * Per agent: VmRSS and the threads of the process (sleeve workers are threads with their own
 * JavaScript isolate), and the main isolate's heap from /metrics. Process baselines: Deno on an
 * empty script, and the shipped file loading the CLI with its Node built-ins (`weft --help`).
 * Differences between rows are the parts: runtime, program, agent services, data path.
 *
 * WEFT_TEST_BUNDLE=path/to/weft.js measures another build (e.g. an older version's).
 */
import { Lab } from "../tests/support/lab.ts";
import { artifact } from "../tests/support/artifact.ts";
import { readCost, timeCommand } from "./support/stats.ts";

const flag = (name: string, fallback: number) => {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Number(Deno.args[index + 1]) : fallback;
};
const pods = flag("--pods", 20);
const idleSeconds = flag("--idle-seconds", 10);
const MiB = 1024 * 1024;

interface AgentFigures {
  rssMiB: number;
  privateMiB: number;
  threads: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

/**
 * VmRSS, the part of it that is the process's own (anonymous: heaps, stacks; the rest is the
 * deno executable's pages, shared with every other Deno process), and the thread count.
 */
async function processFigures(
  pid: number,
): Promise<{ rssMiB: number; privateMiB: number; threads: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1]);
  return {
    rssMiB: field("VmRSS") / 1024,
    privateMiB: field("RssAnon") / 1024,
    threads: field("Threads"),
  };
}

/** Peak RSS of a short process (GNU time), for the baselines. */
async function peakRssMiB(command: string[]): Promise<number> {
  const report = await Deno.makeTempFile({ prefix: "weft-bench-mem-" });
  try {
    const [time, ...args] = timeCommand(report);
    await new Deno.Command(time, {
      args: [...args, ...command],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "null",
      stderr: "null",
    }).output();
    return (await readCost(report)).peakRssKiB / 1024;
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

async function measureAgent(
  name: string,
  datapathArgs: string[],
  prefix: string,
): Promise<AgentFigures> {
  const lab = await Lab.create({ nodes: 2, prefix, agentArgs: datapathArgs });
  try {
    const local = [];
    for (let i = 0; i < pods; i++) local.push(await lab.addPod(1, `p${i}`));
    const remote = await lab.addPod(2, "r0");
    if (name !== "none") {
      // the data path must be carrying traffic, not just configured
      let reached = false;
      for (let attempt = 0; attempt < 10 && !reached; attempt++) {
        reached = await lab.ping(local[0], remote.ip, { count: 2 });
      }
      if (!reached) throw new Error(`${name}: a pod on node1 cannot reach node2's pod`);
    }
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const pid = lab.node(1).agent!.pid;
    const { rssMiB, privateMiB, threads } = await processFigures(pid);
    const metrics = await lab.api(1, "GET", "/metrics");
    const text = metrics.text;
    const heap = (kind: string) =>
      Number(new RegExp(`^weft_heap_bytes\\{kind="${kind}"\\} (\\d+)$`, "m").exec(text)?.[1]) /
      MiB;
    return {
      rssMiB,
      privateMiB,
      threads,
      heapUsedMiB: heap("used"),
      heapTotalMiB: heap("total"),
      externalMiB: heap("external"),
    };
  } finally {
    await lab.destroy();
  }
}

const { bundle, weft } = await artifact();
const empty = await Deno.makeTempFile({ prefix: "weft-bench-empty-", suffix: ".js" });
try {
  const deno = Deno.execPath();
  const flags = ["run", "-A", "--quiet", "--no-config"];
  // once each first: the first run of a file fills Deno's caches and peaks higher
  await peakRssMiB([deno, ...flags, empty]);
  await peakRssMiB([weft, "--help"]);
  const baselines = {
    runtime: await peakRssMiB([deno, ...flags, empty]),
    cli: await peakRssMiB([weft, "--help"]),
  };
  const agents = {
    none: await measureAgent("none", ["--datapath", "none"], "wbm1"),
    fastdp: await measureAgent("fastdp", [], "wbm2"),
    sleeve: await measureAgent("sleeve", ["--datapath", "sleeve"], "wbm3"),
  };
  const size = (await Deno.stat(bundle)).size / MiB;
  console.log(
    `\nweft agent memory, idle ${idleSeconds} s after ${pods} pods, one peer (bundle ${
      size.toFixed(2)
    } MiB)`,
  );
  console.log(
    "| agent | RSS MiB | private MiB | threads | heap used MiB | heap total MiB | external MiB |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const [name, a] of Object.entries(agents)) {
    console.log(
      `| ${name} | ${a.rssMiB.toFixed(1)} | ${a.privateMiB.toFixed(1)} | ${a.threads} | ${
        a.heapUsedMiB.toFixed(1)
      } | ${a.heapTotalMiB.toFixed(1)} | ${a.externalMiB.toFixed(1)} |`,
    );
  }
  console.log("\nwhat the parts cost (RSS MiB, by difference)");
  console.log("| part | MiB |");
  console.log("| --- | --- |");
  console.log(`| Deno runtime, empty script (peak) | ${baselines.runtime.toFixed(1)} |`);
  console.log(
    `| the program loaded with its Node built-ins (\`weft --help\` peak, minus runtime) | ${
      (baselines.cli - baselines.runtime).toFixed(1)
    } |`,
  );
  console.log(
    `| agent services: mesh, IPAM + SQLite, API (agent \`none\` minus \`weft --help\`) | ${
      (agents.none.rssMiB - baselines.cli).toFixed(1)
    } |`,
  );
  console.log(
    `| kernel VXLAN data path (\`fastdp\` minus \`none\`) | ${
      (agents.fastdp.rssMiB - agents.none.rssMiB).toFixed(1)
    } |`,
  );
  console.log(
    `| userspace path in use (\`sleeve\` minus \`none\`; its worker threads) | ${
      (agents.sleeve.rssMiB - agents.none.rssMiB).toFixed(1)
    } |`,
  );
} finally {
  await Deno.remove(empty).catch(() => {});
}
