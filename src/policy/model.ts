/**
 * The policy model: a NetworkPolicy as the API serves it, checked and reduced to what it means.
 *
 * Everything after this step (the evaluator, the compiler) reads `PolicyModel`s only, so the
 * defaulting rules of networking.k8s.io/v1 live here once: policyTypes default to Ingress, plus
 * Egress when there are egress rules; an absent or empty `from`/`to` means every peer and an
 * absent or empty `ports` every port, while an empty rule list means nothing is allowed.
 *
 * The API server refuses malformed policies, but a fake server or an old one may not, and a
 * broken policy must never be read as more permissive than what its author could have meant
 * (fail closed): a bad peer or port entry is dropped (its rule allows less; a list that loses
 * every entry matches nothing rather than everything), a bad podSelector isolates the whole
 * namespace with no allow rules, and an unknown policyType isolates both directions. Each of
 * these is reported as an `invalid-policy` diagnostic.
 */
import { type AddressRange, parseCidr } from "../net/cidr.ts";
import { MATCH_ALL, parseSelector, type Selector } from "./selector.ts";
import {
  type Diagnostic,
  type NetworkPolicy,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
  type Protocol,
  PROTOCOLS,
} from "./types.ts";

/** A set of pods: those `pods` selects, in one namespace or in every namespace `namespaces` selects. */
export interface PodGroup {
  readonly namespaces: { readonly name: string } | { readonly selector: Selector };
  readonly pods: Selector;
}

/** Addresses as disjoint, sorted half-open ranges (`except` already cut out). */
export interface AddressBlock {
  /** How the policy wrote it, for people: `10.0.0.0/8 except 10.1.0.0/16`. */
  readonly source: string;
  readonly ranges: readonly AddressRange[];
}

export type PeerModel =
  | { readonly kind: "pods"; readonly group: PodGroup }
  | { readonly kind: "block"; readonly block: AddressBlock };

/** Ports `first..last` of one protocol (`0..65535` when the policy named only a protocol). */
export interface PortRange {
  readonly protocol: Protocol;
  readonly first: number;
  readonly last: number;
}

export type PortModel =
  | ({ readonly kind: "numeric" } & PortRange)
  | { readonly kind: "named"; readonly protocol: Protocol; readonly name: string };

export interface RuleModel {
  readonly peers: "all" | readonly PeerModel[];
  readonly ports: "all" | readonly PortModel[];
}

export interface PolicyModel {
  readonly namespace: string;
  readonly name: string;
  /** The pods this policy isolates (always within its own namespace). */
  readonly target: PodGroup;
  /** Present when the policy isolates its pods for ingress: the rules that allow some. */
  readonly ingress?: readonly RuleModel[];
  readonly egress?: readonly RuleModel[];
}

export interface ModelResult {
  policies: PolicyModel[];
  problems: Diagnostic[];
}

export const ALL_PORTS_FIRST = 0;
export const ALL_PORTS_LAST = 65535;

/** Reduces API policies to models, in a stable order (namespace, then name). */
export function modelPolicies(policies: readonly NetworkPolicy[]): ModelResult {
  const problems: Diagnostic[] = [];
  const models: PolicyModel[] = [];
  for (const policy of policies) {
    const model = modelPolicy(policy, problems);
    if (model) models.push(model);
  }
  models.sort((a, b) => compareText(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
  return { policies: models, problems };
}

export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function modelPolicy(policy: NetworkPolicy, problems: Diagnostic[]): PolicyModel | undefined {
  const namespace = policy?.metadata?.namespace;
  const name = policy?.metadata?.name;
  if (typeof namespace !== "string" || namespace === "" || typeof name !== "string" || !name) {
    problems.push(invalid(
      `A NetworkPolicy without metadata.namespace and metadata.name (${
        JSON.stringify(policy?.metadata ?? null)
      }) is ignored: it cannot say which pods it isolates`,
    ));
    return undefined;
  }
  const report = (where: string, what: string, consequence: string) =>
    problems.push(invalid(`NetworkPolicy ${namespace}/${name}: ${where}: ${what}; ${consequence}`));
  const spec = policy.spec ?? {} as NetworkPolicy["spec"];

  let pods: Selector = MATCH_ALL;
  let rulesUsable = true;
  try {
    pods = parseSelector(spec.podSelector ?? {});
  } catch (error) {
    rulesUsable = false;
    report(
      "spec.podSelector",
      (error as Error).message,
      "every pod of the namespace is isolated with no traffic allowed",
    );
  }

  const types = policyTypes(
    spec,
    (what) => report("spec.policyTypes", what, "the policy isolates both directions"),
  );
  const target: PodGroup = { namespaces: { name: namespace }, pods };
  const rules = (kind: "ingress" | "egress") => {
    if (!rulesUsable) return [];
    const list = spec[kind] ?? [];
    if (!Array.isArray(list)) {
      report(`spec.${kind}`, "must be a list", "nothing is allowed in this direction");
      return [];
    }
    return list.map((rule, i) => {
      const where = `spec.${kind}[${i}]`;
      const peerField = kind === "ingress" ? "from" : "to";
      const peers = (rule as Record<string, NetworkPolicyPeer[] | undefined>)?.[peerField];
      return {
        peers: modelList(peers, (peer, j) => {
          try {
            return modelPeer(peer, namespace);
          } catch (error) {
            report(
              `${where}.${peerField}[${j}]`,
              (error as Error).message,
              "this peer is ignored (the rule allows less)",
            );
            return undefined;
          }
        }),
        ports: modelList(rule?.ports, (port, j) => {
          try {
            return modelPort(port);
          } catch (error) {
            report(
              `${where}.ports[${j}]`,
              (error as Error).message,
              "this port is ignored (the rule allows less)",
            );
            return undefined;
          }
        }),
      };
    });
  };
  return {
    namespace,
    name,
    target,
    ingress: types.has("Ingress") ? rules("ingress") : undefined,
    egress: types.has("Egress") ? rules("egress") : undefined,
  };
}

function policyTypes(
  spec: NetworkPolicy["spec"],
  report: (what: string) => void,
): Set<"Ingress" | "Egress"> {
  const listed = spec.policyTypes ?? [];
  if (!Array.isArray(listed) || listed.length === 0) {
    // The API's defaulting: Ingress always, Egress only when egress rules exist.
    const egress = Array.isArray(spec.egress) && spec.egress.length > 0;
    return new Set(egress ? ["Ingress", "Egress"] : ["Ingress"]);
  }
  const unknown = listed.filter((t) => t !== "Ingress" && t !== "Egress");
  if (unknown.length > 0) {
    report(`unknown type ${unknown.map((t) => JSON.stringify(t)).join(", ")} (Ingress, Egress)`);
    return new Set(["Ingress", "Egress"]);
  }
  return new Set(listed);
}

/** Absent or empty means "all"; otherwise the entries that make sense (possibly none). */
function modelList<I, O>(
  list: readonly I[] | undefined,
  each: (item: I, index: number) => O | undefined,
): "all" | O[] {
  if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
    return "all";
  }
  if (!Array.isArray(list)) return [];
  return list.map(each).filter((x): x is O => x !== undefined);
}

function modelPeer(peer: NetworkPolicyPeer, namespace: string): PeerModel {
  if (typeof peer !== "object" || peer === null) throw new TypeError("a peer must be an object");
  const hasSelector = peer.podSelector !== undefined || peer.namespaceSelector !== undefined;
  if (peer.ipBlock !== undefined) {
    if (hasSelector) {
      throw new TypeError("ipBlock cannot be combined with podSelector or namespaceSelector");
    }
    return { kind: "block", block: parseBlock(peer.ipBlock.cidr, peer.ipBlock.except ?? []) };
  }
  if (!hasSelector) {
    throw new TypeError("a peer needs podSelector, namespaceSelector or ipBlock");
  }
  const pods = peer.podSelector === undefined ? MATCH_ALL : parseSelector(peer.podSelector);
  const namespaces = peer.namespaceSelector === undefined
    ? { name: namespace }
    : { selector: parseSelector(peer.namespaceSelector) };
  return { kind: "pods", group: { namespaces, pods } };
}

/**
 * `cidr` minus every `except`. An IPv6 block is kept as an empty block: weft's pods have IPv4
 * addresses only, so it can match nothing they send or receive.
 */
export function parseBlock(cidr: string, except: readonly string[]): AddressBlock {
  if (typeof cidr !== "string") throw new TypeError("ipBlock.cidr must be a string");
  if (!Array.isArray(except)) throw new TypeError("ipBlock.except must be a list");
  const source = except.length ? `${cidr} except ${except.join(",")}` : cidr;
  if (cidr.includes(":")) return { source, ranges: [] };
  let ranges = [cidrRange(cidr, "ipBlock.cidr")];
  for (const hole of except) {
    if (typeof hole === "string" && hole.includes(":")) continue;
    ranges = subtract(ranges, cidrRange(hole, "ipBlock.except"));
  }
  return { source, ranges };
}

function cidrRange(text: unknown, where: string): AddressRange {
  if (typeof text !== "string") throw new TypeError(`${where} must be a string`);
  try {
    // Host bits are masked as the API does (10.0.0.1/24 means 10.0.0.0/24).
    const { base, prefix } = parseCidr(text, { strict: false });
    return { start: base, end: base + 2 ** (32 - prefix) };
  } catch (error) {
    throw new TypeError(`${where}: ${(error as Error).message}`);
  }
}

function subtract(ranges: AddressRange[], hole: AddressRange): AddressRange[] {
  return ranges.flatMap((r) => {
    if (hole.end <= r.start || hole.start >= r.end) return [r];
    const left = { start: r.start, end: hole.start };
    const right = { start: hole.end, end: r.end };
    return [left, right].filter((x) => x.start < x.end);
  });
}

function modelPort(port: NetworkPolicyPort): PortModel {
  if (typeof port !== "object" || port === null) throw new TypeError("a port must be an object");
  const protocol = port.protocol ?? "TCP";
  if (!PROTOCOLS.includes(protocol)) {
    throw new TypeError(`unknown protocol "${protocol}" (TCP, UDP, SCTP)`);
  }
  const { port: value, endPort } = port;
  if (value === undefined || value === null) {
    if (endPort !== undefined) throw new TypeError("endPort needs a numeric port");
    return { kind: "numeric", protocol, first: ALL_PORTS_FIRST, last: ALL_PORTS_LAST };
  }
  if (typeof value === "string") {
    if (endPort !== undefined) {
      throw new TypeError(`endPort cannot follow the named port "${value}"`);
    }
    if (!isServiceName(value)) {
      throw new TypeError(
        `port "${value}" is neither a number nor a port name (1-15 of a-z, 0-9, "-", with a letter)`,
      );
    }
    return { kind: "named", protocol, name: value };
  }
  if (!isPortNumber(value)) throw new TypeError(`port ${value} is outside 1-65535`);
  if (endPort === undefined) return { kind: "numeric", protocol, first: value, last: value };
  if (!isPortNumber(endPort) || endPort < value) {
    throw new TypeError(`endPort ${endPort} must be from port ${value} to 65535`);
  }
  return { kind: "numeric", protocol, first: value, last: endPort };
}

function isPortNumber(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

/** IANA service names, as Kubernetes validates container port names. */
export function isServiceName(name: string): boolean {
  return name.length >= 1 && name.length <= 15 && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) &&
    /[a-z]/.test(name);
}

function invalid(message: string): Diagnostic {
  return {
    code: "invalid-policy",
    severity: "error",
    message,
    fix: "Correct or delete the NetworkPolicy; the API server refuses such objects, so also " +
      "find out what created it",
  };
}
