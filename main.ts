/**
 * One entry, three roles, decided before anything else is loaded. A container runtime runs us
 * with CNI_COMMAND set and the network config on stdin: then we are the CNI plugin, and only
 * the plugin's code runs (no npm package, no `node:` module), because every pod start and stop
 * pays for it. The agent's userspace data path starts worker threads from this same entry (so
 * the single-file bundle and the compiled binary need no second file): a worker named for it
 * becomes a sleeve thread. Anything else is a person or a script: the CLI.
 *
 * In the bundle (scripts/bundle.ts) the `node:` built-ins are bound lazily; the server-side
 * roles load them first. Run from source, there is no such loader and nothing to do.
 */
const SLEEVE_WORKER_NAME = "weft-sleeve";

async function loadNodeBuiltins(): Promise<void> {
  const load = (globalThis as Record<symbol, unknown>)[Symbol.for("weft.loadNodeBuiltins")];
  if (typeof load === "function") await load();
}

if ((globalThis as { name?: string }).name === SLEEVE_WORKER_NAME) {
  await loadNodeBuiltins();
  const { installSleeveWorker } = await import("./src/datapath/mod.ts");
  installSleeveWorker();
} else if (Deno.env.get("CNI_COMMAND")) {
  const { runPlugin } = await import("./src/cni/mod.ts");
  Deno.exit(
    await runPlugin({ env: Deno.env.toObject(), stdin: Deno.stdin, stdout: Deno.stdout }),
  );
} else {
  await loadNodeBuiltins();
  const { runCli } = await import("./src/cli/mod.ts");
  Deno.exit(await runCli(Deno.args));
}
