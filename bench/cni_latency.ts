/**
 * ADD and DEL latency of the weft plugin against Debian's reference `bridge` + `host-local`,
 * measured in the same run with the same namespace setup: one node namespace, a fresh pod
 * namespace per attachment, each plugin run as a runtime runs it (a new process, env plus
 * stdin, through `ip netns exec` into the node). The plugins alternate so drift on the machine
 * hits both alike. Prints p50/p95 per operation, the weft/reference ratio and each plugin's
 * peak resident memory per invocation (GNU time). VERSION does no work: it is what starting
 * each plugin costs, and the `deno` row is Deno starting an empty script through the same
 * kind of launcher, the floor for any plugin written for Deno.
 *
 *   deno run -A bench/cni_latency.ts [--runs 30] [--agent real|fake] [--plugin-only]
 *
 * `--plugin-only` measures a bundle of the plugin alone (tests/support/cni_entry.ts) instead
 * of the shipped file, to separate the plugin's own cost from loading the whole program.
 */

import {
  createNetns,
  installPlugin,
  type InvokeOptions,
  invokePlugin,
  netnsPath,
  startAgent,
  sweep,
} from "../tests/support/plugin.ts";
import { must } from "../tests/support/lab.ts";
import { writeWrapper } from "../tests/support/artifact.ts";
import { percentile, type ProcessCost, readCost, timeCommand } from "./support/stats.ts";

const PREFIX = "wtc-bench";
const flag = (name: string) => {
  const index = Deno.args.indexOf(name);
  return index >= 0 ? Deno.args[index + 1] : undefined;
};
const runs = Number(flag("--runs") ?? 30);
const agentKind = (flag("--agent") ?? "real") as "fake" | "real";
const pluginOnly = Deno.args.includes("--plugin-only");

async function installPluginOnly(binDir: string): Promise<void> {
  const bundle = `${binDir}/weft-cni.js`;
  const entry = new URL("../tests/support/cni_entry.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", entry, "-o", bundle],
    cwd: new URL("..", import.meta.url).pathname,
  }).output();
  if (out.code !== 0) {
    throw new Error(`bundling the plugin failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  await writeWrapper(`${binDir}/weft`, bundle);
}

interface Sample extends ProcessCost {
  ms: number;
}

/** One plugin run through GNU time; throws when the plugin failed. */
async function measured(options: InvokeOptions): Promise<Sample> {
  const report = await Deno.makeTempFile({ prefix: "weft-bench-cost-" });
  try {
    const start = performance.now();
    const result = await invokePlugin({ ...options, measuredBy: timeCommand(report) });
    const ms = performance.now() - start;
    if (result.code !== 0) {
      throw new Error(`${options.command} answered ${result.code}: ${result.stdout}`);
    }
    return { ms, ...await readCost(report) };
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

const ops = ["ADD", "DEL", "VER"] as const;
type Op = typeof ops[number];

await sweep(PREFIX);
const binDir = await Deno.makeTempDir({ prefix: "weft-bench-bin-" });
const hostLocalDir = await Deno.makeTempDir({ prefix: "weft-bench-hostlocal-" });
const node = await createNetns(`${PREFIX}-node`);
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
try {
  await (pluginOnly ? installPluginOnly(binDir) : installPlugin(binDir));
  // Deno starting an empty script through the same launcher: the floor for VERSION
  await Deno.writeTextFile(`${binDir}/empty.js`, "");
  await writeWrapper(`${binDir}/deno-empty`, `${binDir}/empty.js`);
  agent = await startAgent(node, { kind: agentKind });
  // 1.0.0: the newest version Debian's reference plugins speak
  const weftConfig = { cniVersion: "1.0.0", name: "weft", type: "weft" };
  const refConfig = {
    cniVersion: "1.0.0",
    name: "ref",
    type: "bridge",
    bridge: "cniref0",
    isGateway: true,
    ipam: { type: "host-local", subnet: "10.99.0.0/16", dataDir: hostLocalDir },
  };
  const reference = { program: "/usr/lib/cni/bridge", cniPath: "/usr/lib/cni" };
  const samples = {
    weft: { ADD: [], DEL: [], VER: [] } as Record<Op, Sample[]>,
    ref: { ADD: [], DEL: [], VER: [] } as Record<Op, Sample[]>,
    empty: [] as Sample[],
    launcher: [] as Sample[],
  };
  // one warm-up round, not counted: the first run of anything pays for cold caches
  for (let i = -1; i < runs; i++) {
    const pods = {
      weft: await createNetns(`${PREFIX}-w${i + 1}`),
      ref: await createNetns(`${PREFIX}-r${i + 1}`),
    };
    const common = (pod: string) => ({
      binDir,
      containerID: `bench-${pod}`,
      netns: netnsPath(pod),
      inNetns: node,
    });
    const version = { binDir, command: "VERSION", config: { cniVersion: "1.0.0" }, inNetns: node };
    const round = {
      weftAdd: await measured({ ...common(pods.weft), command: "ADD", config: weftConfig }),
      refAdd: await measured({
        ...common(pods.ref),
        command: "ADD",
        config: refConfig,
        ...reference,
      }),
      weftDel: await measured({ ...common(pods.weft), command: "DEL", config: weftConfig }),
      refDel: await measured({
        ...common(pods.ref),
        command: "DEL",
        config: refConfig,
        ...reference,
      }),
      weftVer: await measured(version),
      refVer: await measured({ ...version, program: reference.program }),
      empty: await measured({ ...version, program: `${binDir}/deno-empty` }),
      // `ip netns exec` + `env` + a program that does nothing: what every row includes
      launcher: await measured({ ...version, program: "true" }),
    };
    if (i >= 0) {
      samples.weft.ADD.push(round.weftAdd);
      samples.ref.ADD.push(round.refAdd);
      samples.weft.DEL.push(round.weftDel);
      samples.ref.DEL.push(round.refDel);
      samples.weft.VER.push(round.weftVer);
      samples.ref.VER.push(round.refVer);
      samples.empty.push(round.empty);
      samples.launcher.push(round.launcher);
    }
    await must(["ip", "netns", "del", pods.weft]);
    await must(["ip", "netns", "del", pods.ref]);
  }
  const p = (list: Sample[], q: number, pick: (s: Sample) => number = (s) => s.ms) =>
    percentile(list.map(pick), q);
  const cell = (value: number) => value.toFixed(1).padStart(7);
  const mib = (list: Sample[]) => cell(p(list, 50, (s) => s.peakRssKiB) / 1024);
  console.log(
    `CNI latency, ${runs} runs each, ms (weft ${
      pluginOnly ? "plugin-only bundle" : "shipped file"
    }, ${agentKind} agent; reference: bridge + host-local)`,
  );
  console.log(
    "| op  | weft p50 | weft p95 |  ref p50 |  ref p95 | ratio p50 | ratio p95 | weft RSS MiB | ref RSS MiB |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const op of ops) {
    const weft = samples.weft[op];
    const ref = samples.ref[op];
    console.log(
      `| ${op} | ${cell(p(weft, 50))} | ${cell(p(weft, 95))} | ${cell(p(ref, 50))} | ${
        cell(p(ref, 95))
      } | ${(p(weft, 50) / p(ref, 50)).toFixed(2).padStart(9)} | ${
        (p(weft, 95) / p(ref, 95)).toFixed(2).padStart(9)
      } | ${mib(weft)} | ${mib(ref)} |`,
    );
  }
  console.log(
    `| deno, empty script | ${cell(p(samples.empty, 50))} | ${cell(p(samples.empty, 95))} | | | ` +
      `| | ${mib(samples.empty)} | |`,
  );
  console.log(
    `\nVERSION / Deno's empty script, p50: ${
      (p(samples.weft.VER, 50) / p(samples.empty, 50)).toFixed(2)
    } (CPU ${
      (p(samples.weft.VER, 50, (s) => s.cpuMs) / p(samples.empty, 50, (s) => s.cpuMs))
        .toFixed(2)
    }); CPU ms p50 weft ADD ${p(samples.weft.ADD, 50, (s) => s.cpuMs).toFixed(0)}, ` +
      `ref ADD ${p(samples.ref.ADD, 50, (s) => s.cpuMs).toFixed(0)}`,
  );
  console.log(
    `(every row includes the launcher, \`ip netns exec\` + \`env\`: p50 ${
      p(samples.launcher, 50).toFixed(1)
    } ms; RSS is the plugin process's peak, p50)`,
  );
} finally {
  await agent?.stop();
  await sweep(PREFIX);
  await Deno.remove(binDir, { recursive: true }).catch(() => {});
  await Deno.remove(hostLocalDir, { recursive: true }).catch(() => {});
}
