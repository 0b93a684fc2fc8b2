/**
 * The artifact under test, built once per test process: scripts/bundle.ts of main.ts into one file
 * in a temporary directory with no source tree beside it, and an executable `weft` next to it
 * (the two-line wrapper a node gets where the compiled binary cannot be built). Kernel tests,
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

/** Writes the two-line wrapper that runs the bundle with this Deno. */
export async function writeWrapper(path: string, bundle: string): Promise<void> {
  // --no-config: a deno.json in the caller's working directory (a runtime's, a person's) is
  // not ours and must not change how the bundle runs
  const script = `#!/bin/sh\nexec "${Deno.execPath()}" run -A --quiet --no-prompt --no-config ` +
    `"${bundle}" "$@"\n`;
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
}

async function build(): Promise<Artifact> {
  const binDir = await Deno.makeTempDir({ prefix: "weft-artifact-" });
  const bundle = `${binDir}/weft.js`;
  // the same build as `make bundle`
  await bundleProgram(bundle);
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
