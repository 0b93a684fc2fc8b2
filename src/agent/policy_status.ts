/**
 * What NetworkPolicy enforcement tells people: GET /status/policy (per local pod, the policies
 * isolating it in each direction, and what is pending), its diagnostics (CONTRACTS #1), and the
 * drop counters as Prometheus samples. Pure functions of the engine's snapshot.
 */
import type { Diagnostic, PolicyPodView, PolicyStatusView } from "../api/mod.ts";
import { PENDING_COUNTER, Reachability } from "../policy/mod.ts";
import type { PolicySnapshot } from "./policy_engine.ts";
import type { PolicyHealth } from "./policy_health.ts";

/** A pod held pending longer than this is worth a person's look. */
export const PENDING_TOO_LONG_MS = 30_000;
/** The API listed within this long is a normal start; after it, not being synced is a problem. */
const SYNC_GRACE_MS = 5_000;

/** The view when this agent does not enforce NetworkPolicy, and why. */
export function disabledPolicyView(config: { kubernetes: boolean }): PolicyStatusView {
  return {
    enabled: false,
    reason: config.kubernetes
      ? "turned off (--no-network-policy or WEFT_NETWORK_POLICY=false)"
      : "not on Kubernetes: there are no NetworkPolicies to enforce",
    synced: false,
    policies: 0,
    pods: [],
    problems: [],
  };
}

export function policyStatusView(
  snapshot: PolicySnapshot,
  problems: Diagnostic[],
): PolicyStatusView {
  const { state } = snapshot;
  const oracle = state && snapshot.synced ? new Reachability(state) : undefined;
  const pods: PolicyPodView[] = (state?.local ?? []).map((local) => {
    const selecting = local.state === "enforced" && local.pod && oracle
      ? safeSelecting(oracle, local.pod)
      : { ingress: [], egress: [] };
    const since = snapshot.pendingSince.get(local.ip);
    return {
      address: local.ip,
      ...(local.pod ? { pod: local.pod } : {}),
      state: local.state,
      ingress: selecting.ingress,
      egress: selecting.egress,
      ...(local.state === "pending" && since
        ? { pendingSince: new Date(since).toISOString() }
        : {}),
    };
  }).sort((a, b) => byText(a.pod ?? "\uffff", b.pod ?? "\uffff") || byText(a.address, b.address));
  const last = snapshot.lastApply;
  return {
    enabled: true,
    node: snapshot.node,
    synced: snapshot.synced,
    policies: snapshot.policyCount,
    pods,
    ...(last
      ? {
        lastApply: {
          at: new Date(last.at).toISOString(),
          kind: last.kind,
          lines: last.lines,
          ms: Math.round(last.ms * 10) / 10,
        },
      }
      : {}),
    problems,
  };
}

/** Pods by name, those the ADD named none last. */
function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function safeSelecting(oracle: Reachability, pod: string) {
  try {
    return oracle.selecting(pod);
  } catch {
    return { ingress: [], egress: [] };
  }
}

export function policyDiagnostics(
  snapshot: PolicySnapshot,
  health: PolicyHealth,
  now = Date.now(),
): Diagnostic[] {
  const found = [...health.diagnostics()];
  const pending = snapshot.state?.local.filter((l) => l.state === "pending") ?? [];
  if (!snapshot.synced && now - snapshot.startedAt > SYNC_GRACE_MS) {
    found.push({
      code: "policy-not-synced",
      severity: "error",
      message: `NetworkPolicy enforcement has not listed pods, namespaces and policies from the ` +
        `API in ${Math.round((now - snapshot.startedAt) / 1000)} s; ${pending.length} pod(s) ` +
        "attached since are held with all traffic dropped, the others keep the rules they had",
      fix: "See the other problems (API unreachable, RBAC) and the agent's log lines `policy:`.",
    });
  }
  if (snapshot.failure) {
    found.push({
      code: "policy-apply-failed",
      severity: "error",
      message: `The NetworkPolicy table could not be changed: ${snapshot.failure.message}; ` +
        "the kernel keeps the previous rules and new pods cannot start until it can",
      fix: "Check that nft works on the node (`nft list table inet weft-policy`); the agent " +
        "retries with a full replacement of the table.",
    });
  }
  for (const problem of snapshot.plan?.problems ?? []) found.push(problem);
  const stuck = pending.filter((l) => {
    const since = snapshot.pendingSince.get(l.ip);
    return since !== undefined && now - since > PENDING_TOO_LONG_MS;
  });
  if (stuck.length && snapshot.synced) {
    const names = stuck.slice(0, 5).map((l) => `${l.pod} (${l.ip})`).join(", ");
    found.push({
      code: "policy-pods-pending",
      severity: "error",
      message: `${stuck.length} pod(s) on this node have had all traffic dropped for over ` +
        `${PENDING_TOO_LONG_MS / 1000} s because the API does not show them: ${names}` +
        (stuck.length > 5 ? ", ..." : ""),
      fix: "Check that each pod exists (`kubectl get pod -n NAMESPACE NAME`); a pod deleted " +
        "with --force whose sandbox still runs stays pending until its CNI DEL.",
    });
  }
  return found;
}

type Sample = [Record<string, string>, number];

/** weft_policy_dropped_packets_total samples: per policy and direction, and pending pods. */
export function droppedPacketSamples(
  snapshot: PolicySnapshot,
  counters: ReadonlyMap<string, number>,
): Sample[] {
  const samples: Sample[] = [];
  for (const counter of snapshot.applied?.counters ?? []) {
    const packets = counters.get(counter.name);
    if (packets === undefined) continue;
    samples.push(
      counter.policy
        ? [{
          namespace: counter.policy.namespace,
          policy: counter.policy.name,
          direction: counter.policy.direction,
        }, packets]
        : [{ namespace: "", policy: "", direction: "pending" }, packets],
    );
  }
  const pending = counters.get(PENDING_COUNTER);
  if (!snapshot.applied && pending !== undefined) {
    samples.push([{ namespace: "", policy: "", direction: "pending" }, pending]);
  }
  return samples;
}
