/**
 * `make bundle`: the whole program as ONE JavaScript file, dist/weft.js, that runs from any
 * directory with `deno run -A dist/weft.js` (no source tree, no npm cache). `make build`
 * compiles this same file, so the binary runs exactly the JavaScript the tests ran.
 *
 *   deno run -A scripts/bundle.ts [-o dist/weft.js] [--no-minify]
 *
 * Why not `deno bundle` alone: its output imports every `node:` built-in the program uses at
 * the top of the file, and Deno evaluates those before the first line of ours runs. Loading
 * `node:module` (which `deno bundle` adds for the npm packages' `require`) or `node:crypto`
 * starts Deno's Node compatibility layer: 20-45 ms and several MiB per process, paid by every
 * CNI ADD although the plugin uses none of it. Code splitting would keep the plugin apart but
 * ships a directory of chunks, not one file. So the bundle is rewritten here: each static
 * `node:` import becomes a plain binding that one loader fills, and `main.ts` calls that loader
 * (through `Symbol.for("weft.loadNodeBuiltins")`) before it imports the agent, the CLI or the
 * sleeve worker; the plugin never calls it. The rewrite is checked: a `node:` import left over
 * fails the build, and tests/artifact_test.ts checks that the plugin loads no Node module.
 * See docs/footprint.md for the options measured.
 */

export const LOADER_SYMBOL = "weft.loadNodeBuiltins";

export interface BundleOptions {
  /** Entry module (default: main.ts at the repository root). */
  entry?: string;
  /**
   * Minify (default true), keeping function and class names so stack traces stay readable:
   * half the bytes, a faster start without Deno's caches, and about 7 MiB less resident when
   * the userspace path's two worker isolates each load the file too (docs/footprint.md).
   */
  minify?: boolean;
}

const repoRoot = new URL("../", import.meta.url).pathname;

/** Bundles `options.entry` into `output` with node: built-ins loaded on demand. */
export async function bundle(output: string, options: BundleOptions = {}): Promise<void> {
  // deno bundle runs from the repository root: make the caller's relative path absolute first
  if (!output.startsWith("/")) output = `${Deno.cwd()}/${output}`;
  const raw = `${output}.raw.js`;
  const args = [
    "bundle",
    "--quiet",
    ...(options.minify ?? true ? ["--minify", "--keep-names"] : []),
  ];
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args, options.entry ?? `${repoRoot}main.ts`, "-o", raw],
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`deno bundle failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  try {
    await Deno.writeTextFile(output, lazyNodeBuiltins(await Deno.readTextFile(raw)));
  } finally {
    await Deno.remove(raw).catch(() => {});
  }
}

/**
 * One static import as esbuild prints it: at the start of a line, or right after `;` or `}`
 * (minified output puts statements back to back, so the lead is looked behind, not consumed).
 */
const STATIC_IMPORT =
  /(?<=^|[;}])[ \t]*import\s*(?:([\w$]+)\s*,?\s*)?(?:\*\s*as\s+([\w$]+)\s*)?(?:\{([^}]*)\}\s*)?(?:from\s*)?"(node:[^"]+)"\s*;/gm;
/** The `require` deno bundle defines for CommonJS packages, from `node:module`. */
const CREATE_REQUIRE = /var ([\w$]+) ?= ?__deno_internal_createRequire\(import\.meta\.url\);/;

/**
 * Rewrites a `deno bundle` output so that no `node:` module is imported at load time: every
 * static import becomes a `var` per binding, filled by one async loader registered under
 * `Symbol.for(LOADER_SYMBOL)`; the CommonJS `require` becomes a function that creates the real
 * one on first call (deno bundle's, or a `require` for esbuild's shim when deno bundle made
 * none). Throws when an import of `node:` is left that it could not rewrite.
 */
export function lazyNodeBuiltins(source: string): string {
  const bindings: string[] = [];
  const loads: string[] = [];
  let text = source.replace(
    STATIC_IMPORT,
    (_match, defaultName?: string, namespace?: string, named?: string, spec = "") => {
      const module = `(await import(${JSON.stringify(spec)}))`;
      if (defaultName) {
        bindings.push(defaultName);
        loads.push(`${defaultName} = ${module}.default;`);
      }
      if (namespace) {
        bindings.push(namespace);
        loads.push(`${namespace} = ${module};`);
      }
      const pairs = (named ?? "").split(",").map((part) => part.trim()).filter(Boolean)
        .map((part) => {
          const [imported, local = imported] = part.split(/\s+as\s+/);
          return { imported, local };
        });
      if (pairs.length) {
        bindings.push(...pairs.map((p) => p.local));
        const pattern = pairs.map((p) => `${JSON.stringify(p.imported)}: ${p.local}`).join(", ");
        loads.push(`({ ${pattern} } = ${module});`);
      }
      if (!defaultName && !namespace && !pairs.length) {
        loads.push(`await import(${JSON.stringify(spec)});`);
      }
      return "";
    },
  );
  const requireDefinition = CREATE_REQUIRE.exec(text);
  const lines: string[] = [];
  if (requireDefinition) {
    const name = requireDefinition[1];
    text = text.replace(
      requireDefinition[0],
      `var __weftRequire; var ${name} = (id) => ` +
        `(__weftRequire ??= __deno_internal_createRequire(import.meta.url))(id);`,
    );
  } else if (text.includes("Dynamic require of")) {
    // With --keep-names deno bundle leaves esbuild's own `require` shim in place, which uses a
    // `require` in scope when there is one: give it one, made on first call.
    bindings.push("__weftCreateRequire", "__weftRequire");
    loads.push(`({ "createRequire": __weftCreateRequire } = (await import("node:module")));`);
    lines.push(
      "var require = (id) => (__weftRequire ??= __weftCreateRequire(import.meta.url))(id);",
    );
  }
  const left = /(^|[;}])[ \t]*import\s*[^;(]*?["']node:[^"']+["'][^;]*;/m.exec(text);
  if (left) throw new Error(`Cannot make this node: import lazy: ${left[0].trim()}`);
  const header = [
    ...(bindings.length ? [`var ${[...new Set(bindings)].join(", ")};`] : []),
    `globalThis[Symbol.for(${JSON.stringify(LOADER_SYMBOL)})] = async () => {`,
    ...loads.map((line) => `  ${line}`),
    `};`,
    ...lines,
  ];
  return `${header.join("\n")}\n${text}`;
}

if (import.meta.main) {
  const index = Deno.args.indexOf("-o");
  const output = index >= 0 ? Deno.args[index + 1] : "dist/weft.js";
  const slash = output.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(output.slice(0, slash), { recursive: true });
  await bundle(output, { minify: !Deno.args.includes("--no-minify") });
}
