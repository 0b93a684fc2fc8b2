/**
 * The compiler against the evaluator on random clusters: every pod to every pod and to and
 * from addresses that are no pod, on each protocol, must get the same answer from the
 * compiled per-node rule sets (run by the interpreter) as from the evaluator.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Probe } from "./evaluate.ts";
import { describeProbe, disagreements } from "./testing.ts";
import { clusterState, OUTSIDERS, PROBE_KINDS } from "./testing_arbitrary.ts";
import type { Pod } from "./types.ts";

function probes(pods: readonly Pod[]): Probe[] {
  const endpoints = [
    ...pods.map((p) => ({ pod: `${p.namespace}/${p.name}` })),
    ...OUTSIDERS.map((ip) => ({ ip })),
    { node: "n1", ip: "10.250.0.1" },
  ];
  return PROBE_KINDS.flatMap((kind) =>
    endpoints.flatMap((from) => endpoints.map((to) => ({ from, to, ...kind })))
  ).filter((p) => "pod" in p.from || "pod" in p.to);
}

Deno.test("compiled rule sets decide every probe as the evaluator does", () => {
  let isolating = 0;
  fc.assert(
    fc.property(clusterState, (state) => {
      const wrong = disagreements(state, probes(state.pods));
      if (state.policies.length) isolating++;
      assert.deepEqual(
        wrong.map((d) =>
          `${describeProbe(d.probe)}: evaluator ${d.evaluator}, compiled ${d.compiled}`
        ),
        [],
      );
    }),
    { numRuns: 300, seed: 12 },
  );
  assert.ok(isolating > 200, "most runs have policies");
});
