/**
 * The NetworkPolicy renderer against the kernel, in namespaces of its own (`wtpol-…`):
 * every case of the table, on each node, renders a script that nft accepts in check mode; and
 * a diff applied to a live table leaves exactly what the full script for the new state builds
 * (compared as `nft -j list table` with handles and counter values set aside), for pod churn,
 * policy changes and a seeded random walk.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { run } from "../src/net/exec.ts";
import { applyNft, listTable } from "../src/net/nft.ts";
import {
  compile,
  type CompiledRuleSet,
  diffRuleSets,
  isElementOnly,
  renderDiff,
  renderRuleSet,
} from "../src/policy/mod.ts";
import { labels, NODES, policy, xyzCluster } from "../src/policy/testing.ts";
import { NETPOL_CASES } from "../src/policy/testing_cases.ts";
import { clusterState } from "../src/policy/testing_arbitrary.ts";
import { addNamespace } from "./support/netns.ts";
import { sweepLab } from "./support/datapath_lab.ts";

const PREFIX = "wtpol";
const LIVE = `${PREFIX}-live`;
const FRESH = `${PREFIX}-fresh`;
await sweepLab(PREFIX);

/** The table as the kernel lists it, minus what differs between equal tables. */
async function kernelView(netns: string): Promise<string[]> {
  const table = await listTable("inet", "weft-policy", { netns });
  assert.ok(table, `table inet weft-policy exists in ${netns}`);
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === "handle" || k === "packets" || k === "bytes") continue;
      out[k] = k === "elem" ? (v as unknown[]).map((e) => JSON.stringify(e)).sort() : strip(v);
    }
    return out;
  };
  const seen = new Map<string, number>();
  return table.raw.map((object) => {
    const [kind, body] = Object.entries(object)[0] as [string, Record<string, unknown>];
    // Rules keep their order within a chain; every other object is keyed by its name.
    let key = `${kind} ${body.name}`;
    if (kind === "rule") {
      const n = (seen.get(String(body.chain)) ?? 0) + 1;
      seen.set(String(body.chain), n);
      key = `rule ${body.chain} ${String(n).padStart(4, "0")}`;
    }
    return `${key} ${JSON.stringify(strip(body))}`;
  }).sort();
}

async function resetNamespaces() {
  await sweepLab(PREFIX);
  await addNamespace(LIVE);
  await addNamespace(FRESH);
}

/** Applies the diff before -> after to the live table and compares it with a fresh build. */
async function checkDiff(before: CompiledRuleSet, after: CompiledRuleSet, what: string) {
  const script = renderDiff(diffRuleSets(before, after));
  if (script) await applyNft(script, { netns: LIVE });
  await applyNft(renderRuleSet(after), { netns: FRESH });
  assert.deepEqual(await kernelView(LIVE), await kernelView(FRESH), `${what}:\n${script}`);
}

Deno.test("policy nft: every case's script passes nft's check on each node", async () => {
  await resetNamespaces();
  try {
    // One check run for all: each case and node renders into a table of its own.
    const parts: string[] = [];
    NETPOL_CASES.forEach((c, i) => {
      const base = xyzCluster();
      const state = {
        policies: c.policies,
        pods: c.pods ? c.pods(base.pods) : base.pods,
        namespaces: c.namespaces ? c.namespaces(base.namespaces) : base.namespaces,
      };
      for (const node of NODES) {
        const ruleSet = compile(state, { node, log: { perSecond: 10 } });
        parts.push(
          `# case: ${c.name} (${node})`,
          renderRuleSet(ruleSet, { table: `case${i}-${node}` }),
        );
      }
    });
    const script = parts.join("\n");
    const result = await run(["ip", "netns", "exec", LIVE, "nft", "-c", "-f", "-"], {
      stdin: script,
      allowFailure: true,
    });
    // nft names the line it refused; say which case it belongs to.
    const lines = script.split("\n");
    const where = [...result.stderr.matchAll(/:(\d+):\d+-\d+: Error/g)].map(([, n]) => {
      const line = Number(n) - 1;
      const heading = lines.slice(0, line + 1).findLast((l) => l.startsWith("# case: "));
      return `${heading}: ${lines[line]}`;
    });
    assert.equal(result.code, 0, `${result.stderr}\n${where.join("\n")}`);
    assert.equal(parts.length, NETPOL_CASES.length * NODES.length * 2);
  } finally {
    await sweepLab(PREFIX);
  }
});

Deno.test("policy nft: diffs applied to a live table equal a fresh build", async (t) => {
  await resetNamespaces();
  try {
    const cluster = xyzCluster();
    const fromY = policy("x", "from-y", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }) }, {
          ipBlock: { cidr: "192.168.0.0/16", except: ["192.168.3.0/24"] },
        }],
        ports: [{ port: "serve-80-tcp" }, { port: 81, endPort: 85 }, { protocol: "SCTP" }],
      }],
    });
    const egress = policy("x", "egress", {
      policyTypes: ["Egress"],
      egress: [{ to: [{ podSelector: {} }], ports: [{ port: 53, protocol: "UDP" }] }],
    });
    const at = (policies = [fromY, egress], pods = cluster.pods, pending: string[] = []) =>
      compile({ policies, pods, namespaces: cluster.namespaces }, {
        node: "n1",
        pending,
        log: { perSecond: 5 },
      });
    let current = at();
    await applyNft(renderRuleSet(current), { netns: LIVE });
    const step = async (next: CompiledRuleSet, what: string) => {
      await t.step(what, async () => {
        await checkDiff(current, next, what);
        current = next;
      });
    };

    const churned = cluster.pods.filter((p) => p.ip !== "10.32.1.3" && p.ip !== "10.32.2.2")
      .concat([{ ...cluster.pods[0], name: "d", ip: "10.32.1.4", labels: { pod: "a" } }]);
    assert.ok(isElementOnly(diffRuleSets(current, at(undefined, churned))));
    await step(at(undefined, churned), "pods come and go: elements only");
    await step(at(undefined, churned, ["10.32.1.9"]), "a pod not known yet is pending");
    await step(at([fromY], churned), "a policy is deleted");
    await step(at([fromY, egress, policy("y", "deny", {})], churned), "two policies are added");
    await step(
      at([policy("x", "from-y", { ...fromY.spec, ingress: [{}] }), egress], churned),
      "a policy's rules change",
    );
    await step(at([], cluster.pods), "every policy is deleted");
  } finally {
    await sweepLab(PREFIX);
  }
});

Deno.test("policy nft: a seeded random walk of cluster states, diff by diff", async () => {
  await resetNamespaces();
  try {
    const states = fc.sample(clusterState, { numRuns: 25, seed: 42 });
    let current = compile(states[0], { node: "n1" });
    await applyNft(renderRuleSet(current), { netns: LIVE });
    for (const [i, state] of states.slice(1).entries()) {
      const next = compile(state, { node: "n1" });
      await checkDiff(current, next, `step ${i + 1}`);
      current = next;
    }
  } finally {
    await sweepLab(PREFIX);
  }
});
