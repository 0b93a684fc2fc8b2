/**
 * Test support for policy (never imported by production code): the e2e suite's cluster of
 * namespaces x, y, z with pods a, b, c, spread over two nodes; policy builders; truth tables;
 * and the bridge from the evaluator to compiled rule sets: where a packet crosses a node's
 * forward hook, that node's rule set must accept it.
 */
import { compile } from "./compile.ts";
import type { ClusterState, Endpoint, Probe, ProbeProtocol } from "./evaluate.ts";
import { Reachability } from "./evaluate.ts";
import { interpret } from "./interpret.ts";
import type { RuleSetDiff } from "./diff.ts";
import { sortElements } from "./elements.ts";
import type { CompiledRuleSet, Element } from "./ir.ts";
import type { LabelSelector, Namespace, NetworkPolicy, Pod, Protocol } from "./types.ts";

export const NAMESPACES = ["x", "y", "z"] as const;
export const POD_NAMES = ["a", "b", "c"] as const;
export const NODES = ["n1", "n2"] as const;
export const PORTS = [80, 81] as const;

/** x/a is 10.32.1.1, y/c is 10.32.2.3: ipBlocks in tests read as namespaces. */
export function podIp(namespace: string, pod: string): string {
  return `10.32.${NAMESPACES.indexOf(namespace as "x") + 1}.${POD_NAMES.indexOf(pod as "a") + 1}`;
}

/** Nodes alternate, so same-node and cross-node pairs both occur in every namespace. */
export function podNode(namespace: string, pod: string): string {
  return NODES[(NAMESPACES.indexOf(namespace as "x") + POD_NAMES.indexOf(pod as "a")) % 2];
}

/** Every pod serves 80 and 81 on TCP, UDP and SCTP, with ports named like serve-80-tcp. */
export function xyzCluster(): { pods: Pod[]; namespaces: Namespace[] } {
  const ports = PORTS.flatMap((port) =>
    (["TCP", "UDP", "SCTP"] as Protocol[]).map((protocol) => ({
      name: `serve-${port}-${protocol.toLowerCase()}`,
      containerPort: port,
      protocol,
    }))
  );
  return {
    namespaces: NAMESPACES.map((name) => ({ name, labels: { ns: name } })),
    pods: NAMESPACES.flatMap((namespace) =>
      POD_NAMES.map((name) => ({
        namespace,
        name,
        labels: { pod: name },
        ip: podIp(namespace, name),
        node: podNode(namespace, name),
        ports: ports.map((p) => ({ ...p })),
      }))
    ),
  };
}

export function policy(
  namespace: string,
  name: string,
  spec: Partial<NetworkPolicy["spec"]>,
): NetworkPolicy {
  return { metadata: { namespace, name }, spec: { podSelector: {}, ...spec } };
}

export function labels(matchLabels: Record<string, string>): LabelSelector {
  return { matchLabels };
}

/** `[from, to, allowed, only?]`: patterns `*`, `x/*`, `*\/a`, `x/a`; `only` e.g. `TCP`, `81`, `UDP/80`. */
export type Expect = readonly [string, string, boolean, string?];

export interface ProbeKind {
  protocol: Protocol;
  port: number;
}

export function probeKinds(protocols: readonly Protocol[]): ProbeKind[] {
  return protocols.flatMap((protocol) => PORTS.map((port) => ({ protocol, port })));
}

function patternMatches(pattern: string, pod: string): boolean {
  const [ns, name] = pattern === "*" ? ["*", "*"] : pattern.split("/");
  const [podNs, podName] = pod.split("/");
  return (ns === "*" || ns === podNs) && (name === "*" || name === podName);
}

function onlyMatches(only: string | undefined, kind: ProbeKind): boolean {
  if (only === undefined) return true;
  return only.split("/").every((part) =>
    /^\d+$/.test(part) ? Number(part) === kind.port : part === kind.protocol
  );
}

/** The expected answer: everything allowed, then each statement applied in order. */
export function expected(statements: readonly Expect[], from: string, to: string, kind: ProbeKind) {
  let allowed = true;
  for (const [f, t, value, only] of statements) {
    if (patternMatches(f, from) && patternMatches(t, to) && onlyMatches(only, kind)) {
      allowed = value;
    }
  }
  return allowed;
}

export function podKeys(pods: readonly Pod[]): string[] {
  return pods.map((p) => `${p.namespace}/${p.name}`);
}

/** One rule set per node, as each node's agent would compile it. */
export function compileNodes(
  state: ClusterState,
  nodes: readonly string[] = NODES,
): Map<string, CompiledRuleSet> {
  return new Map(nodes.map((node) => [node, compile(state, { node })]));
}

/**
 * What the compiled rule sets decide for a probe's first packet. It crosses the forward hook
 * of the source pod's node and of the destination pod's node (once when they are the same);
 * a node's own traffic to its pods goes through output and input, never forward.
 */
export function compiledAllows(
  ruleSets: ReadonlyMap<string, CompiledRuleSet>,
  state: ClusterState,
  probe: Probe,
): boolean {
  const from = endpointInfo(state, probe.from);
  const to = endpointInfo(state, probe.to);
  if (from.pod && from.pod === to.pod) return true; // never leaves the pod
  const nodes = new Set<string>();
  if (from.pod?.node && from.pod.node !== to.hostNode) nodes.add(from.pod.node);
  if (to.pod?.node && to.pod.node !== from.hostNode) nodes.add(to.pod.node);
  return [...nodes].every((node) => {
    const ruleSet = ruleSets.get(node);
    if (!ruleSet) throw new Error(`No rule set for node ${node}`);
    const trace = interpret(ruleSet, {
      saddr: from.ip,
      daddr: to.ip,
      protocol: probe.protocol,
      port: probe.port,
    });
    return trace.verdict === "accept";
  });
}

function endpointInfo(state: ClusterState, endpoint: Endpoint) {
  if ("pod" in endpoint) {
    const pod = state.pods.find((p) => `${p.namespace}/${p.name}` === endpoint.pod);
    if (!pod?.ip) throw new Error(`No address for pod ${endpoint.pod}`);
    return { pod, ip: pod.ip, hostNode: undefined };
  }
  const pod = "node" in endpoint ? undefined : state.pods.find((p) => p.ip === endpoint.ip);
  return { pod, ip: endpoint.ip, hostNode: "node" in endpoint ? endpoint.node : undefined };
}

export interface Disagreement {
  probe: Probe;
  evaluator: boolean;
  compiled: boolean;
}

/** Every probe on which the evaluator and the compiled rule sets disagree. */
export function disagreements(
  state: ClusterState,
  probes: readonly Probe[],
  nodes: readonly string[] = NODES,
): Disagreement[] {
  const oracle = new Reachability(state);
  const ruleSets = compileNodes(state, nodes);
  return probes.flatMap((probe) => {
    const evaluator = oracle.check(probe).allowed;
    const compiled = compiledAllows(ruleSets, state, probe);
    return evaluator === compiled ? [] : [{ probe, evaluator, compiled }];
  });
}

/** Every pod to every pod, for each probe kind. */
export function allPairs(pods: readonly Pod[], kinds: readonly ProbeKind[]): Probe[] {
  const keys = podKeys(pods);
  return kinds.flatMap(({ protocol, port }) =>
    keys.flatMap((from) =>
      keys.map((to) => ({ from: { pod: from }, to: { pod: to }, protocol, port }))
    )
  );
}

/** A truth table as the e2e suite prints it: `.` allowed, `X` denied, `?` for `mark`ed cells. */
export function truthTable(
  keys: readonly string[],
  cell: (from: string, to: string) => string,
): string {
  const head = `      ${keys.map((k) => k.padEnd(4)).join("")}`;
  const rows = keys.map((from) =>
    `${from.padEnd(6)}${keys.map((to) => cell(from, to).padEnd(4)).join("")}`
  );
  return [head, ...rows].join("\n");
}

export function describeProbe(probe: Probe): string {
  const name = (e: Endpoint) =>
    "pod" in e ? e.pod : "node" in e ? `node ${e.node} (${e.ip})` : e.ip;
  return `${name(probe.from)} -> ${name(probe.to)} ${probe.protocol}/${probe.port}`;
}

/**
 * What the kernel holds after `diff` is applied to `before`: the renderer's job, in data (for
 * checking diffs, and for in-memory kernels in tests).
 */
export function applyRuleSetDiff(before: CompiledRuleSet, diff: RuleSetDiff): CompiledRuleSet {
  if (diff.kind === "replace") return diff.ruleSet;
  const sets = new Map(before.sets.map((s) => [s.name, s]));
  const counters = new Map(before.counters.map((c) => [c.name, c]));
  const chains = new Map(before.chains.map((c) => [c.name, c]));
  const members = new Map<string, readonly Element[]>(before.members);
  for (const name of diff.sets.remove) {
    sets.delete(name);
    members.delete(name);
  }
  for (const set of diff.sets.add) {
    sets.set(set.name, set);
    members.set(set.name, []);
  }
  for (const name of diff.counters.remove) counters.delete(name);
  for (const counter of diff.counters.add) counters.set(counter.name, counter);
  for (const name of diff.chains.remove) chains.delete(name);
  for (const chain of [...diff.chains.add, ...diff.chains.replace]) chains.set(chain.name, chain);
  for (const change of diff.elements) {
    const gone = new Set(change.remove.map((e) => e.join(",")));
    const kept = (members.get(change.set) ?? []).filter((e) => !gone.has(e.join(",")));
    members.set(change.set, sortElements([...kept, ...change.add]));
  }
  return {
    node: before.node,
    sets: [...sets.values()],
    counters: [...counters.values()],
    chains: [...chains.values()],
    members,
    problems: before.problems,
  };
}

export type { ProbeProtocol };
