/**
 * The shipped file itself (scripts/bundle.ts): it runs from a directory with no source tree,
 * and the CNI plugin's start-up loads none of the Node compatibility layer, which is what
 * keeps every pod's ADD and DEL cheap. The other roles still get their `node:` built-ins.
 * No namespaces: the plugin only answers VERSION and refuses a bad ADD here.
 */
import assert from "node:assert/strict";
import { lazyNodeBuiltins, LOADER_SYMBOL } from "../scripts/bundle.ts";
import { artifact } from "./support/artifact.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the bundle as the launcher does, from an empty directory, with Deno's debug log on. */
async function runBundle(
  options: { args?: string[]; env?: Record<string, string>; stdin?: string },
): Promise<Run> {
  const { bundle } = await artifact();
  const cwd = await Deno.makeTempDir({ prefix: "weft-artifact-cwd-" });
  // a writable DENO_DIR of its own: Deno then logs each module it loads, cached or not
  const denoDir = await Deno.makeTempDir({ prefix: "weft-artifact-denodir-" });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-prompt",
        "--no-config",
        "--log-level=debug",
        bundle,
        ...(options.args ?? []),
      ],
      cwd,
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", ...options.env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin ?? ""));
    await writer.close();
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  } finally {
    await Deno.remove(cwd, { recursive: true });
    await Deno.remove(denoDir, { recursive: true });
  }
}

/** The Node compatibility modules Deno loaded (its debug log names each `ext:deno_node/...`). */
function nodeModulesLoaded(stderr: string): string[] {
  return [...new Set([...stderr.matchAll(/ext:deno_node\/[^\s,]+/g)].map((m) => m[0]))];
}

Deno.test("artifact: the plugin answers from an empty directory and loads no Node module", async () => {
  const version = await runBundle({
    env: { CNI_COMMAND: "VERSION" },
    stdin: '{"cniVersion":"1.0.0"}',
  });
  assert.equal(version.code, 0, version.stderr.slice(-2000));
  assert.equal(JSON.parse(version.stdout).cniVersion, "1.0.0");
  assert.deepEqual(nodeModulesLoaded(version.stderr), []);
  // an ADD that fails at the netns check runs the handler table, config parsing and the error
  // path: still nothing of Node
  const add = await runBundle({
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/nonexistent/netns",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
    },
    stdin: '{"cniVersion":"1.1.0","name":"weft","type":"weft"}',
  });
  assert.equal(JSON.parse(add.stdout).code, 3, add.stdout);
  assert.deepEqual(nodeModulesLoaded(add.stderr), []);
});

Deno.test("artifact: the plugin's HTTP call to the agent loads no Node module either", async () => {
  // a stand-in agent on loopback: STATUS makes the plugin's one kind of request, with its
  // deadline (the global setTimeout would load node:timers and the whole layer with it)
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ ready: true }),
  );
  try {
    const status = await runBundle({
      env: { CNI_COMMAND: "STATUS", CNI_PATH: "/opt/cni/bin" },
      stdin: JSON.stringify({
        cniVersion: "1.1.0",
        name: "weft",
        type: "weft",
        agent: `127.0.0.1:${server.addr.port}`,
      }),
    });
    assert.deepEqual([status.code, status.stdout], [0, ""], status.stderr.slice(-2000));
    assert.deepEqual(nodeModulesLoaded(status.stderr), []);
  } finally {
    await server.shutdown();
  }
});

Deno.test("artifact: the CLI loads its node: built-ins on demand and works", async () => {
  const help = await runBundle({ args: ["--help"] });
  assert.equal(help.code, 0, help.stderr.slice(-2000));
  assert.match(help.stdout, /Usage: weft/);
  // commander is CommonJS: its require() of node:events and friends went through the loader
  assert.ok(nodeModulesLoaded(help.stderr).length > 0, "the CLI did load Node modules");
});

Deno.test("artifact: the shipped file imports no node: module statically", async () => {
  const text = await Deno.readTextFile((await artifact()).bundle);
  assert.doesNotMatch(text, /(^|[;}])[ \t]*import\s*[^;(]*?["']node:[^"']+["'][^;]*;/m);
  assert.match(text, new RegExp(`Symbol\\.for\\("${LOADER_SYMBOL.replaceAll(".", "\\.")}"\\)`));
});

Deno.test("bundle rewrite: every import shape becomes a binding the loader fills", async () => {
  const source = [
    'import { createRequire as __deno_internal_createRequire } from "node:module";',
    "var __require = __deno_internal_createRequire(import.meta.url);",
    'import { createHash, randomBytes as random2 } from "node:crypto";',
    'import{Buffer as B}from"node:buffer";import{cpus as c}from"node:os";function f(){}import * as os from "node:os";',
    'import path, { sep } from "node:path";',
    'import "node:process";',
    "export const check = () => [typeof createHash, typeof random2, typeof B, typeof os?.cpus,",
    "  typeof path?.join, sep, typeof __require];",
    'export const events = () => typeof __require("node:events").EventEmitter;',
  ].join("\n");
  const rewritten = lazyNodeBuiltins(source);
  assert.doesNotMatch(rewritten, /^import/m);
  // a file, as the bundle is: createRequire wants a file URL
  const file = await Deno.makeTempFile({ prefix: "weft-rewrite-", suffix: ".js" });
  await Deno.writeTextFile(file, rewritten);
  const module = await import(`file://${file}`).finally(() => Deno.remove(file));
  assert.deepEqual(module.check().slice(0, 6), [
    "undefined",
    "undefined",
    "undefined",
    "undefined",
    "undefined",
    undefined,
  ]);
  const load = (globalThis as Record<symbol, () => Promise<void>>)[Symbol.for(LOADER_SYMBOL)];
  await load();
  assert.deepEqual(module.check(), [
    "function",
    "function",
    "function",
    "function",
    "function",
    "/",
    "function",
  ]);
  assert.equal(module.events(), "function");
});

Deno.test("bundle rewrite: esbuild's own require shim gets a require made on first call", async () => {
  // what deno bundle --minify --keep-names leaves: esbuild's shim, no createRequire of Deno's
  const source = [
    'var shim = ((n) => typeof require < "u" ? require : n)(function (n) {',
    "  throw Error('Dynamic require of \"' + n + '\" is not supported');",
    "});",
    'export const events = () => typeof shim("node:events").EventEmitter;',
  ].join("\n");
  const file = await Deno.makeTempFile({ prefix: "weft-rewrite-", suffix: ".js" });
  await Deno.writeTextFile(file, lazyNodeBuiltins(source));
  const module = await import(`file://${file}`).finally(() => Deno.remove(file));
  const load = (globalThis as Record<symbol, () => Promise<void>>)[Symbol.for(LOADER_SYMBOL)];
  await load();
  assert.equal(module.events(), "function");
});

Deno.test("bundle rewrite: an import it cannot rewrite fails the build", () => {
  assert.throws(
    () =>
      lazyNodeBuiltins('import { a } from "./x.js"; import def, * as ns from "node:fs" assert {};'),
    /Cannot make this node: import lazy/,
  );
});
