/**
 * One entry, two roles. A container runtime runs us with CNI_COMMAND set and the network
 * config on stdin: then we are the CNI plugin, and only the plugin's code is loaded so the
 * runtime's latency stays low. Anything else is a person or a script: the CLI.
 */
if (Deno.env.get("CNI_COMMAND")) {
  const { runPlugin } = await import("./src/cni/mod.ts");
  Deno.exit(
    await runPlugin({ env: Deno.env.toObject(), stdin: Deno.stdin.readable, stdout: Deno.stdout }),
  );
} else {
  const { runCli } = await import("./src/cli/mod.ts");
  Deno.exit(await runCli(Deno.args));
}
