/**
 * NetworkPolicy in the kernel, over the fast path (kernel VXLAN between the nodes): two lab nodes
 * whose agents run on Kubernetes (the fake API server), the e2e suite's 3 namespaces x 3 pods
 * spread over both, every pod serving TCP and UDP on ports 80 and 81. For a dozen cases of
 * src/policy's table, the full probe matrix (every pod to every pod, both ports, both protocols,
 * 324 probes) measured in the kernel must equal the evaluator's answer.
 */
import assert from "node:assert/strict";
import { addXyzPods, pathsFrom, runCases } from "./support/policy_cases.ts";
import { PolicyLab } from "./support/policy_lab.ts";

/** Representative: isolation per direction, selectors of every kind, ports by number, range and name. */
const CASES = [
  "no policy: every pod reaches every pod",
  "default-deny-ingress in x",
  "default-deny-all in x (both directions)",
  "x/a admits only x/b (podSelector)",
  "deny-all in x plus allow-all-to-a from every namespace: policies add up",
  "x/a admits namespace y only (namespaceSelector matchLabels)",
  "podSelector AND namespaceSelector (one peer)",
  "ports: namespace y to x/a on TCP 81 only",
  "named port: only serve-81-tcp into x",
  "egress on a named port (serve-80-tcp), resolved on the destination",
  "deny all egress of namespace x",
  "the client's egress denies what the server's ingress allows",
  "endPort: TCP 80-81 from namespace y",
  "egress to one pod's address (ipBlock /32)",
  "egress and ingress of two namespaces meet (x to z on UDP 81 only)",
];

Deno.test("over VXLAN, the kernel allows exactly what the evaluator allows, pod to pod", async () => {
  await using lab = await PolicyLab.create({ prefix: "wtpf", nodes: 2, datapath: "fastdp" });
  await addXyzPods(lab);
  const { probes, wrong, denied } = await runCases(lab, CASES);
  assert.equal(probes, 324);
  assert.deepEqual(wrong, [], wrong.slice(0, 40).join("\n"));
  assert.ok(denied > 500, `only ${denied} probes were denied: the cases must deny something`);
  // and the traffic between the nodes did take kernel VXLAN
  assert.deepEqual(await pathsFrom(lab), ["fastdp"]);
});
