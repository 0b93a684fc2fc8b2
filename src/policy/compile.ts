/**
 * The compiler: policies, pods and namespaces in, a `CompiledRuleSet` for one node out.
 *
 * It runs in two halves so the agent can redo only the cheap one. `planRules` reads policies
 * alone and fixes every set name, counter and rule; `computeMembers` fills the sets from pods
 * and namespaces. Pod churn therefore reruns the second half and yields element changes only.
 *
 * Shape (per node): two base chains on the forward hook, egress then ingress. Each accepts
 * established and related packets first (replies of allowed connections), drops pods not known
 * yet, and sends a local pod isolated in its direction to a dispatch chain, which jumps to the
 * chain of every policy selecting the pod (`ip saddr @t-…`). A policy chain accepts what one of
 * its rules allows: `accept` ends only that base chain, so a connection between two local pods
 * still meets the ingress chain. What falls through is counted against every policy that
 * selected the pod, optionally logged, and dropped. Target sets hold this node's pods only:
 * ingress is enforced where the destination runs and egress where the source runs.
 */
import { parseIp } from "../net/cidr.ts";
import { ClusterView, namedPortNumbers } from "./cluster.ts";
import type { ClusterState } from "./evaluate.ts";
import { stableId } from "./hash.ts";
import type {
  Chain,
  CompiledRuleSet,
  CounterDef,
  Element,
  Match,
  Rule,
  RuleStructure,
  SetDef,
} from "./ir.ts";
import {
  type AddressBlock,
  compareText,
  modelPolicies,
  type PeerModel,
  type PodGroup,
  type PolicyModel,
  type PortModel,
  type PortRange,
  type RuleModel,
} from "./model.ts";
import { describeSelector, selectorKey } from "./selector.ts";
import { formatInterval, sortElements } from "./elements.ts";
import type { Diagnostic, NetworkPolicy, Protocol } from "./types.ts";

export interface PlanOptions {
  /** Log denied connections (kernel log), at most this many per second per policy. */
  log?: { perSecond: number };
}

export interface MemberOptions {
  /** Enforce for this node's pods; undefined: every pod counts as local (a one-node view). */
  node?: string;
  /**
   * Addresses of local pods whose policy state is not known yet (the agent has the address
   * but not yet the pod's labels or its namespace's policies): all their traffic is dropped.
   */
  pending?: readonly string[];
}

export type CompileOptions = PlanOptions & MemberOptions;

/** What a set means, from which its members are computed. */
export type SetSource =
  | { readonly kind: "target"; readonly group: PodGroup }
  | { readonly kind: "peer"; readonly group: PodGroup }
  | { readonly kind: "block"; readonly block: AddressBlock }
  | { readonly kind: "named"; readonly name: string; readonly protocol: Protocol }
  | { readonly kind: "isolated"; readonly targets: readonly string[] }
  | { readonly kind: "pending" };

export interface RulePlan extends RuleStructure {
  readonly sources: ReadonlyMap<string, SetSource>;
  readonly problems: readonly Diagnostic[];
}

type Direction = "ingress" | "egress";

export const PENDING_SET = "pending";
export const ISOLATED_SET: Record<Direction, string> = {
  ingress: "ingress-isolated",
  egress: "egress-isolated",
};
export const HOOK_CHAIN: Record<Direction, string> = {
  egress: "egress-hook",
  ingress: "ingress-hook",
};
export const PENDING_COUNTER = "drop-pending";
const SHORT: Record<Direction, string> = { ingress: "in", egress: "eg" };
/** The field holding the other side of a connection, per direction. */
const PEER_FIELD: Record<Direction, "saddr" | "daddr"> = { ingress: "saddr", egress: "daddr" };
/** The field holding the isolated (local) pod, per direction. */
const SELF_FIELD: Record<Direction, "saddr" | "daddr"> = { ingress: "daddr", egress: "saddr" };

export function compile(state: ClusterState, options: CompileOptions = {}): CompiledRuleSet {
  const plan = planRules(state.policies, options);
  const members = computeMembers(plan, state, options);
  const { sets, counters, chains, problems } = plan;
  return { node: options.node, sets, counters, chains, members, problems };
}

export function planRules(policies: readonly NetworkPolicy[], options: PlanOptions = {}): RulePlan {
  const { policies: models, problems } = modelPolicies(policies);
  return new Planner(options).plan(models, problems);
}

class Planner {
  readonly #options: PlanOptions;
  readonly #sets = new Map<string, SetDef>();
  readonly #sources = new Map<string, SetSource>();
  readonly #keys = new Map<string, string>();

  constructor(options: PlanOptions) {
    this.#options = options;
  }

  plan(models: readonly PolicyModel[], problems: Diagnostic[]): RulePlan {
    this.#fixed(PENDING_SET, { kind: "pending" }, "local pods not known yet: all traffic dropped");
    const counters: CounterDef[] = [{
      name: PENDING_COUNTER,
      comment: "packets of local pods whose policy state is not known yet",
    }];
    const policyChains: Chain[] = [];
    const dispatch: Record<Direction, { jumps: Rule[]; drops: Rule[]; targets: string[] }> = {
      egress: { jumps: [], drops: [], targets: [] },
      ingress: { jumps: [], drops: [], targets: [] },
    };
    for (const policy of models) {
      const id = stableId(`${policy.namespace}/${policy.name}`);
      const target = this.#set("t", { kind: "target", group: policy.target });
      for (const direction of ["egress", "ingress"] as const) {
        const rules = policy[direction];
        if (rules === undefined) continue;
        const chain = `${SHORT[direction]}-${id}`;
        const counter = `drop-${SHORT[direction]}-${id}`;
        const label = `${policy.namespace}/${policy.name} ${direction}`;
        const self: Match = { kind: "addr", field: SELF_FIELD[direction], set: target };
        policyChains.push({ name: chain, rules: this.#policyRules(policy, direction, rules) });
        counters.push({
          name: counter,
          comment: `dropped: ${label}`,
          policy: { namespace: policy.namespace, name: policy.name, direction },
        });
        const d = dispatch[direction];
        d.targets.push(target);
        d.jumps.push({ matches: [self], verdict: { kind: "jump", chain }, comment: label });
        const log = this.#options.log &&
          { prefix: `weft-policy deny ${label}: `, perSecond: this.#options.log.perSecond };
        d.drops.push({ matches: [self], counter, ...(log ? { log } : {}), comment: label });
      }
    }
    const hooks: Chain[] = [];
    const dispatchers: Chain[] = [];
    (["egress", "ingress"] as const).forEach((direction, priority) => {
      const field = SELF_FIELD[direction];
      const isolated = ISOLATED_SET[direction];
      this.#fixed(
        isolated,
        { kind: "isolated", targets: [...new Set(dispatch[direction].targets)].sort() },
        `local pods isolated for ${direction}`,
      );
      hooks.push({
        name: HOOK_CHAIN[direction],
        hook: { priority },
        rules: [
          { matches: [{ kind: "ct", states: ["established", "related"] }], verdict: ACCEPT },
          {
            matches: [{ kind: "addr", field, set: PENDING_SET }],
            counter: PENDING_COUNTER,
            verdict: DROP,
          },
          {
            matches: [{ kind: "addr", field, set: isolated }],
            verdict: { kind: "jump", chain: direction },
          },
        ],
      });
      const { jumps, drops } = dispatch[direction];
      dispatchers.push({
        name: direction,
        rules: [...jumps, ...drops, { matches: [], verdict: DROP }],
      });
    });
    const sets = [...this.#sets.values()].sort((a, b) => compareText(a.name, b.name));
    return {
      sets,
      counters,
      chains: [...hooks, ...dispatchers, ...policyChains],
      sources: this.#sources,
      problems,
    };
  }

  #policyRules(policy: PolicyModel, direction: Direction, rules: readonly RuleModel[]): Rule[] {
    return rules.flatMap((rule, i) => {
      const peers: Match[][] = rule.peers === "all"
        ? [[]]
        : rule.peers.map((peer) => [this.#peerMatch(peer, PEER_FIELD[direction])]);
      const ports: Match[][] = rule.ports === "all" ? [[]] : this.#portMatches(rule.ports);
      const comment = `${policy.namespace}/${policy.name} ${direction}[${i}]`;
      return peers.flatMap((p) =>
        ports.map((q): Rule => ({ matches: [...p, ...q], verdict: ACCEPT, comment }))
      );
    });
  }

  #peerMatch(peer: PeerModel, field: "saddr" | "daddr"): Match {
    const set = peer.kind === "pods"
      ? this.#set("p", { kind: "peer", group: peer.group })
      : this.#set("b", { kind: "block", block: peer.block });
    return { kind: "addr", field, set };
  }

  /** Numeric ports share one match (merged ranges); each port name is its own match. */
  #portMatches(ports: readonly PortModel[]): Match[][] {
    const numeric = ports.filter((p) => p.kind === "numeric") as PortRange[];
    const matches: Match[][] = numeric.length
      ? [[{ kind: "ports", ranges: mergePortRanges(numeric) }]]
      : [];
    const named = new Map<string, { name: string; protocol: Protocol }>();
    for (const p of ports) {
      if (p.kind === "named") named.set(`${p.protocol}/${p.name}`, p);
    }
    for (const [, { name, protocol }] of [...named].sort(([a], [b]) => compareText(a, b))) {
      const set = this.#set("n", { kind: "named", name, protocol });
      matches.push([{ kind: "named-port", protocol, set }]);
    }
    return matches;
  }

  #fixed(name: string, source: SetSource, comment: string) {
    this.#sets.set(name, { name, kind: "addr", comment });
    this.#sources.set(name, source);
  }

  /** The set for a meaning, named by the hash of its canonical key (shared when repeated). */
  #set(prefix: string, source: SetSource): string {
    const key = canonicalKey(source);
    let name = `${prefix}-${stableId(key)}`;
    // A hash collision between two meanings would merge their members; keep them apart.
    while (this.#keys.has(name) && this.#keys.get(name) !== key) name += "x";
    if (!this.#keys.has(name)) {
      this.#keys.set(name, key);
      this.#sources.set(name, source);
      this.#sets.set(name, { name, kind: setKind(source), comment: describeSource(source) });
    }
    return name;
  }
}

const ACCEPT = { kind: "accept" } as const;
const DROP = { kind: "drop" } as const;

function setKind(source: SetSource): SetDef["kind"] {
  return source.kind === "block" ? "interval" : source.kind === "named" ? "addr-port" : "addr";
}

function canonicalKey(source: SetSource): string {
  switch (source.kind) {
    case "target":
    case "peer":
      return JSON.stringify([source.kind, groupKey(source.group)]);
    case "block":
      return JSON.stringify(["block", source.block.ranges.map((r) => [r.start, r.end])]);
    case "named":
      return JSON.stringify(["named", source.name, source.protocol]);
    default:
      return JSON.stringify([source.kind]);
  }
}

function groupKey(group: PodGroup): string[] {
  const scope = group.namespaces;
  const ns = "name" in scope ? `name:${scope.name}` : `selector:${selectorKey(scope.selector)}`;
  return [ns, selectorKey(group.pods)];
}

function describeGroup(group: PodGroup): string {
  const scope = group.namespaces;
  const where = "name" in scope
    ? `in ${scope.name}`
    : `in namespaces ${describeSelector(scope.selector)}`;
  const pods = group.pods.length ? `pods ${describeSelector(group.pods)}` : "every pod";
  return `${pods} ${where}`;
}

function describeSource(source: SetSource): string {
  switch (source.kind) {
    case "target":
      return `${describeGroup(source.group)} (this node)`;
    case "peer":
      return describeGroup(source.group);
    case "block": {
      // From the ranges, not the policy's text: two blocks with the same ranges share a set.
      const ranges = source.block.ranges.map((r) => formatInterval(r.start, r.end));
      return `ipBlock ${ranges.join(",") || "(no IPv4 address)"}`;
    }
    case "named":
      return `port ${source.name}/${source.protocol} of every pod`;
    default:
      return source.kind;
  }
}

/** Sorted ranges per protocol with overlapping and adjacent ones joined. */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) =>
    compareText(a.protocol, b.protocol) || a.first - b.first
  );
  const merged: PortRange[] = [];
  for (const r of sorted) {
    const last = merged.at(-1);
    if (last && last.protocol === r.protocol && r.first <= last.last + 1) {
      merged[merged.length - 1] = { ...last, last: Math.max(last.last, r.last) };
    } else {
      merged.push({ protocol: r.protocol, first: r.first, last: r.last });
    }
  }
  return merged;
}

/** Every set's members for this cluster state and node. */
export function computeMembers(
  plan: Pick<RulePlan, "sources">,
  state: Pick<ClusterState, "pods" | "namespaces">,
  options: MemberOptions = {},
): Map<string, Element[]> {
  const cluster = new ClusterView(state.pods, state.namespaces);
  const addressed = state.pods.flatMap((pod) => {
    const address = cluster.address(pod);
    return address === undefined ? [] : [{ pod, address }];
  });
  const local = addressed.filter(({ pod }) =>
    options.node === undefined || pod.node === options.node
  );
  const byNamespace = Map.groupBy(addressed, ({ pod }) => pod.namespace);
  const localByNamespace = Map.groupBy(local, ({ pod }) => pod.namespace);
  const members = new Map<string, Element[]>();
  const isolated: [string, readonly string[]][] = [];
  for (const [name, source] of plan.sources) {
    switch (source.kind) {
      case "target":
      case "peer": {
        const pool = source.kind === "target" ? localByNamespace : byNamespace;
        members.set(name, cluster.select(source.group, pool).map((x) => [x.address]));
        break;
      }
      case "block":
        members.set(name, source.block.ranges.map((r) => [r.start, r.end]));
        break;
      case "named":
        members.set(
          name,
          addressed.flatMap(({ pod, address }) =>
            namedPortNumbers(pod, source.name, source.protocol).map((port) => [address, port])
          ),
        );
        break;
      case "pending":
        members.set(name, (options.pending ?? []).map((ip) => [parseIp(ip)]));
        break;
      case "isolated":
        isolated.push([name, source.targets]);
        break;
    }
  }
  for (const [name, targets] of isolated) {
    members.set(name, targets.flatMap((t) => members.get(t) ?? []));
  }
  for (const [name, elements] of members) members.set(name, sortElements(elements));
  return members;
}
