/**
 * The plugin alone, without the CLI: what `main.ts` runs when CNI_COMMAND is set, bundled on its
 * own. The benchmark builds it (`--plugin-only`) to show how much of an ADD is the plugin's
 * work and how much is loading the full artifact.
 */
import { runPlugin } from "../../src/cni/mod.ts";

Deno.exit(
  await runPlugin({ env: Deno.env.toObject(), stdin: Deno.stdin, stdout: Deno.stdout }),
);
