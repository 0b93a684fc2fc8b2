/**
 * NetworkPolicy compile and apply costs on one node of a 1,000-pod, 200-policy cluster. Prints
 * a table, asserts nothing.
 *
 * Baseline (measured in the same run): what recomputing everything and replacing the table on
 * every change costs (full compile + full script, then `nft -f` of it). Against it, what weft
 * does per event: a pod added (members recomputed with the cached plan, diff, patch script) and a
 * policy changed (compile, diff, patch script), each then applied with `nft -f` to a live table
 * in a namespace of its own (`wtpol-bench`; run it alone, as kernel tests, under the lock).
 *
 *   deno run -A bench/policy_compile.ts [--pods N] [--policies N] [--runs N]
 */
import { applyNft } from "../src/net/nft.ts";
import { run } from "../src/net/exec.ts";
import {
  compile,
  type CompiledRuleSet,
  computeMembers,
  diffRuleSets,
  type NetworkPolicy,
  planRules,
  type Pod,
  renderDiff,
  renderRuleSet,
} from "../src/policy/mod.ts";

const args = Deno.args;
function option(name: string, fallback: string): number {
  const at = args.indexOf(name);
  return Number(at >= 0 ? args[at + 1] : fallback);
}
const PODS = option("--pods", "1000");
const POLICIES = option("--policies", "200");
const RUNS = option("--runs", "30");
const NAMESPACES = 20;
const NODES = 10;
const NETNS = "wtpol-bench";

function pod(i: number): Pod {
  return {
    namespace: `ns${i % NAMESPACES}`,
    name: `pod${i}`,
    labels: { app: `app${i % 50}`, tier: i % 2 ? "front" : "back" },
    ip: `10.32.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    node: `node${i % NODES}`,
    ports: [{ name: "http", containerPort: 8080 }, { name: "metrics", containerPort: 9090 }],
  };
}

/** A mix of what clusters run: default deny, app-to-app, namespace peers, named ports, blocks. */
function policyAt(i: number): NetworkPolicy {
  const namespace = `ns${i % NAMESPACES}`;
  const app = `app${i % 50}`;
  const spec: NetworkPolicy["spec"] = i % 10 === 0
    ? { podSelector: {}, policyTypes: ["Ingress", "Egress"] }
    : {
      podSelector: { matchLabels: { app } },
      ingress: [{
        from: [
          { podSelector: { matchLabels: { app: `app${(i + 1) % 50}` } } },
          {
            namespaceSelector: { matchLabels: { team: `t${i % 5}` } },
            podSelector: { matchLabels: { tier: "front" } },
          },
        ],
        ports: [{ port: "http" }, { port: 443 }, { port: 8000, endPort: 8100 }],
      }],
      ...(i % 3 === 0
        ? {
          egress: [{
            to: [{
              ipBlock: { cidr: "0.0.0.0/0", except: ["10.32.0.0/12", `192.168.${i % 256}.0/24`] },
            }],
            ports: [{ port: 53, protocol: "UDP" as const }],
          }],
        }
        : {}),
    };
  return { metadata: { namespace, name: `policy${i}` }, spec };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function time<T>(f: () => T): [number, T] {
  const start = performance.now();
  const value = f();
  return [performance.now() - start, value];
}

async function timeAsync(f: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await f();
  return performance.now() - start;
}

const pods = Array.from({ length: PODS }, (_, i) => pod(i));
const namespaces = Array.from(
  { length: NAMESPACES },
  (_, i) => ({ name: `ns${i}`, labels: { team: `t${i % 5}` } }),
);
const policies = Array.from({ length: POLICIES }, (_, i) => policyAt(i));
const node = "node0";
const options = { node, log: { perSecond: 5 } };

const rows: { what: string; times: number[]; kernel: number[]; lines: number; bytes: number }[] =
  [];
let kernelOk = Deno.uid?.() === 0;
if (kernelOk) {
  await run(["ip", "netns", "del", NETNS], { allowFailure: true });
  kernelOk = (await run(["ip", "netns", "add", NETNS], { allowFailure: true })).code === 0;
}
try {
  const apply = async (script: string) => {
    if (kernelOk && script) await applyNft(script, { netns: NETNS });
  };
  let current: CompiledRuleSet = compile({ policies, pods, namespaces }, options);
  await apply(renderRuleSet(current));

  const measure = async (what: string, step: (i: number) => [CompiledRuleSet, string]) => {
    const row = { what, times: [] as number[], kernel: [] as number[], lines: 0, bytes: 0 };
    for (let i = 0; i < RUNS; i++) {
      const [ms, [next, script]] = time(() => step(i));
      row.times.push(ms);
      row.lines = script.split("\n").filter(Boolean).length;
      row.bytes = script.length;
      if (kernelOk) row.kernel.push(await timeAsync(() => apply(script)));
      current = next;
    }
    rows.push(row);
  };

  await measure("baseline: compile all, replace table", () => {
    const next = compile({ policies, pods, namespaces }, options);
    return [next, renderRuleSet(next)];
  });
  const plan = planRules(policies, options);
  await measure("weft: a pod added (members, diff, patch)", (i) => {
    const more = [...pods, { ...pod(PODS + i), node, ip: `10.33.0.${i + 1}` }];
    const next = { ...current, members: computeMembers(plan, { pods: more, namespaces }, options) };
    return [next, renderDiff(diffRuleSets(current, next))];
  });
  await measure("weft: a policy changed (compile, diff, patch)", (i) => {
    const changed = policies.map((p, j) =>
      j === 1 ? { ...p, spec: { ...p.spec, ingress: [{ ports: [{ port: 1000 + (i % 2) }] }] } } : p
    );
    const next = compile({ policies: changed, pods, namespaces }, options);
    return [next, renderDiff(diffRuleSets(current, next))];
  });
} finally {
  if (kernelOk) await run(["ip", "netns", "del", NETNS], { allowFailure: true });
}

console.log(
  `${PODS} pods, ${POLICIES} policies, ${NAMESPACES} namespaces, node ${node} of ${NODES}; ${RUNS} runs each`,
);
console.log(
  "| operation | compute p50 ms | compute p99 ms | nft -f p50 ms | nft -f p99 ms | script lines | script KiB |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const k = (p: number) => r.kernel.length ? percentile(r.kernel, p).toFixed(1) : "n/a";
  console.log(
    `| ${r.what} | ${percentile(r.times, 50).toFixed(1)} | ${
      percentile(r.times, 99).toFixed(1)
    } | ${k(50)} | ${k(99)} | ${r.lines} | ${(r.bytes / 1024).toFixed(1)} |`,
  );
}
if (!kernelOk) console.log("(not root or no namespaces: kernel columns skipped)");
