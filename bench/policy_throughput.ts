/**
 * Pod-to-pod TCP throughput across two nodes (kernel VXLAN) with 100 NetworkPolicies selecting
 * both pods, against none, in the same run. Prints a table, asserts nothing.
 *
 * Two lab nodes on Kubernetes (the fake API server), a client pod on node1 and a server pod on
 * node2 (iperf3, 3 s per transfer). The policies: 50 isolate the server for ingress, each
 * allowing the client on TCP 5201 (iperf3) among other ports, 50 isolate the client for egress,
 * each allowing the server likewise. Transfers alternate: none, 100, none, 100, ..., so a drift
 * of the machine's load hits both sides alike; the table shows the median of each.
 *
 *   deno run -A bench/policy_throughput.ts [--rounds N]   (root; lab namespaces "wbpt-*")
 */
import type { NetworkPolicy } from "../src/policy/mod.ts";
import { option } from "../tests/support/bench_support.ts";
import { tcpTransfer } from "../tests/support/lab.ts";
import { PolicyLab } from "../tests/support/policy_lab.ts";

const ROUNDS = Number(option("--rounds", "5"));
const SECONDS = 3;

function policies(): NetworkPolicy[] {
  return Array.from({ length: 100 }, (_, i): NetworkPolicy => {
    const server = i % 2 === 0;
    const peer = { podSelector: { matchLabels: { role: server ? "client" : "server" } } };
    const ports = [{ protocol: "TCP" as const, port: 5201 }, {
      protocol: "TCP" as const,
      port: 6000 + i,
    }];
    return {
      metadata: { namespace: "bench", name: `${server ? "server" : "client"}-${i}` },
      spec: {
        podSelector: { matchLabels: { role: server ? "server" : "client" } },
        policyTypes: [server ? "Ingress" : "Egress"],
        ...(server ? { ingress: [{ from: [peer], ports }] } : { egress: [{ to: [peer], ports }] }),
      },
    };
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const lab = await PolicyLab.create({ prefix: "wbpt", nodes: 2, datapath: "fastdp" });
try {
  await lab.addNamespace("bench", {});
  const client = await lab.addPod("bench", "client", { node: 1, labels: { role: "client" } });
  const server = await lab.addPod("bench", "server", { node: 2, labels: { role: "server" } });
  const all = policies();
  const results = { none: [] as number[], with: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    await lab.waitEnforced([]);
    results.none.push(await tcpTransfer(client.lab, server.lab, { seconds: SECONDS }));
    for (const policy of all) await lab.addPolicy(policy);
    await lab.waitEnforced(all);
    results.with.push(await tcpTransfer(client.lab, server.lab, { seconds: SECONDS }));
    for (const policy of all) await lab.deletePolicy("bench", policy.metadata.name);
  }
  const gbit = (bps: number) => (bps / 1e9).toFixed(2);
  const none = median(results.none);
  const withPolicies = median(results.with);
  console.log(
    `\nTCP between pods on two nodes (kernel VXLAN), iperf3 ${SECONDS} s, ${ROUNDS} rounds ` +
      "alternating, median",
  );
  console.log("| policies selecting the pods | Gbit/s | runs | ratio |");
  console.log("| --- | --- | --- | --- |");
  console.log(
    `| baseline: none | ${gbit(none)} | ${results.none.map(gbit).join(", ")} | 1.00 |`,
  );
  console.log(
    `| 100 (50 ingress on the server, 50 egress on the client) | ${gbit(withPolicies)} | ` +
      `${results.with.map(gbit).join(", ")} | ${(withPolicies / none).toFixed(2)} |`,
  );
} finally {
  await lab.destroy();
}
