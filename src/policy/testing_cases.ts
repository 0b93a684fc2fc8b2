/**
 * The NetworkPolicy table: cases after the Kubernetes e2e suite (test/e2e/network/netpol),
 * written anew, each with its expected reachability over namespaces x, y, z and pods a, b, c
 * (see `xyzCluster`), on ports 80 and 81, TCP and UDP (and SCTP where a case says). The
 * conformance test checks the evaluator and the compiled rules against it; kernel tests check
 * the rendered scripts of every case with nft.
 */
import type { Endpoint } from "./evaluate.ts";
import { type Expect, labels, policy } from "./testing.ts";
import type { Namespace, NetworkPolicy, Pod, Protocol } from "./types.ts";

export interface Extra {
  from: string | Endpoint;
  to: string | Endpoint;
  protocol: Protocol;
  port: number;
  allowed: boolean;
}

export interface NetpolCase {
  name: string;
  policies: NetworkPolicy[];
  expect: Expect[];
  protocols?: Protocol[];
  pods?: (pods: Pod[]) => Pod[];
  namespaces?: (namespaces: Namespace[]) => Namespace[];
  /** Probes to or from addresses outside the 3x3 pods (ipBlock cases). */
  extra?: Extra[];
}

const NS_NAME = "kubernetes.io/metadata.name";
const egressOnly = { policyTypes: ["Egress" as const] };

function relabel(key: string, add: Record<string, string>) {
  return (pods: Pod[]) =>
    pods.map((p) =>
      `${p.namespace}/${p.name}` === key ? { ...p, labels: { ...p.labels, ...add } } : p
    );
}

export const NETPOL_CASES: NetpolCase[] = [
  { name: "no policy: every pod reaches every pod", policies: [], expect: [] },
  {
    name: "default-deny-ingress in x",
    policies: [policy("x", "deny-ingress", {})],
    expect: [["*", "x/*", false]],
  },
  {
    name: "default-deny-all in x (both directions)",
    policies: [policy("x", "deny-all", { policyTypes: ["Ingress", "Egress"] })],
    expect: [["*", "x/*", false], ["x/*", "*", false]],
  },
  {
    name: "x/a admits only x/b (podSelector)",
    policies: [policy("x", "a-from-b", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ podSelector: labels({ pod: "b" }) }] }],
    })],
    expect: [["*", "x/a", false], ["x/b", "x/a", true]],
  },
  {
    name: "deny-all in x plus allow-all-to-a from every namespace: policies add up",
    policies: [
      policy("x", "deny-all", {}),
      policy("x", "allow-all-to-a", {
        podSelector: labels({ pod: "a" }),
        ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }],
      }),
    ],
    expect: [["*", "x/*", false], ["*", "x/a", true]],
  },
  {
    name: "x/a admits every namespace (empty namespaceSelector)",
    policies: [policy("x", "from-all-ns", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ namespaceSelector: {} }] }],
    })],
    expect: [],
  },
  {
    name: "x/a admits namespace y only (namespaceSelector matchLabels)",
    policies: [policy("x", "from-y", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }] }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true]],
  },
  {
    name: "podSelector with matchExpressions In",
    policies: [policy("x", "a-from-b-expr", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{
          podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["b"] }] },
        }],
      }],
    })],
    expect: [["*", "x/a", false], ["x/b", "x/a", true]],
  },
  {
    name: "namespaceSelector with matchExpressions In on the name label",
    policies: [policy("x", "from-y-expr", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{
          namespaceSelector: {
            matchExpressions: [{ key: NS_NAME, operator: "In", values: ["y"] }],
          },
        }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true]],
  },
  {
    name: "podSelector OR namespaceSelector (two peers)",
    policies: [policy("x", "other-ns-or-b", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [
          {
            namespaceSelector: {
              matchExpressions: [{ key: NS_NAME, operator: "NotIn", values: ["x"] }],
            },
          },
          { podSelector: labels({ pod: "b" }) },
        ],
      }],
    })],
    expect: [["x/c", "x/a", false]],
  },
  {
    name: "podSelector AND namespaceSelector (one peer)",
    policies: [policy("x", "b-of-other-ns", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{
          namespaceSelector: {
            matchExpressions: [{ key: NS_NAME, operator: "NotIn", values: ["x"] }],
          },
          podSelector: labels({ pod: "b" }),
        }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/b", "x/a", true], ["z/b", "x/a", true]],
  },
  {
    name: "several values in both selectors of one peer",
    policies: [policy("x", "b-c-of-other-ns", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{
          namespaceSelector: {
            matchExpressions: [{ key: NS_NAME, operator: "NotIn", values: ["x"] }],
          },
          podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["b", "c"] }] },
        }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/b", "x/a", true], ["y/c", "x/a", true], [
      "z/b",
      "x/a",
      true,
    ], ["z/c", "x/a", true]],
  },
  {
    name: "two podSelector peers are a union",
    policies: [policy("x", "from-b-or-c", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ podSelector: labels({ pod: "b" }) }, { podSelector: labels({ pod: "c" }) }],
      }],
    })],
    expect: [["*", "x/a", false], ["x/b", "x/a", true], ["x/c", "x/a", true]],
  },
  {
    name: "one pod of another namespace (ns=y AND pod=a)",
    policies: [policy("x", "from-y-a", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }), podSelector: labels({ pod: "a" }) }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/a", "x/a", true]],
  },
  {
    name: "ports: namespace y to x/a on TCP 81 only",
    policies: [policy("x", "y-on-81", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }) }],
        ports: [{ port: 81, protocol: "TCP" }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true, "TCP/81"]],
  },
  {
    name: "stacked policies on one pod add their ports (81, then 80)",
    policies: [
      policy("x", "y-on-81", {
        podSelector: labels({ pod: "a" }),
        ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }], ports: [{ port: 81 }] }],
      }),
      policy("x", "y-on-80", {
        podSelector: labels({ pod: "a" }),
        ingress: [{ from: [{ namespaceSelector: labels({ ns: "y" }) }], ports: [{ port: 80 }] }],
      }),
    ],
    expect: [["*", "x/a", false], ["y/*", "x/a", true, "TCP"]],
  },
  {
    name: "allow-all ingress (one empty rule) changes nothing",
    policies: [policy("x", "allow-all", { ingress: [{}] })],
    expect: [],
  },
  {
    name: "named port: only serve-81-tcp into x",
    policies: [policy("x", "only-81", { ingress: [{ ports: [{ port: "serve-81-tcp" }] }] })],
    expect: [["*", "x/*", false], ["*", "x/*", true, "TCP/81"]],
  },
  {
    name: "named port from namespace y (serve-80-tcp)",
    policies: [policy("x", "y-on-named-80", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }) }],
        ports: [{ port: "serve-80-tcp", protocol: "TCP" }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true, "TCP/80"]],
  },
  {
    name: "egress on a named port (serve-80-tcp), resolved on the destination",
    policies: [policy("x", "egress-named-80", {
      ...egressOnly,
      egress: [{ ports: [{ port: "serve-80-tcp" }] }],
    })],
    expect: [["x/*", "*", false], ["x/*", "*", true, "TCP/80"]],
  },
  {
    name: "ingress from the own namespace only (empty podSelector peer)",
    policies: [policy("x", "same-ns", { ingress: [{ from: [{ podSelector: {} }] }] })],
    expect: [["y/*", "x/*", false], ["z/*", "x/*", false]],
  },
  {
    name: "deny all egress of x/a",
    policies: [policy("x", "deny-egress-a", { podSelector: labels({ pod: "a" }), ...egressOnly })],
    expect: [["x/a", "*", false]],
  },
  {
    name: "deny all egress of namespace x",
    policies: [policy("x", "deny-egress", egressOnly)],
    expect: [["x/*", "*", false]],
  },
  {
    name: "ingress and egress in one policy",
    policies: [policy("x", "both", {
      podSelector: labels({ pod: "a" }),
      policyTypes: ["Egress", "Ingress"],
      ingress: [{ from: [{ podSelector: labels({ pod: "b" }) }] }],
      egress: [{ ports: [{ port: 80 }] }],
    })],
    expect: [
      ["*", "x/a", false],
      ["x/b", "x/a", true],
      ["x/a", "*", false],
      ["x/a", "*", true, "TCP/80"],
    ],
  },
  {
    name: "the client's egress denies what the server's ingress allows",
    policies: [
      policy("x", "a-to-y-a", {
        podSelector: labels({ pod: "a" }),
        ...egressOnly,
        egress: [{
          to: [{ namespaceSelector: labels({ ns: "y" }), podSelector: labels({ pod: "a" }) }],
        }],
      }),
      ...["a", "b"].map((name) =>
        policy("y", `${name}-from-x-a`, {
          podSelector: labels({ pod: name }),
          ingress: [{
            from: [{ namespaceSelector: labels({ ns: "x" }), podSelector: labels({ pod: "a" }) }],
          }],
        })
      ),
    ],
    expect: [
      ["x/a", "*", false],
      ["*", "y/a", false],
      ["x/a", "y/a", true],
      ["*", "y/b", false],
    ],
  },
  {
    name: "egress to one pod of another namespace",
    policies: [policy("x", "a-to-y-a", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{
        to: [{ namespaceSelector: labels({ ns: "y" }), podSelector: labels({ pod: "a" }) }],
      }],
    })],
    expect: [["x/a", "*", false], ["x/a", "y/a", true]],
  },
  {
    name: "a protocol without a port allows all its ports",
    policies: [policy("x", "tcp-only", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ protocol: "TCP" }] }],
    })],
    expect: [["*", "x/a", false], ["*", "x/a", true, "TCP"]],
  },
  {
    name: "port 80 only into x",
    policies: [policy("x", "only-80", { ingress: [{ ports: [{ port: 80 }] }] })],
    expect: [["*", "x/*", false], ["*", "x/*", true, "TCP/80"]],
  },
  {
    name: "an allow-all ingress policy beside a port-80 policy wins",
    policies: [
      policy("x", "only-80", { ingress: [{ ports: [{ port: 80 }] }] }),
      policy("x", "allow-all", { ingress: [{}] }),
    ],
    expect: [],
  },
  {
    name: "an allow-all egress policy beside a port-80 egress policy wins",
    policies: [
      policy("x", "egress-80", { ...egressOnly, egress: [{ ports: [{ port: 80 }] }] }),
      policy("x", "egress-all", { ...egressOnly, egress: [{}] }),
    ],
    expect: [],
  },
  {
    name: "egress to one pod's address (ipBlock /32)",
    policies: [policy("x", "to-y-b-cidr", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{ to: [{ ipBlock: { cidr: "10.32.2.2/32" } }] }],
    })],
    expect: [["x/a", "*", false], ["x/a", "y/b", true]],
  },
  {
    name: "egress ipBlock of namespace x's addresses except x/b",
    policies: [policy("x", "x-but-b", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{ to: [{ ipBlock: { cidr: "10.32.1.0/24", except: ["10.32.1.2/32"] } }] }],
    })],
    expect: [["x/a", "*", false], ["x/a", "x/c", true]],
  },
  {
    name: "egress to the whole pod range except x/b",
    policies: [policy("x", "all-but-b", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{ to: [{ ipBlock: { cidr: "10.32.0.0/16", except: ["10.32.1.2/32"] } }] }],
    })],
    expect: [["x/a", "x/b", false]],
    extra: [
      { from: "x/a", to: "10.32.1.2", protocol: "TCP", port: 80, allowed: false },
      { from: "x/a", to: "10.32.200.1", protocol: "UDP", port: 53, allowed: true },
      { from: "x/a", to: "192.0.2.10", protocol: "TCP", port: 443, allowed: false },
    ],
  },
  {
    name: "an address in an except hole is allowed by another policy",
    policies: [
      policy("x", "all-but-b", {
        podSelector: labels({ pod: "a" }),
        ...egressOnly,
        egress: [{ to: [{ ipBlock: { cidr: "10.32.0.0/16", except: ["10.32.1.2/32"] } }] }],
      }),
      policy("x", "b-too", {
        podSelector: labels({ pod: "a" }),
        ...egressOnly,
        egress: [{ to: [{ ipBlock: { cidr: "10.32.1.2/32" } }] }],
      }),
    ],
    expect: [],
  },
  {
    name: "ingress and egress are isolated independently",
    policies: [
      policy("x", "egress-all-a", {
        podSelector: labels({ pod: "a" }),
        ...egressOnly,
        egress: [{}],
      }),
      policy("x", "deny-ingress-a", { podSelector: labels({ pod: "a" }) }),
    ],
    expect: [["*", "x/a", false]],
  },
  {
    name: "an SCTP-only allow is not TCP or UDP",
    protocols: ["TCP", "UDP", "SCTP"],
    policies: [
      policy("x", "deny-ingress", {}),
      policy("x", "sctp-81-to-a", {
        podSelector: labels({ pod: "a" }),
        ingress: [{ ports: [{ port: 81, protocol: "SCTP" }] }],
      }),
    ],
    expect: [["*", "x/*", false], ["*", "x/a", true, "SCTP/81"]],
  },
  {
    name: "a policy allowing SCTP 80 isolates the pod for everything else",
    protocols: ["TCP", "UDP", "SCTP"],
    policies: [policy("x", "sctp-80", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: 80, protocol: "SCTP" }] }],
    })],
    expect: [["*", "x/a", false], ["*", "x/a", true, "SCTP/80"]],
  },
  {
    name: "a UDP-only allow is not TCP",
    policies: [policy("x", "udp-81", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: 81, protocol: "UDP" }] }],
    })],
    expect: [["*", "x/a", false], ["*", "x/a", true, "UDP/81"]],
  },
  {
    name: "namespaceSelector on the default name label (namespaces do not list it)",
    policies: [policy("x", "from-y-by-name", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ namespaceSelector: labels({ [NS_NAME]: "y" }) }] }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true]],
  },
  {
    name: "egress NotIn on the name label",
    policies: [policy("x", "not-to-y", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{
        to: [{
          namespaceSelector: {
            matchExpressions: [{ key: NS_NAME, operator: "NotIn", values: ["y"] }],
          },
        }],
      }],
    })],
    expect: [["x/a", "y/*", false]],
  },
  {
    name: "endPort: TCP 80-81 from namespace y",
    policies: [policy("x", "y-80-81", {
      podSelector: labels({ pod: "a" }),
      ingress: [{
        from: [{ namespaceSelector: labels({ ns: "y" }) }],
        ports: [{ port: 80, endPort: 81, protocol: "TCP" }],
      }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true, "TCP"]],
  },
  {
    name: "endPort: TCP 81-90 and UDP 70-80 take one probed port each",
    policies: [policy("x", "ranges", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: 81, endPort: 90 }, { port: 70, endPort: 80, protocol: "UDP" }] }],
    })],
    expect: [["*", "x/a", false], ["*", "x/a", true, "TCP/81"], ["*", "x/a", true, "UDP/80"]],
  },
  {
    name: "matchExpressions Exists and DoesNotExist",
    pods: (pods) => relabel("y/c", { env: "dev" })(relabel("x/b", { env: "prod" })(pods)),
    policies: [
      policy("x", "from-any-env", {
        podSelector: labels({ pod: "a" }),
        ingress: [{
          from: [{
            namespaceSelector: {},
            podSelector: { matchExpressions: [{ key: "env", operator: "Exists" }] },
          }],
        }],
      }),
      policy("y", "no-env-same-ns", {
        podSelector: { matchExpressions: [{ key: "env", operator: "DoesNotExist" }] },
        ingress: [{ from: [{ podSelector: {} }] }],
      }),
    ],
    expect: [
      ["*", "x/a", false],
      ["x/b", "x/a", true],
      ["y/c", "x/a", true],
      ["x/*", "y/a", false],
      ["z/*", "y/a", false],
      ["x/*", "y/b", false],
      ["z/*", "y/b", false],
    ],
  },
  {
    name: "NotIn also selects pods without the label",
    pods: relabel("y/b", { tier: "db" }),
    policies: [policy("x", "not-a-not-db", {
      podSelector: { matchExpressions: [{ key: "pod", operator: "NotIn", values: ["a"] }] },
      ingress: [{
        from: [{
          namespaceSelector: {
            matchExpressions: [{ key: "ns", operator: "NotIn", values: ["z"] }],
          },
          podSelector: { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["db"] }] },
        }],
      }],
    })],
    expect: [
      ["*", "x/b", false],
      ["*", "x/c", false],
      ["x/*", "x/b", true],
      ["x/*", "x/c", true],
      ["y/a", "x/*", true],
      ["y/c", "x/*", true],
    ],
  },
  {
    name: "policyTypes default: egress rules isolate egress, and ingress with no rule",
    policies: [policy("x", "egress-to-y", {
      podSelector: labels({ pod: "a" }),
      egress: [{ to: [{ namespaceSelector: labels({ ns: "y" }) }] }],
    })],
    expect: [["*", "x/a", false], ["x/a", "*", false], ["x/a", "y/*", true]],
  },
  {
    name: "policyTypes Egress: ingress rules are ignored",
    policies: [policy("x", "egress-typed", {
      podSelector: labels({ pod: "a" }),
      policyTypes: ["Egress"],
      ingress: [{ from: [{ podSelector: labels({ pod: "b" }) }] }],
      egress: [],
    })],
    expect: [["x/a", "*", false]],
  },
  {
    name: "a policy isolates pods of its own namespace only; its podSelector peers too",
    policies: [
      policy("z", "from-z-a", { ingress: [{ from: [{ podSelector: labels({ pod: "a" }) }] }] }),
    ],
    expect: [["*", "z/*", false], ["z/a", "z/*", true]],
  },
  {
    name: "a port name resolves on each destination pod",
    pods: (pods) =>
      pods.map((p) => {
        const web =
          ({ "x/a": 80, "x/b": 81 } as Record<string, number>)[`${p.namespace}/${p.name}`];
        return web ? { ...p, ports: [...p.ports!, { name: "web", containerPort: web }] } : p;
      }),
    policies: [policy("x", "web", { ingress: [{ ports: [{ port: "web" }] }] })],
    expect: [["*", "x/*", false], ["*", "x/a", true, "TCP/80"], ["*", "x/b", true, "TCP/81"]],
  },
  {
    name: "a named port of another protocol: serve-80-udp over UDP",
    policies: [policy("x", "udp-name", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: "serve-80-udp", protocol: "UDP" }] }],
    })],
    expect: [["*", "x/a", false], ["*", "x/a", true, "UDP/80"]],
  },
  {
    name: "a port name with no port of that protocol matches nothing",
    policies: [policy("x", "udp-name-as-tcp", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ ports: [{ port: "serve-80-udp" }] }],
    })],
    expect: [["*", "x/a", false]],
  },
  {
    name: "egress by port name to an ipBlock: only pods have port names",
    policies: [policy("x", "named-to-block", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{ to: [{ ipBlock: { cidr: "10.32.0.0/16" } }], ports: [{ port: "serve-81-tcp" }] }],
    })],
    expect: [["x/a", "*", false], ["x/a", "*", true, "TCP/81"]],
    extra: [{ from: "x/a", to: "10.32.9.9", protocol: "TCP", port: 81, allowed: false }],
  },
  {
    name: "egress to everything outside the pod range",
    policies: [policy("x", "outside-only", {
      podSelector: labels({ pod: "a" }),
      ...egressOnly,
      egress: [{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: ["10.32.0.0/16"] } }] }],
    })],
    expect: [["x/a", "*", false]],
    extra: [
      { from: "x/a", to: "192.0.2.10", protocol: "TCP", port: 443, allowed: true },
      { from: "x/a", to: "10.32.9.9", protocol: "TCP", port: 80, allowed: false },
    ],
  },
  {
    name: "ingress from an ipBlock holding namespace y's addresses",
    policies: [policy("x", "from-y-block", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ ipBlock: { cidr: "10.32.2.0/24" } }] }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true]],
    extra: [
      { from: "10.32.2.99", to: "x/a", protocol: "TCP", port: 80, allowed: true },
      { from: "192.0.2.10", to: "x/a", protocol: "TCP", port: 80, allowed: false },
      { from: "192.0.2.10", to: "x/b", protocol: "TCP", port: 80, allowed: true },
    ],
  },
  {
    name: "SCTP default-deny-ingress in x",
    protocols: ["SCTP"],
    policies: [policy("x", "deny-ingress", {})],
    expect: [["*", "x/*", false]],
  },
  {
    name: "a namespace label added later lets its pods in",
    namespaces: (nss) =>
      nss.map((n) => n.name === "y" ? { ...n, labels: { ...n.labels, ns2: "updated" } } : n),
    policies: [policy("x", "from-updated", {
      podSelector: labels({ pod: "a" }),
      ingress: [{ from: [{ namespaceSelector: labels({ ns2: "updated" }) }] }],
    })],
    expect: [["*", "x/a", false], ["y/*", "x/a", true]],
  },
  {
    name: "a pod label added later isolates the pod",
    pods: relabel("x/a", { target: "isolated" }),
    policies: [policy("x", "isolate-labelled", { podSelector: labels({ target: "isolated" }) })],
    expect: [["*", "x/a", false]],
  },
  {
    name: "egress and ingress of two namespaces meet (x to z on UDP 81 only)",
    policies: [
      policy("x", "udp-81-to-z", {
        ...egressOnly,
        egress: [{
          to: [{ namespaceSelector: labels({ ns: "z" }) }],
          ports: [{ port: 81, protocol: "UDP" }],
        }],
      }),
      policy("z", "from-x", { ingress: [{ from: [{ namespaceSelector: labels({ ns: "x" }) }] }] }),
    ],
    expect: [["x/*", "*", false], ["x/*", "z/*", true, "UDP/81"], ["y/*", "z/*", false], [
      "z/*",
      "z/*",
      false,
    ]],
  },
];
