/**
 * NetworkPolicy at cluster size: how long a policy change in the API takes to be enforced on
 * every node, observed in the kernel, and what the agent's memory is. Prints tables, asserts
 * nothing.
 *
 * A lab of 3 nodes whose agents run on Kubernetes (the fake API server on the lab's underlay)
 * with 1,000 pods (30 of them real, 10 on each lab node, attached by the CNI plugin; the rest
 * API objects on 7 other nodes) in 20 namespaces and 200 policies. Then, one after another,
 * 100 changes: a policy's ingress port is set to a new number, and each node's `nft monitor` in
 * its namespace shows when the kernel holds the rule with that number. The times start just
 * before the write leaves the client (a process in the underlay) and are compared with the
 * baseline measured in the same run: when weft's own informer, in a node's namespace, receives
 * the same change (no agent can act before it knows).
 *
 * Memory: each agent's resident set (VmRSS), and against it the same node's agent restarted
 * with --no-network-policy in the same cluster.
 *
 *   deno run -A bench/policy_enforcement.ts [--changes N]   (root; uses the kernel-test lock's
 *   namespaces "wbpe-*": run it alone, as kernel tests are)
 */
import { option, percentile } from "../tests/support/bench_support.ts";
import { JsonLinesProcess } from "../tests/support/json_lines.ts";
import { UNDERLAY_HOST, waitFor } from "../tests/support/lab.ts";
import { PolicyLab } from "../tests/support/policy_lab.ts";
import { appOf, policySpec } from "../tests/support/policy_workload.ts";

const CHANGES = Number(option("--changes", "100"));
const NODES = 3;
const PODS = 1000;
const REAL_PER_NODE = 10;
const POLICIES = 200;
const NAMESPACES = 20;
const TOKEN = "lab-policy-token";
const SERVER = `http://${UNDERLAY_HOST}:6443`;
const ACTOR = new URL("../tests/support/kube_actor.ts", import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

const lab = await PolicyLab.create({ prefix: "wbpe", nodes: NODES, datapath: "fastdp" });
const writer = new JsonLinesProcess([
  "ip",
  "netns",
  "exec",
  lab.lab.underlay,
  Deno.execPath(),
  "run",
  "-A",
  ACTOR,
  "write",
  SERVER,
  TOKEN,
]);
const monitors: Deno.ChildProcess[] = [];
let watcher: JsonLinesProcess | undefined;
try {
  const write = async (method: string, path: string, body?: unknown) => {
    const answer = await writer.call({ method, path, body });
    if ((answer.status as number) >= 300) throw new Error(`${method} ${path}: ${answer.status}`);
    return answer.sent as number;
  };
  const started = performance.now();
  for (let n = 0; n < NAMESPACES; n++) await lab.addNamespace(`ns${n}`, { team: `t${n % 4}` });
  const ports = [{ name: "http", containerPort: 8080, protocol: "TCP" as const }, {
    name: "metrics",
    containerPort: 9090,
    protocol: "TCP" as const,
  }];
  for (let node = 1; node <= NODES; node++) {
    await Promise.all(Array.from({ length: REAL_PER_NODE }, (_, k) => {
      const i = (node - 1) * REAL_PER_NODE + k;
      return lab.addPod(`ns${i % NAMESPACES}`, `real${i}`, {
        node,
        labels: { app: appOf(i), tier: i % 2 ? "front" : "back" },
        ports,
      });
    }));
  }
  for (let i = NODES * REAL_PER_NODE; i < PODS; i++) {
    const namespace = `ns${i % NAMESPACES}`;
    const ip = `10.47.${i >> 8}.${i & 255}`;
    await write("POST", `/api/v1/namespaces/${namespace}/pods`, {
      metadata: { name: `pod${i}`, namespace, labels: { app: appOf(i), tier: "back" } },
      spec: { nodeName: `node${4 + (i % 7)}`, containers: [{ name: "main", ports }] },
      status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
    });
  }
  for (let i = 0; i < POLICIES; i++) {
    const namespace = `ns${i % NAMESPACES}`;
    await write("POST", `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`, {
      metadata: { name: `policy${i}`, namespace },
      spec: policySpec(i),
    });
  }
  await waitFor("every node to enforce the 200 policies", async () => {
    for (const node of lab.lab.nodes) {
      if ((await lab.policyStatus(node.index)).policies !== POLICIES) return false;
    }
    return true;
  }, { timeoutMs: 120_000 });
  const setupSeconds = (performance.now() - started) / 1000;

  // the kernel, node by node: when does a rule with this port appear?
  const seenAt = new Map<string, number>();
  for (const node of lab.lab.nodes) {
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", node.netns, "nft", "monitor", "rules"],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    monitors.push(child);
    (async () => {
      let buffer = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const t = now();
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          for (const match of line.matchAll(/tcp \. (2\d{4})\b/g)) {
            const key = `${node.index} ${match[1]}`;
            if (!seenAt.has(key)) seenAt.set(key, t);
          }
        }
      }
    })();
  }
  // the floor: weft's informer in node1's namespace
  const watchedAt = new Map<number, number>();
  const synced = Promise.withResolvers<void>();
  watcher = new JsonLinesProcess(
    ["ip", "netns", "exec", lab.lab.node(1).netns, Deno.execPath(), "run", "-A", ACTOR, "watch"]
      .concat([SERVER, TOKEN]),
    {
      onLine: (line) => {
        if (line.synced) synced.resolve();
        const spec = line.spec as ReturnType<typeof policySpec> | undefined;
        const port = spec?.ingress?.[0]?.ports?.[0]?.port;
        if (typeof port === "number" && port >= 20000 && !watchedAt.has(port)) {
          watchedAt.set(port, line.t as number);
        }
      },
    },
  );
  await synced.promise;
  await new Promise((r) => setTimeout(r, 500));

  const enforced: number[] = [];
  const watched: number[] = [];
  for (let c = 0; c < CHANGES; c++) {
    let i = (c * 7) % POLICIES;
    if (i % 10 === 0) i++; // a default deny has no port to change
    const port = 20000 + c;
    const sent = await write(
      "PUT",
      `/apis/networking.k8s.io/v1/namespaces/ns${i % NAMESPACES}/networkpolicies/policy${i}`,
      {
        metadata: { name: `policy${i}`, namespace: `ns${i % NAMESPACES}` },
        spec: policySpec(i, port),
      },
    );
    await waitFor(`change ${c} in every node's kernel`, () =>
      Promise.resolve(
        lab.lab.nodes.every((n) => seenAt.has(`${n.index} ${port}`)) && watchedAt.has(port),
      ), { timeoutMs: 30_000, intervalMs: 5 });
    enforced.push(Math.max(...lab.lab.nodes.map((n) => seenAt.get(`${n.index} ${port}`)!)) - sent);
    watched.push(watchedAt.get(port)! - sent);
    await new Promise((r) => setTimeout(r, 50));
  }

  const withPolicy = await Promise.all(lab.lab.nodes.map((n) => rssMiB(n.agent!.pid)));
  lab.lab.node(1).extraArgs.push("--no-network-policy");
  await lab.lab.restartAgent(1);
  await new Promise((r) => setTimeout(r, 5000));
  const without = await rssMiB(lab.lab.node(1).agent!.pid);

  console.log(
    `\nNetworkPolicy: ${PODS} pods (${NODES * REAL_PER_NODE} attached on ${NODES} lab nodes), ` +
      `${NAMESPACES} namespaces, ${POLICIES} policies; ${CHANGES} policy changes ` +
      `(set up in ${setupSeconds.toFixed(0)} s)`,
  );
  console.log("| from the API write to | p50 ms | p99 ms | max ms |");
  console.log("| --- | --- | --- | --- |");
  for (
    const [what, values] of [
      ["baseline: weft's informer on a node has the change", watched],
      [`enforced in the kernel of every node (${NODES})`, enforced],
    ] as const
  ) {
    console.log(
      `| ${what} | ${percentile(values, 50).toFixed(1)} | ${percentile(values, 99).toFixed(1)} | ` +
        `${Math.max(...values).toFixed(1)} |`,
    );
  }
  console.log("\n| agent | RSS MiB |");
  console.log("| --- | --- |");
  withPolicy.forEach((mib, i) => console.log(`| node${i + 1}, enforcing | ${mib.toFixed(1)} |`));
  console.log(`| baseline: node1, --no-network-policy | ${without.toFixed(1)} |`);
} finally {
  await watcher?.close();
  for (const monitor of monitors) {
    monitor.kill("SIGKILL");
    await monitor.status;
  }
  await writer.close();
  await lab.destroy();
}
