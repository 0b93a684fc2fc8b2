/**
 * What the CNI plugin's start-up costs in each way the program could be shipped, against Deno
 * starting an empty script, measured in one run with the runs interleaved (so load on the
 * machine hits every row alike). Each row is `deno run` of one file with CNI_COMMAND=VERSION,
 * which does no work: it is the price of starting the plugin at all. No namespaces, no root.
 *
 *   deno run -A bench/plugin_startup.ts [--runs 30]
 *
 * Rows:
 * - `empty script`: the baseline, Deno itself.
 * - `deno bundle`: main.ts through plain `deno bundle` (what shipped before scripts/bundle.ts):
 *   its top-level node: imports start the Node compatibility layer in every plugin process.
 * - `scripts/bundle.ts`: the shipped file (node: built-ins on demand, minified with names
 *   kept), and the same without minifying.
 * - `plugin alone`: only the plugin's code in a file (what a two-file artifact, code
 *   splitting or a compiled binary of the source graph would give the plugin): the floor.
 * Each with Deno's V8 code cache warm (a writable DENO_DIR, primed) and without it (an
 * unwritable DENO_DIR: what a runtime gets when the cache directory cannot be written).
 */

import { bundle } from "../scripts/bundle.ts";
import { percentile, readCost, timeCommand } from "./support/stats.ts";

const runsArg = Deno.args.indexOf("--runs");
const runs = runsArg >= 0 ? Number(Deno.args[runsArg + 1]) : 30;
const repoRoot = new URL("../", import.meta.url).pathname;

interface Variant {
  name: string;
  file: string;
}

async function denoBundle(entry: string, output: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", entry, "-o", output],
    cwd: repoRoot,
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
}

interface Sample {
  wallMs: number;
  cpuMs: number;
  rssKiB: number;
}

/** One run through GNU time, which reports the process's CPU time and peak RSS. */
async function runOnce(file: string, denoDir: string, noCache: boolean): Promise<Sample> {
  const report = await Deno.makeTempFile({ prefix: "weft-bench-time-" });
  try {
    const [time, ...timeArgs] = timeCommand(report);
    const flags = ["run", "-A", "--quiet", "--no-prompt", "--no-config"];
    const started = performance.now();
    const child = new Deno.Command(time, {
      args: [...timeArgs, Deno.execPath(), ...flags, ...(noCache ? ["--no-code-cache"] : []), file],
      clearEnv: true,
      env: {
        PATH: "/usr/bin:/bin",
        CNI_COMMAND: "VERSION",
        DENO_DIR: denoDir,
        DENO_NO_UPDATE_CHECK: "1",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode('{"cniVersion":"1.0.0"}'));
    await writer.close();
    const out = await child.output();
    const wallMs = performance.now() - started;
    if (out.code !== 0) throw new Error(`${file}: ${new TextDecoder().decode(out.stderr)}`);
    const cost = await readCost(report);
    return { wallMs, cpuMs: cost.cpuMs, rssKiB: cost.peakRssKiB };
  } finally {
    await Deno.remove(report).catch(() => {});
  }
}

const scratch = await Deno.makeTempDir({ prefix: "weft-bench-startup-" });
try {
  const empty = `${scratch}/empty.js`;
  await Deno.writeTextFile(empty, "");
  const variants: Variant[] = [
    { name: "empty script", file: empty },
    { name: "deno bundle (before)", file: `${scratch}/plain.js` },
    { name: "scripts/bundle.ts --no-minify", file: `${scratch}/weft.full.js` },
    { name: "scripts/bundle.ts (shipped)", file: `${scratch}/weft.js` },
    { name: "plugin alone (floor)", file: `${scratch}/plugin.js` },
  ];
  await denoBundle(`${repoRoot}main.ts`, variants[1].file);
  await bundle(variants[2].file, { minify: false });
  await bundle(variants[3].file);
  await denoBundle(`${repoRoot}tests/support/cni_entry.ts`, variants[4].file);

  const warmDir = `${scratch}/deno-dir`;
  // an unwritable cache directory (even for root): Deno then runs with no cache at all
  const noDir = "/proc/weft-no-deno-dir";
  const modes = [
    { label: "code cache", denoDir: warmDir, noCache: false },
    { label: "no cache", denoDir: noDir, noCache: true },
  ];
  const samples = new Map<string, Sample[]>();
  for (let i = -1; i < runs; i++) {
    for (const mode of modes) {
      for (const variant of variants) {
        const sample = await runOnce(variant.file, mode.denoDir, mode.noCache);
        // the first round fills the cache and is not counted
        if (i < 0) continue;
        const key = `${mode.label}\u0000${variant.name}`;
        samples.set(key, [...(samples.get(key) ?? []), sample]);
      }
    }
  }

  const sizes = await Promise.all(variants.map(async (v) => (await Deno.stat(v.file)).size));
  console.log(`Plugin start-up (CNI VERSION), ${runs} runs each, interleaved; p50 values`);
  console.log(
    "| file | size KiB | cache | wall ms | x empty | CPU ms | x empty | peak RSS MiB |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const mode of modes) {
    const base = samples.get(`${mode.label}\u0000${variants[0].name}`)!;
    const baseWall = percentile(base.map((s) => s.wallMs), 50);
    const baseCpu = percentile(base.map((s) => s.cpuMs), 50);
    variants.forEach((variant, index) => {
      const rows = samples.get(`${mode.label}\u0000${variant.name}`)!;
      const wall = percentile(rows.map((s) => s.wallMs), 50);
      const cpu = percentile(rows.map((s) => s.cpuMs), 50);
      const rss = percentile(rows.map((s) => s.rssKiB), 50) / 1024;
      console.log(
        `| ${variant.name} | ${(sizes[index] / 1024).toFixed(0)} | ${mode.label} | ` +
          `${wall.toFixed(1)} | ${(wall / baseWall).toFixed(2)} | ${cpu.toFixed(0)} | ` +
          `${(cpu / baseCpu).toFixed(2)} | ${rss.toFixed(1)} |`,
      );
    });
  }
  console.log("(CPU: user+system from GNU time, 10 ms resolution per run)");
} finally {
  await Deno.remove(scratch, { recursive: true });
}
