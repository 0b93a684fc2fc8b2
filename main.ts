/**
 * One entry, three roles. A container runtime runs us with CNI_COMMAND set and the network
 * config on stdin: then we are the CNI plugin, and only the plugin's code is loaded so the
 * runtime's latency stays low. The agent's userspace data path starts worker threads from this
 * same entry (so the single-file bundle and the compiled binary need no second file): a worker
 * named for it becomes a sleeve thread. Anything else is a person or a script: the CLI.
 */
const SLEEVE_WORKER_NAME = "weft-sleeve";

if ((globalThis as { name?: string }).name === SLEEVE_WORKER_NAME) {
  const { installSleeveWorker } = await import("./src/datapath/mod.ts");
  installSleeveWorker();
} else if (Deno.env.get("CNI_COMMAND")) {
  const { runPlugin } = await import("./src/cni/mod.ts");
  Deno.exit(
    await runPlugin({ env: Deno.env.toObject(), stdin: Deno.stdin.readable, stdout: Deno.stdout }),
  );
} else {
  const { runCli } = await import("./src/cli/mod.ts");
  Deno.exit(await runCli(Deno.args));
}
