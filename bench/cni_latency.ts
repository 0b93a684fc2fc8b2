/**
 * ADD and DEL latency of the weft plugin against Debian's reference `bridge` + `host-local`,
 * measured in the same run with the same namespace setup: one node namespace, a fresh pod
 * namespace per attachment, each plugin run as a runtime runs it (a new process, env plus
 * stdin, through `ip netns exec` into the node). The two plugins alternate so drift on the
 * machine hits both alike. Prints p50/p95 per operation and the weft/reference ratio; the VER
 * row (VERSION, which does no work) shows how much of each is just starting the program.
 *
 *   deno run -A bench/cni_latency.ts [--runs 30] [--agent real|fake] [--plugin-only]
 *
 * `--plugin-only` measures a bundle of the plugin alone (tests/support/cni_entry.ts) instead
 * of the full artifact, to separate the plugin's own cost from loading the whole program.
 */

import {
  createNetns,
  installPlugin,
  invokePlugin,
  netnsPath,
  startAgent,
  sweep,
} from "../tests/support/plugin.ts";
import { must } from "../tests/support/lab.ts";
import { writeWrapper } from "../tests/support/artifact.ts";

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

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function timed(run: () => Promise<{ code: number; stdout: string }>): Promise<number> {
  const start = performance.now();
  const result = await run();
  const elapsed = performance.now() - start;
  if (result.code !== 0) throw new Error(`plugin failed: ${result.stdout}`);
  return elapsed;
}

await sweep(PREFIX);
const binDir = await Deno.makeTempDir({ prefix: "weft-bench-bin-" });
const hostLocalDir = await Deno.makeTempDir({ prefix: "weft-bench-hostlocal-" });
const node = await createNetns(`${PREFIX}-node`);
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
try {
  await (pluginOnly ? installPluginOnly(binDir) : installPlugin(binDir));
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
  const samples = {
    weftAdd: [] as number[],
    weftDel: [] as number[],
    refAdd: [] as number[],
    refDel: [] as number[],
    weftVersion: [] as number[],
    refVersion: [] as number[],
  };
  // one warm-up round each, not counted: the first run of anything pays for cold caches
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
    const weftAdd = await timed(() =>
      invokePlugin({ ...common(pods.weft), command: "ADD", config: weftConfig })
    );
    const refAdd = await timed(() =>
      invokePlugin({
        ...common(pods.ref),
        command: "ADD",
        config: refConfig,
        program: "/usr/lib/cni/bridge",
        cniPath: "/usr/lib/cni",
      })
    );
    const weftDel = await timed(() =>
      invokePlugin({ ...common(pods.weft), command: "DEL", config: weftConfig })
    );
    const refDel = await timed(() =>
      invokePlugin({
        ...common(pods.ref),
        command: "DEL",
        config: refConfig,
        program: "/usr/lib/cni/bridge",
        cniPath: "/usr/lib/cni",
      })
    );
    // VERSION does no work: it is the cost of starting each plugin at all
    const version = { cniVersion: "1.0.0" };
    const weftVersion = await timed(() =>
      invokePlugin({ binDir, command: "VERSION", config: version, inNetns: node })
    );
    const refVersion = await timed(() =>
      invokePlugin({
        binDir,
        command: "VERSION",
        config: version,
        inNetns: node,
        program: "/usr/lib/cni/bridge",
      })
    );
    if (i >= 0) {
      samples.weftVersion.push(weftVersion);
      samples.refVersion.push(refVersion);
      samples.weftAdd.push(weftAdd);
      samples.refAdd.push(refAdd);
      samples.weftDel.push(weftDel);
      samples.refDel.push(refDel);
    }
    await must(["ip", "netns", "del", pods.weft]);
    await must(["ip", "netns", "del", pods.ref]);
  }
  const launcher: number[] = [];
  for (let i = 0; i < 10; i++) {
    launcher.push(
      await timed(() =>
        invokePlugin({ binDir, command: "VERSION", program: "true", inNetns: node })
      ),
    );
  }
  const row = (op: string, weft: number[], ref: number[]) => {
    const cells = [
      percentile(weft, 50),
      percentile(weft, 95),
      percentile(ref, 50),
      percentile(ref, 95),
    ];
    return `| ${op.padEnd(3)} | ${cells.map((v) => v.toFixed(1).padStart(9)).join(" | ")} | ${
      (cells[0] / cells[2]).toFixed(2).padStart(9)
    } | ${(cells[1] / cells[3]).toFixed(2).padStart(9)} |`;
  };
  console.log(
    `CNI latency, ${runs} runs each, ms (weft ${
      pluginOnly ? "plugin-only bundle" : "artifact"
    }, ${agentKind} agent; reference: bridge + host-local)`,
  );
  console.log("| op  |  weft p50 |  weft p95 |   ref p50 |   ref p95 | ratio p50 | ratio p95 |");
  console.log("| --- | --------- | --------- | --------- | --------- | --------- | --------- |");
  console.log(row("ADD", samples.weftAdd, samples.refAdd));
  console.log(row("DEL", samples.weftDel, samples.refDel));
  console.log(row("VER", samples.weftVersion, samples.refVersion));
  console.log(
    `(VER = VERSION, i.e. start-up alone; all include the launcher, \`ip netns exec\` + \`env\`: p50 ${
      percentile(launcher, 50).toFixed(1)
    } ms)`,
  );
} finally {
  await agent?.stop();
  await sweep(PREFIX);
  await Deno.remove(binDir, { recursive: true }).catch(() => {});
  await Deno.remove(hostLocalDir, { recursive: true }).catch(() => {});
}
