/**
 * The artifact under test, built once per test process: scripts/bundle.ts of main.ts into one file
 * in a temporary directory with no source tree beside it, and an executable `weft` next to it
 * (the launcher a node gets where the compiled binary cannot be built). Kernel tests,
 * the lab, the demo and the benchmarks all run weft through this, as a runtime or a person
 * would: never by importing the source.
 */

import { bundle as bundleProgram } from "../../scripts/bundle.ts";

export interface Artifact {
  /** Directory holding `weft` and `weft.js`; usable as a CNI bin dir. */
  binDir: string;
  /** The executable. */
  weft: string;
  bundle: string;
}

let building: Promise<Artifact> | undefined;

/**
 * Writes the launcher that runs the bundle with this Deno, as README shows it:
 * - DENO_DIR beside the bundle unless one is set: a container runtime runs the plugin with an
 *   empty environment, and Deno's code and dependency-analysis caches are what keep a large
 *   file's start cheap (docs/footprint.md); a directory of our own is also removed with us;
 * - no update check: a CNI plugin must not try to reach the internet on every pod start;
 * - --no-config: a deno.json in the caller's working directory (a runtime's, a person's) is
 *   not ours and must not change how the bundle runs.
 */
export async function writeWrapper(path: string, bundle: string): Promise<void> {
  const cache = `${bundle.slice(0, bundle.lastIndexOf("/"))}/.deno-cache`;
  const script = [
    "#!/bin/sh",
    `export DENO_DIR="\${DENO_DIR:-${cache}}" DENO_NO_UPDATE_CHECK=1`,
    `exec "${Deno.execPath()}" run -A --quiet --no-prompt --no-config "${bundle}" "$@"`,
    "",
  ].join("\n");
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
}

async function build(): Promise<Artifact> {
  const binDir = await Deno.makeTempDir({ prefix: "weft-artifact-" });
  const bundle = `${binDir}/weft.js`;
  // WEFT_TEST_BUNDLE runs the tests (or a benchmark) against a file built elsewhere, e.g. an
  // older version's for a before/after measurement; otherwise the same build as `make bundle`
  const given = Deno.env.get("WEFT_TEST_BUNDLE");
  if (given) await Deno.copyFile(given, bundle);
  else await bundleProgram(bundle);
  const weft = `${binDir}/weft`;
  await writeWrapper(weft, bundle);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(binDir, { recursive: true });
    } catch {
      // already gone
    }
  });
  return { binDir, weft, bundle };
}

/** The bundled artifact (built on first use, then shared by every test in the process). */
export function artifact(): Promise<Artifact> {
  building ??= build();
  return building;
}
