/**
 * What NetworkPolicy enforcement keeps in the agent's heap with 1,000 pods and 200 policies, and
 * how long one run of the engine takes when a policy or a pod changes. Prints tables, asserts
 * nothing.
 *
 * The fake API server runs as its own process; each measurement runs in a fresh process with
 * --expose-gc, against the heap after a first, discarded run of the same code:
 * - baseline: the cluster state alone (informers of Pods, Namespaces, NetworkPolicies, synced),
 *   which is what src/kube keeps for policy;
 * - weft: the cluster state plus the policy engine, its table built (kept as the rule set the
 *   kernel holds: an in-memory kernel here, so that the heap is the agent's alone), 10 pods
 *   attached on this node.
 * Then, in the weft process: 50 policy changes and 50 pod label changes, each timed from the
 * API write to the engine's kernel holding the new rule set.
 *
 *   deno run -A bench/policy_memory.ts [--pods N] [--policies N]
 */
import { AttachmentBook } from "../src/agent/policy_attachments.ts";
import { PolicyEngine } from "../src/agent/policy_engine.ts";
import type { PolicyKernel } from "../src/agent/policy_kernel.ts";
import { policyCluster } from "../src/agent/policy_wiring.ts";
import { KubeClient, startClusterState } from "../src/kube/mod.ts";
import type { CompiledRuleSet, RuleSetDiff } from "../src/policy/mod.ts";
import { applyRuleSetDiff } from "../src/policy/testing.ts";
import {
  measureInChild,
  option,
  percentile,
  startFakeKubeProcess,
} from "../tests/support/bench_support.ts";
import { appOf, policySpec } from "../tests/support/policy_workload.ts";

const PODS = Number(option("--pods", "1000"));
const POLICIES = Number(option("--policies", "200"));
const NAMESPACES = 20;
const LOCAL = 10;
const TOKEN = "bench-token";
const NODE = "node1";

function pod(i: number) {
  const namespace = `ns${i % NAMESPACES}`;
  const local = i < LOCAL;
  const ip = `10.47.${i >> 8}.${i & 255}`;
  return {
    metadata: { name: `pod${i}`, namespace, labels: { app: appOf(i), tier: "back" } },
    spec: {
      nodeName: local ? NODE : `node${2 + (i % 9)}`,
      containers: [{
        name: "main",
        ports: [{ name: "http", containerPort: 8080 }, { name: "metrics", containerPort: 9090 }],
      }],
    },
    status: local ? { phase: "Pending" } : { phase: "Running", podIP: ip, podIPs: [{ ip }] },
  };
}

/** The kernel as data: what the engine would have applied, nothing else. */
class HeldKernel implements PolicyKernel {
  ruleSet: CompiledRuleSet | undefined;
  applied = 0;
  tableExists() {
    return Promise.resolve(false);
  }
  replace(ruleSet: CompiledRuleSet) {
    this.ruleSet = ruleSet;
    this.applied++;
    return Promise.resolve(0);
  }
  patch(diff: RuleSetDiff) {
    this.ruleSet = applyRuleSetDiff(this.ruleSet!, diff);
    this.applied++;
    return Promise.resolve(0);
  }
  changePending() {
    return Promise.resolve();
  }
  counters() {
    return Promise.resolve(new Map<string, number>());
  }
  forgetConnections() {
    return Promise.resolve();
  }
}

function heapMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run the measurement with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) gc();
  return Deno.memoryUsage().heapUsed / 2 ** 20;
}

async function populate(api: KubeClient): Promise<void> {
  for (let n = 0; n < NAMESPACES; n++) {
    await api.request("POST", "/api/v1/namespaces", {
      body: { metadata: { name: `ns${n}`, labels: { team: `t${n % 4}` } } },
    });
  }
  for (let i = 0; i < PODS; i++) {
    const body = pod(i);
    await api.request("POST", `/api/v1/namespaces/${body.metadata.namespace}/pods`, { body });
  }
  for (let i = 0; i < POLICIES; i++) {
    await api.request(
      "POST",
      `/apis/networking.k8s.io/v1/namespaces/ns${i % NAMESPACES}/networkpolicies`,
      { body: { metadata: { name: `policy${i}` }, spec: policySpec(i) } },
    );
  }
}

/** Child process: one measurement, one JSON line on stdout. */
async function measure(kind: string, server: string): Promise<void> {
  const api = new KubeClient({ server, token: TOKEN, source: "bench" });
  const run = async () => {
    const stop = new AbortController();
    const state = startClusterState({ client: api, signal: stop.signal });
    await state.synced;
    if (kind === "baseline") return { stop, state, engine: undefined, kernel: undefined };
    const kernel = new HeldKernel();
    const engine = new PolicyEngine({
      node: NODE,
      cluster: policyCluster(state, api),
      kernel,
      book: await AttachmentBook.open(undefined),
      log: () => {},
    });
    await engine.start();
    for (let i = 0; i < LOCAL; i++) {
      await engine.attach({ containerID: `c${i}`, ifname: "eth0" }, `10.32.0.${i + 2}`, {
        namespace: `ns${i % NAMESPACES}`,
        name: `pod${i}`,
      });
    }
    return { stop, state, engine, kernel };
  };
  // a first run, thrown away, so that the difference below is what is kept, not compiled code
  const warm = await run();
  await warm.engine?.stop();
  warm.stop.abort();
  await warm.state.done;
  const before = heapMiB();
  const { stop, state, engine, kernel } = await run();
  const heap = heapMiB() - before;
  const rss = Deno.memoryUsage().rss / 2 ** 20;
  const timings: Record<string, number[]> = { policy: [], pod: [] };
  if (engine && kernel) {
    const until = async (check: () => boolean) => {
      const deadline = Date.now() + 10_000;
      while (!check()) {
        if (Date.now() > deadline) {
          throw new Error(`no engine run in 10 s: ${JSON.stringify(engine.snapshot().failure)}`);
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    for (let c = 0; c < 50; c++) {
      const i = 1 + ((c * 7) % (POLICIES - 1));
      if (i % 10 === 0) continue;
      const path = `/apis/networking.k8s.io/v1/namespaces/ns${i % NAMESPACES}/` +
        `networkpolicies/policy${i}`;
      const applied = kernel.applied;
      const sent = performance.now();
      await api.request("PUT", path, {
        body: { metadata: { name: `policy${i}` }, spec: policySpec(i, 20000 + c) },
      });
      await until(() => kernel.applied > applied);
      timings.policy.push(performance.now() - sent);
    }
    for (let c = 0; c < 50; c++) {
      const i = LOCAL + ((c * 37) % (PODS - LOCAL));
      const body = pod(i);
      body.metadata.labels.app = appOf(i + 1 + (c % 49)); // never its own app again
      // a relabelled pod may change no set at all: wait for the engine's run, not a patch
      const ran = engine.snapshot().state;
      const sent = performance.now();
      await api.request("PUT", `/api/v1/namespaces/${body.metadata.namespace}/pods/pod${i}`, {
        body,
      });
      await until(() => engine.snapshot().state !== ran);
      timings.pod.push(performance.now() - sent);
    }
  }
  await engine?.stop();
  stop.abort();
  await state.done;
  api.close();
  const sets = kernel?.ruleSet?.sets.length ?? 0;
  const elements = [...kernel?.ruleSet?.members.values() ?? []].reduce((n, m) => n + m.length, 0);
  console.log(JSON.stringify({ heap, rss, sets, elements, timings }));
}

function child(kind: string, server: string) {
  return measureInChild<Measurement>(new URL(import.meta.url), [
    "--measure",
    kind,
    "--server",
    server,
    "--pods",
    String(PODS),
    "--policies",
    String(POLICIES),
  ]);
}

interface Measurement {
  heap: number;
  rss: number;
  sets: number;
  elements: number;
  timings: Record<string, number[]>;
}

async function main() {
  const server = await startFakeKubeProcess(TOKEN);
  try {
    const url = server.url;
    const api = new KubeClient({ server: url, token: TOKEN, source: "bench" });
    await populate(api);
    api.close();
    const baseline = await child("baseline", url);
    const weft = await child("weft", url);
    console.log(
      `\nNetworkPolicy engine: ${PODS} pods (${LOCAL} on this node) in ${NAMESPACES} ` +
        `namespaces, ${POLICIES} policies; the table: ${weft.sets} sets, ${weft.elements} elements`,
    );
    console.log("| kept in the heap | heap MiB | process RSS MiB |");
    console.log("| --- | --- | --- |");
    console.log(
      `| baseline: cluster state (pods, namespaces, policies) | ${baseline.heap.toFixed(2)} | ` +
        `${baseline.rss.toFixed(1)} |`,
    );
    console.log(
      `| weft: cluster state + policy engine | ${weft.heap.toFixed(2)} | ${weft.rss.toFixed(1)} |`,
    );
    console.log(
      "\n| from the API write to the engine's run done (in memory, no nft) | p50 ms | p99 ms |",
    );
    console.log("| --- | --- | --- |");
    for (const [what, values] of Object.entries(weft.timings) as [string, number[]][]) {
      console.log(
        `| a ${what} changed | ${percentile(values, 50).toFixed(1)} | ` +
          `${percentile(values, 99).toFixed(1)} |`,
      );
    }
  } finally {
    await server.close();
  }
}

if (Deno.args.includes("--measure")) await measure(option("--measure", ""), option("--server", ""));
else await main();
