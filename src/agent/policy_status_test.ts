import assert from "node:assert/strict";
import { compile, type CompiledRuleSet, planRules } from "../policy/mod.ts";
import type { PolicySnapshot } from "./policy_engine.ts";
import { PolicyHealth } from "./policy_health.ts";
import {
  droppedPacketSamples,
  PENDING_TOO_LONG_MS,
  policyDiagnostics,
  policyStatusView,
} from "./policy_status.ts";

const T0 = 1_800_000_000_000;

function snapshot(extra: Partial<PolicySnapshot> = {}): PolicySnapshot {
  return {
    node: "n1",
    synced: true,
    startedAt: T0,
    attachments: [],
    pendingSince: new Map(),
    policyCount: 0,
    ...extra,
  };
}

const codes = (s: PolicySnapshot, now: number) =>
  policyDiagnostics(s, new PolicyHealth({ now: () => now }), now).map((d) => d.code);

Deno.test("policy diagnostics: not listed after the grace, pending too long, invalid policies", () => {
  const unsynced = snapshot({ synced: false });
  assert.deepEqual(codes(unsynced, T0 + 1000), [], "a normal start");
  assert.deepEqual(codes(unsynced, T0 + 6000), ["policy-not-synced"]);

  const local = [{ ip: "10.32.0.5", state: "pending" as const, pod: "x/late" }];
  const pending = snapshot({
    state: { policies: [], pods: [], namespaces: [], pending: ["10.32.0.5"], local },
    pendingSince: new Map([["10.32.0.5", T0]]),
  });
  assert.deepEqual(codes(pending, T0 + 1000), []);
  const stuck = policyDiagnostics(pending, new PolicyHealth(), T0 + PENDING_TOO_LONG_MS + 1);
  assert.equal(stuck[0].code, "policy-pods-pending");
  assert.match(stuck[0].message, /x\/late \(10\.32\.0\.5\)/);

  const plan = planRules([{
    metadata: { namespace: "x", name: "odd" },
    spec: { podSelector: {}, policyTypes: ["Sideways" as "Ingress"] },
  }]);
  assert.deepEqual(codes(snapshot({ plan }), T0), ["invalid-policy"]);
  const failed = snapshot({ failure: { message: "nft refused the script", at: T0 } });
  assert.match(policyDiagnostics(failed, new PolicyHealth(), T0)[0].message, /nft refused/);
});

Deno.test("drop counters become samples per policy and direction, and pending", () => {
  const applied: CompiledRuleSet = compile({
    policies: [{ metadata: { namespace: "x", name: "web" }, spec: { podSelector: {} } }],
    pods: [],
    namespaces: [],
  });
  const counters = new Map(applied.counters.map((c, i) => [c.name, 10 + i]));
  assert.deepEqual(droppedPacketSamples(snapshot({ applied }), counters), [
    [{ namespace: "", policy: "", direction: "pending" }, 10],
    [{ namespace: "x", policy: "web", direction: "ingress" }, 11],
  ]);
  // an earlier run's table: only the pending counter is known by name
  assert.deepEqual(droppedPacketSamples(snapshot(), new Map([["drop-pending", 3]])), [
    [{ namespace: "", policy: "", direction: "pending" }, 3],
  ]);
});

Deno.test("status view: enforced pods name their policies; the last change is rounded", () => {
  const state = {
    policies: [{ metadata: { namespace: "x", name: "web" }, spec: { podSelector: {} } }],
    pods: [{ namespace: "x", name: "a", labels: {}, ip: "10.32.0.5", node: "n1" }],
    namespaces: [{ name: "x", labels: {} }],
    pending: [],
    local: [{ ip: "10.32.0.5", state: "enforced" as const, pod: "x/a" }, {
      ip: "10.32.0.9",
      state: "unidentified" as const,
    }],
  };
  const view = policyStatusView(
    snapshot({
      state,
      policyCount: 1,
      lastApply: { at: T0, kind: "patch", lines: 3, ms: 12.345 },
    }),
    [],
  );
  assert.deepEqual(view.pods, [
    { address: "10.32.0.5", pod: "x/a", state: "enforced", ingress: ["x/web"], egress: [] },
    { address: "10.32.0.9", state: "unidentified", ingress: [], egress: [] },
  ]);
  assert.deepEqual(view.lastApply, {
    at: new Date(T0).toISOString(),
    kind: "patch",
    lines: 3,
    ms: 12.3,
  });
});
