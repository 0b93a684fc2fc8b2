/**
 * The NetworkPolicy table: cases after the Kubernetes e2e suite (test/e2e/network/netpol),
 * written anew, each with its expected reachability over namespaces x, y, z and pods a, b, c
 * (two nodes), on ports 80 and 81, TCP and UDP (and SCTP where the case says). Every case is
 * checked twice: the evaluator must give the expected matrix, and the compiled per-node rule
 * sets, run by the interpreter, must give the evaluator's answer on every probe (pod to
 * itself included). The e2e suite ignores pod-to-itself cells, and so do the expectations.
 */
import assert from "node:assert/strict";
import { type Endpoint, Reachability } from "./evaluate.ts";
import {
  allPairs,
  describeProbe,
  disagreements,
  expected,
  podKeys,
  probeKinds,
  truthTable,
  xyzCluster,
} from "./testing.ts";
import { NETPOL_CASES as cases } from "./testing_cases.ts";

function endpoint(e: string | Endpoint): Endpoint {
  return typeof e !== "string" ? e : e.includes("/") ? { pod: e } : { ip: e };
}

Deno.test("the table has at least 30 cases with distinct names", () => {
  assert.ok(cases.length >= 30, `${cases.length} cases`);
  assert.equal(new Set(cases.map((c) => c.name)).size, cases.length);
});

for (const c of cases) {
  Deno.test(`netpol: ${c.name}`, () => {
    const base = xyzCluster();
    const state = {
      policies: c.policies,
      pods: c.pods ? c.pods(base.pods) : base.pods,
      namespaces: c.namespaces ? c.namespaces(base.namespaces) : base.namespaces,
    };
    const oracle = new Reachability(state);
    assert.deepEqual(oracle.problems, [], "the case's policies are valid");
    const keys = podKeys(state.pods);
    const kinds = probeKinds(c.protocols ?? ["TCP", "UDP"]);
    const failures: string[] = [];
    for (const kind of kinds) {
      const wrong = new Set<string>();
      for (const from of keys) {
        for (const to of keys) {
          if (from === to) continue;
          const want = expected(c.expect, from, to, kind);
          const got = oracle.check({ from: { pod: from }, to: { pod: to }, ...kind }).allowed;
          if (want !== got) wrong.add(`${from}>${to}`);
        }
      }
      if (wrong.size) {
        const table = truthTable(keys, (from, to) => {
          const want = expected(c.expect, from, to, kind);
          return from === to
            ? "-"
            : wrong.has(`${from}>${to}`)
            ? (want ? "!X" : "!.")
            : want
            ? "."
            : "X";
        });
        failures.push(
          `${kind.protocol}/${kind.port}: evaluator differs (!: wrong, shows what it said)\n${table}`,
        );
      }
    }
    for (const x of c.extra ?? []) {
      const probe = {
        from: endpoint(x.from),
        to: endpoint(x.to),
        protocol: x.protocol,
        port: x.port,
      };
      const got = oracle.check(probe).allowed;
      if (got !== x.allowed) {
        failures.push(`${describeProbe(probe)}: expected ${x.allowed}, evaluator ${got}`);
      }
    }
    const probes = [
      ...allPairs(state.pods, kinds),
      ...(c.extra ?? []).map((x) => ({
        from: endpoint(x.from),
        to: endpoint(x.to),
        protocol: x.protocol,
        port: x.port,
      })),
    ];
    for (const d of disagreements(state, probes)) {
      failures.push(
        `${describeProbe(d.probe)}: evaluator ${d.evaluator}, compiled rules ${d.compiled}`,
      );
    }
    if (failures.length) assert.fail(failures.join("\n\n"));
  });
}
