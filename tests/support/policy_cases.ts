/**
 * The e2e-style cases of src/policy's table, brought into a lab: the namespaces x, y, z and pods
 * a, b, c (labels, named ports serve-80-tcp and so on) created through the API on two nodes as
 * the table places them, the cases looked up by name, and the one kind of address a case may
 * name (a pod's /32) moved to that pod's address in the lab.
 */
import type { NetworkPolicy, Protocol } from "../../src/policy/mod.ts";
import {
  allPairs,
  NAMESPACES,
  POD_NAMES,
  podIp,
  podNode,
  probeKinds,
  xyzCluster,
} from "../../src/policy/testing.ts";
import { NETPOL_CASES } from "../../src/policy/testing_cases.ts";
import type { PolicyLab } from "./policy_lab.ts";

/** x, y, z with their `ns` labels and a, b, c in each, spread over node1 and node2. */
export async function addXyzPods(lab: PolicyLab): Promise<void> {
  const cluster = xyzCluster();
  for (const ns of cluster.namespaces) await lab.addNamespace(ns.name, ns.labels);
  await Promise.all(cluster.pods.map((pod) =>
    lab.addPod(pod.namespace, pod.name, {
      node: podNode(pod.namespace, pod.name) === "n1" ? 1 : 2,
      labels: pod.labels,
      ports: (pod.ports ?? []).map((p) => ({
        name: p.name!,
        containerPort: p.containerPort,
        protocol: p.protocol as Protocol,
      })),
    })
  ));
}

/** A case's policies, with any ipBlock naming one table pod (`10.32.2.2/32`) moved to the lab's. */
export function labCase(lab: PolicyLab, name: string): NetworkPolicy[] {
  const found = NETPOL_CASES.find((c) => c.name === name);
  if (!found) throw new Error(`No case named "${name}" in src/policy/testing_cases.ts`);
  if (found.pods || found.namespaces || found.extra) {
    throw new Error(`Case "${name}" changes the cluster or probes outside it: not for the lab`);
  }
  const moved = new Map<string, string>();
  for (const ns of NAMESPACES) {
    for (const pod of POD_NAMES) {
      const labPod = lab.pods.get(`${ns}/${pod}`);
      if (labPod) moved.set(`${podIp(ns, pod)}/32`, `${labPod.lab.ip}/32`);
    }
  }
  return JSON.parse(JSON.stringify(found.policies), (key, value) => {
    if (key !== "cidr") return value;
    const labCidr = moved.get(value);
    if (!labCidr) throw new Error(`Case "${name}" names ${value}, which is no single lab pod`);
    return labCidr;
  });
}

/** Replaces every policy in the cluster with `policies` and waits until every node enforces them. */
export async function usePolicies(lab: PolicyLab, policies: NetworkPolicy[]): Promise<void> {
  const existing = await lab.listPolicies();
  if (existing.length) {
    for (const p of existing) await lab.deletePolicy(p.namespace, p.name);
    await lab.waitEnforced([]);
  }
  for (const policy of policies) await lab.addPolicy(policy);
  await lab.waitEnforced(policies);
  // each case starts with no tracked connection, so no earlier case's reply is let through
  await lab.flushConntrack();
}

/**
 * Each case in turn, through the API: its policies in place on every node, then the full matrix
 * (every pod to every pod, TCP and UDP on 80 and 81) measured and compared with the evaluator.
 * Returns the disagreements, named by case, and how many probes the cases denied.
 */
export async function runCases(lab: PolicyLab, names: readonly string[]) {
  const probes = allPairs(lab.state([]).pods, probeKinds(["TCP", "UDP"]));
  const wrong: string[] = [];
  let denied = 0;
  for (const name of names) {
    const policies = labCase(lab, name);
    await usePolicies(lab, policies);
    const { mismatches, deniedCount } = await lab.check(policies, probes);
    wrong.push(...mismatches.map((m) => `${name}: ${m}`));
    denied += deniedCount;
  }
  return { probes: probes.length, wrong, denied };
}

/** How node1's pod traffic travels to its peers (`fastdp`, `sleeve`), per connection. */
export async function pathsFrom(lab: PolicyLab, node = 1): Promise<(string | undefined)[]> {
  const connections = (await lab.lab.api(node, "GET", "/status/connections")).json as {
    path?: string;
  }[];
  return connections.map((c) => c.path);
}
