/**
 * NetworkPolicy: the networking.k8s.io/v1 semantics, compiled into nftables for one node.
 *
 * Design notes. Everything here is pure: plain objects in, plain objects or text out; the
 * agent owns the cluster state, the kernel calls and the timing. Four pieces, each checkable
 * alone:
 * - the model (`model.ts`) reduces API policies to what they mean, once, with the API's
 *   defaulting and a fail-closed reading of anything malformed;
 * - the evaluator (`Reachability`) answers "may A reach B on port P?" straight from the model.
 *   It is the oracle: the compiled rules must agree with it, and the lab compares the kernel
 *   against it;
 * - the compiler (`compile`, or `planRules` + `computeMembers`) produces a `CompiledRuleSet`:
 *   named sets whose names hash their meaning, members computed apart from rules, per-policy
 *   chains and drop counters. Pod churn changes members only, and `diffRuleSets` turns two
 *   rule sets into the smallest change;
 * - the renderer prints rule sets and diffs as one-transaction `nft -f` scripts for table
 *   `inet weft-policy`; `interpret` runs the same rules in TypeScript.
 * See docs/policy.md for the table layout, what is enforced where, and the start-up plan.
 */
export type {
  ContainerPort,
  Diagnostic,
  IpBlock,
  LabelSelector,
  LabelSelectorRequirement,
  Namespace,
  NetworkPolicy,
  NetworkPolicyEgressRule,
  NetworkPolicyIngressRule,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  Pod,
  PolicyType,
  Protocol,
} from "./types.ts";
export { NAMESPACE_NAME_LABEL, PROTOCOLS } from "./types.ts";
export { modelPolicies, type ModelResult, type PolicyModel } from "./model.ts";
export {
  type ClusterState,
  type DirectionVerdict,
  type Endpoint,
  type Probe,
  type ProbeProtocol,
  Reachability,
  type Verdict,
} from "./evaluate.ts";
export type {
  Chain,
  CompiledRuleSet,
  CounterDef,
  Element,
  Match,
  Rule,
  RuleStructure,
  SetDef,
  SetKind,
} from "./ir.ts";
export {
  compile,
  type CompileOptions,
  computeMembers,
  HOOK_CHAIN,
  ISOLATED_SET,
  type MemberOptions,
  PENDING_COUNTER,
  PENDING_SET,
  type PlanOptions,
  planRules,
  type RulePlan,
} from "./compile.ts";
export {
  diffRuleSets,
  type ElementChange,
  isElementOnly,
  isEmptyDiff,
  type RuleSetDiff,
} from "./diff.ts";
export { POLICY_TABLE, renderDiff, type RenderOptions, renderRuleSet } from "./nft_render.ts";
export { interpret, type Packet, type Trace } from "./interpret.ts";
