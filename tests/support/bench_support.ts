/**
 * Pieces the benchmarks share: percentiles, the fake Kubernetes API server as a process on
 * loopback, and a measurement run in a fresh child process with `--expose-gc` (so a heap figure
 * is the measured code's, not the parent's), answering one JSON line.
 */

/** `--name value` from the command line, or `fallback`. */
export function option(name: string, fallback: string, args = Deno.args): string {
  const at = args.indexOf(name);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

/** The value below which `p` percent of `values` fall (nearest rank). */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** tests/support/fake_kube_server.ts on 127.0.0.1, a free port; `close` ends it. */
export async function startFakeKubeProcess(
  token: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./fake_kube_server.ts", import.meta.url).pathname,
      "127.0.0.1",
      "0",
      token,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const close = async () => {
    try {
      server.kill();
    } catch {
      // gone
    }
    await server.status;
    await server.stdout.cancel().catch(() => {});
  };
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = (await reader.read()).value ?? "";
  reader.releaseLock();
  const port = /listening (\d+)/.exec(first)?.[1];
  if (!port) {
    await close();
    throw new Error(`the fake API server did not start: ${first}`);
  }
  return { url: `http://127.0.0.1:${port}`, close };
}

/** Runs `script` with `args` and --expose-gc; returns the JSON of its last line of output. */
export async function measureInChild<T = Record<string, unknown>>(
  script: string | URL,
  args: string[],
): Promise<T> {
  const path = script instanceof URL ? script.pathname : script;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", path, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error(`the measurement ${args.join(" ")} failed`);
  return JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").at(-1)!);
}
