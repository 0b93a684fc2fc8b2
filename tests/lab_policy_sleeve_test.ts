/**
 * NetworkPolicy in the kernel over the userspace path (`--datapath sleeve`: the nodes' pod
 * traffic crosses a TAP device and weft's UDP sockets instead of kernel VXLAN): a subset of the
 * cases of lab_policy_test.ts, full probe matrix each, against the evaluator.
 */
import assert from "node:assert/strict";
import { addXyzPods, pathsFrom, runCases } from "./support/policy_cases.ts";
import { PolicyLab } from "./support/policy_lab.ts";

const CASES = [
  "default-deny-all in x (both directions)",
  "x/a admits namespace y only (namespaceSelector matchLabels)",
  "ports: namespace y to x/a on TCP 81 only",
  "the client's egress denies what the server's ingress allows",
  "egress and ingress of two namespaces meet (x to z on UDP 81 only)",
];

Deno.test("over the userspace path, the kernel allows exactly what the evaluator allows", async () => {
  await using lab = await PolicyLab.create({ prefix: "wtps", nodes: 2, datapath: "sleeve" });
  await addXyzPods(lab);
  const { wrong, denied } = await runCases(lab, CASES);
  assert.deepEqual(wrong, [], wrong.slice(0, 40).join("\n"));
  assert.ok(denied > 200, `only ${denied} probes were denied`);
  // and the traffic did take the userspace path
  assert.deepEqual(await pathsFrom(lab), ["sleeve"]);
});
