/**
 * The layout is the architecture: this test keeps the dependency direction the docs promise.
 * `net` imports nothing of ours; `ipam`, `mesh`, `datapath` import only `net`; mesh never
 * imports datapath or ipam (the agent wires them); `api` does not know the agent; the CNI
 * plugin's code reaches no npm package and no `node:` module at all, which keeps its start-up
 * (and so every pod's ADD) fast.
 */
import assert from "node:assert/strict";

const root = new URL("../src/", import.meta.url).pathname;

const allowed: Record<string, string[]> = {
  net: [],
  ipam: ["net"],
  mesh: ["net"],
  datapath: ["net"],
  kube: ["net"],
  install: ["net"],
  policy: ["net"],
  api: ["net"],
  cni: ["net", "api"],
  agent: ["net", "ipam", "mesh", "datapath", "kube", "policy", "api", "install"],
  cli: ["net", "agent", "api", "install", "kube"],
};

async function* sourceFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) yield path;
  }
}

function importsOf(text: string): string[] {
  return [
    ...text.matchAll(
      /(?:import|export)[^"']*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g,
    ),
  ]
    .map((m) => m[1] ?? m[2]);
}

Deno.test("source folders import only what the architecture allows", async () => {
  const violations: string[] = [];
  for await (const file of sourceFiles(root)) {
    const relative = file.slice(root.length);
    const area = relative.includes("/") ? relative.split("/")[0] : "";
    if (!(area in allowed)) continue;
    for (const spec of importsOf(await Deno.readTextFile(file))) {
      if (!spec.startsWith(".")) continue;
      const target = new URL(spec, `file://${file}`).pathname;
      if (!target.startsWith(root)) continue;
      const targetRelative = target.slice(root.length);
      const targetArea = targetRelative.includes("/") ? targetRelative.split("/")[0] : "";
      if (targetArea === area || targetArea === "") continue;
      if (!allowed[area].includes(targetArea)) {
        violations.push(
          `${relative} imports ${targetRelative}: ${area} may not depend on ${targetArea}`,
        );
      } else if (!targetRelative.endsWith("/mod.ts") && targetArea !== "net") {
        violations.push(
          `${relative} imports ${targetRelative}: reach other folders through their mod.ts`,
        );
      }
    }
  }
  assert.deepEqual(violations, []);
});

/** Specifiers a file loads at run time (`import type` is erased, so it loads nothing). */
function runtimeImportsOf(text: string): string[] {
  return importsOf(text.replace(/^\s*(?:import|export)\s+type\b[^;]*;/gm, ""));
}

Deno.test("the CNI plugin's code loads no npm package and no node: module", async () => {
  // Everything main.ts runs for CNI_COMMAND, followed through every relative import. The Node
  // compatibility layer alone costs tens of milliseconds per process (docs/footprint.md).
  const seen = new Set<string>();
  const queue = [`${root}cni/mod.ts`];
  const violations: string[] = [];
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of runtimeImportsOf(await Deno.readTextFile(file))) {
      if (spec.startsWith(".")) queue.push(new URL(spec, `file://${file}`).pathname);
      else violations.push(`${file.slice(root.length)} imports ${spec}`);
    }
  }
  assert.ok(seen.has(`${root}net/netlink.ts`), "the walk reached the plugin's kernel code");
  assert.deepEqual(violations, []);
});
