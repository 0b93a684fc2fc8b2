/**
 * Random clusters for property tests (test support only): a few namespaces and pods with
 * labels from small alphabets, so selectors written from the same alphabets often match, and
 * policies using every feature (both selectors, each operator, ipBlocks with holes, numeric,
 * ranged and named ports, each protocol, every policyTypes form).
 */
import fc from "fast-check";
import type { Probe } from "./evaluate.ts";
import type {
  LabelSelector,
  LabelSelectorRequirement,
  Namespace,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  Pod,
  Protocol,
} from "./types.ts";

const NS = ["x", "y", "z"];
const LABELS: Record<string, string[]> = { app: ["a", "b", "c"], tier: ["web", "db"] };
const NS_LABELS: Record<string, string[]> = { team: ["red", "blue"], env: ["prod", "dev"] };
const NAMED_PORTS = [
  { name: "http", containerPort: 80 },
  { name: "http", containerPort: 81, protocol: "UDP" as Protocol },
  { name: "dns", containerPort: 53, protocol: "UDP" as Protocol },
  { name: "web", containerPort: 81 },
  { name: "sctp", containerPort: 80, protocol: "SCTP" as Protocol },
];
export const PROBE_KINDS: { protocol: Probe["protocol"]; port: number }[] = [
  { protocol: "TCP", port: 80 },
  { protocol: "TCP", port: 81 },
  { protocol: "UDP", port: 53 },
  { protocol: "UDP", port: 81 },
  { protocol: "SCTP", port: 80 },
  { protocol: "ICMP", port: 0 },
];
/** Addresses that are no pod: one inside the pod range, one outside. */
export const OUTSIDERS = ["10.32.0.200", "192.0.2.1"];

function labelsFrom(alphabet: Record<string, string[]>) {
  return fc.record(
    Object.fromEntries(Object.entries(alphabet).map(([k, vs]) => [k, fc.constantFrom(...vs)])),
    { requiredKeys: [] },
  ) as fc.Arbitrary<Record<string, string>>;
}

function selector(alphabet: Record<string, string[]>): fc.Arbitrary<LabelSelector> {
  const keys = Object.keys(alphabet);
  const requirement: fc.Arbitrary<LabelSelectorRequirement> = fc.constantFrom(...keys).chain((
    key,
  ) =>
    fc.oneof(
      fc.record({
        key: fc.constant(key),
        operator: fc.constantFrom("In" as const, "NotIn" as const),
        values: fc.subarray(alphabet[key], { minLength: 1 }),
      }),
      fc.record({
        key: fc.constant(key),
        operator: fc.constantFrom("Exists" as const, "DoesNotExist" as const),
      }),
    )
  );
  return fc.record({
    matchLabels: labelsFrom(alphabet),
    matchExpressions: fc.array(requirement, { maxLength: 2 }),
  }, { requiredKeys: [] });
}

/** A block inside 10.32.0.0/24 (where the pods are) or around it, maybe with holes. */
const ipBlock = fc.record({
  base: fc.integer({ min: 0, max: 255 }),
  prefix: fc.integer({ min: 22, max: 32 }),
  holes: fc.array(
    fc.record({ base: fc.integer({ min: 0, max: 255 }), prefix: fc.integer({ min: 26, max: 32 }) }),
    { maxLength: 2 },
  ),
}).map(({ base, prefix, holes }) => ({
  cidr: `10.32.0.${base}/${prefix}`,
  except: holes.map((h) => `10.32.0.${h.base}/${Math.max(h.prefix, prefix + 1)}`)
    .filter((h) => Number(h.split("/")[1]) <= 32),
}));

const peer: fc.Arbitrary<NetworkPolicyPeer> = fc.oneof(
  fc.record({ podSelector: selector(LABELS) }),
  fc.record({ namespaceSelector: selector(NS_LABELS) }),
  fc.record({ podSelector: selector(LABELS), namespaceSelector: selector(NS_LABELS) }),
  fc.record({ ipBlock }),
);

const port: fc.Arbitrary<NetworkPolicyPort> = fc.oneof(
  fc.record({ protocol: fc.constantFrom<Protocol>("TCP", "UDP", "SCTP") }),
  fc.record({
    protocol: fc.constantFrom<Protocol>("TCP", "UDP", "SCTP"),
    port: fc.constantFrom(53, 80, 81),
  }, { requiredKeys: ["port"] }),
  fc.record({ port: fc.constantFrom(53, 79, 80), endPort: fc.constantFrom(80, 81, 100) })
    .map((p) => ({ ...p, endPort: Math.max(p.port, p.endPort) })),
  fc.record({
    protocol: fc.constantFrom<Protocol>("TCP", "UDP", "SCTP"),
    port: fc.constantFrom("http", "dns", "web", "nope"),
  }, { requiredKeys: ["port"] }),
);

function rules<K extends "from" | "to">(key: K) {
  return fc.array(
    fc.record(
      { [key]: fc.array(peer, { maxLength: 2 }), ports: fc.array(port, { maxLength: 2 }) },
      {
        requiredKeys: [],
      },
    ),
    { maxLength: 2 },
  );
}

const networkPolicy = (index: number): fc.Arbitrary<NetworkPolicy> =>
  fc.record({
    namespace: fc.constantFrom(...NS),
    podSelector: selector(LABELS),
    policyTypes: fc.constantFrom(
      undefined,
      ["Ingress"] as const,
      ["Egress"] as const,
      ["Ingress", "Egress"] as const,
    ),
    ingress: fc.option(rules("from"), { nil: undefined }),
    egress: fc.option(rules("to"), { nil: undefined }),
  }).map(({ namespace, podSelector, policyTypes, ingress, egress }) =>
    ({
      metadata: { namespace, name: `p${index}` },
      spec: {
        podSelector,
        ...(policyTypes ? { policyTypes: [...policyTypes] } : {}),
        ...(ingress ? { ingress } : {}),
        ...(egress ? { egress } : {}),
      },
    }) as NetworkPolicy
  );

export const namespaces: fc.Arbitrary<Namespace[]> = fc.tuple(
  ...NS.map((name) => labelsFrom(NS_LABELS).map((labels) => ({ name, labels }))),
);

export const pods: fc.Arbitrary<Pod[]> = fc.array(
  fc.record({
    namespace: fc.constantFrom(...NS),
    labels: labelsFrom(LABELS),
    node: fc.constantFrom("n1", "n2"),
    ports: fc.subarray(NAMED_PORTS),
  }),
  { minLength: 1, maxLength: 7 },
).map((list) =>
  list.map((p, i) => ({ ...p, name: `pod${i}`, ip: `10.32.0.${i + 1}`, ports: [...p.ports] }))
);

export const policies: fc.Arbitrary<NetworkPolicy[]> = fc.integer({ min: 0, max: 4 })
  .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => networkPolicy(i))));

export const clusterState = fc.record({ policies, pods, namespaces });
