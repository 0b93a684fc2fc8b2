/**
 * Small helpers the benchmarks share. This folder holds no benchmark itself: scripts/bench.ts
 * runs only the files directly under bench/.
 */

/** The p-th percentile (nearest rank) of `values`. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** What GNU time says about one finished process: CPU time and peak resident memory. */
export interface ProcessCost {
  cpuMs: number;
  peakRssKiB: number;
}

/** The argv prefix that makes GNU time write `%U %S %M` of the command after it to `report`. */
export function timeCommand(report: string): string[] {
  return ["/usr/bin/time", "-f", "%U %S %M", "-o", report];
}

/** Reads what `timeCommand` wrote (the last line: time adds a line when the command fails). */
export async function readCost(report: string): Promise<ProcessCost> {
  const last = (await Deno.readTextFile(report)).trim().split("\n").at(-1) ?? "";
  const [user, system, rss] = last.split(" ").map(Number);
  return { cpuMs: (user + system) * 1000, peakRssKiB: rss };
}
