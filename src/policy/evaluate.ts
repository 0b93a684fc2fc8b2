/**
 * The reachability oracle: may this endpoint open a connection to that one, on this port, by
 * the networking.k8s.io/v1 rules alone? It reads the policy models directly, with no sets, no
 * chains and nothing shaped for the kernel, so it can judge the compiled rule set (and, in the
 * lab, the kernel itself). A connection passes when the source's egress allows it (or the
 * source is not isolated for egress) and the destination's ingress allows it (likewise).
 */
import { parseIp } from "../net/cidr.ts";
import { ClusterView, namedPortNumbers } from "./cluster.ts";
import { modelPolicies, type PolicyModel, type PortModel, type RuleModel } from "./model.ts";
import type { Diagnostic, Namespace, NetworkPolicy, Pod, Protocol } from "./types.ts";

/** A pod (`namespace/name`), any other address, or a node by name with its address. */
export type Endpoint = { pod: string } | { ip: string } | { node: string; ip: string };

/** ICMP stands for any protocol without ports: only rules without `ports` allow it. */
export type ProbeProtocol = Protocol | "ICMP";

export interface Probe {
  from: Endpoint;
  to: Endpoint;
  protocol: ProbeProtocol;
  /** Destination port (ignored for ICMP). */
  port: number;
}

export interface DirectionVerdict {
  /** Policies that select the pod for this direction (`namespace/name`); none: not isolated. */
  selectedBy: string[];
  /** Those of them with a rule allowing this connection. */
  allowedBy: string[];
  allowed: boolean;
}

export interface Verdict {
  allowed: boolean;
  /** Why: "same-pod", "own-node", or "policy" (see `egress` and `ingress`). */
  reason: "same-pod" | "own-node" | "policy";
  egress: DirectionVerdict;
  ingress: DirectionVerdict;
}

export interface ClusterState {
  policies: readonly NetworkPolicy[];
  pods: readonly Pod[];
  namespaces: readonly Namespace[];
}

const OPEN: DirectionVerdict = { selectedBy: [], allowedBy: [], allowed: true };

/** Resolved endpoint: a known pod, or a bare address (with the node it is, if any). */
interface Resolved {
  pod?: Pod;
  address?: number;
  node?: string;
}

export class Reachability {
  readonly problems: Diagnostic[];
  readonly #policies: PolicyModel[];
  readonly #cluster: ClusterView;

  constructor(state: ClusterState) {
    const { policies, problems } = modelPolicies(state.policies);
    this.#policies = policies;
    this.problems = problems;
    this.#cluster = new ClusterView(state.pods, state.namespaces);
  }

  check(probe: Probe): Verdict {
    const from = this.#resolve(probe.from);
    const to = this.#resolve(probe.to);
    if (from.pod && from.pod === to.pod) return exempt("same-pod");
    // Kubernetes: traffic between a pod and the node it runs on always passes (kubelet probes).
    if (from.node !== undefined && to.pod?.node === from.node) return exempt("own-node");
    if (to.node !== undefined && from.pod?.node === to.node) return exempt("own-node");
    const egress = from.pod ? this.#direction(from.pod, "egress", to, to, probe) : OPEN;
    const ingress = to.pod ? this.#direction(to.pod, "ingress", from, to, probe) : OPEN;
    return { allowed: egress.allowed && ingress.allowed, reason: "policy", egress, ingress };
  }

  /** Which policies select a pod, per direction (`namespace/name`). */
  selecting(podKey: string): { ingress: string[]; egress: string[] } {
    const pod = this.#cluster.pod(podKey);
    if (!pod) throw new RangeError(`Unknown pod "${podKey}"`);
    const names = (kind: "ingress" | "egress") =>
      this.#selecting(pod, kind).map((p) => `${p.namespace}/${p.name}`);
    return { ingress: names("ingress"), egress: names("egress") };
  }

  #selecting(pod: Pod, kind: "ingress" | "egress"): PolicyModel[] {
    return this.#policies.filter((p) =>
      p[kind] !== undefined && this.#cluster.inGroup(p.target, pod)
    );
  }

  #direction(
    pod: Pod,
    kind: "ingress" | "egress",
    peer: Resolved,
    destination: Resolved,
    probe: Probe,
  ): DirectionVerdict {
    const selecting = this.#selecting(pod, kind);
    if (selecting.length === 0) return OPEN;
    const allowedBy = selecting.filter((policy) =>
      policy[kind]!.some((rule) =>
        this.#peerMatches(rule, peer) && portMatches(rule, destination.pod, probe)
      )
    ).map((p) => `${p.namespace}/${p.name}`);
    return {
      selectedBy: selecting.map((p) => `${p.namespace}/${p.name}`),
      allowedBy,
      allowed: allowedBy.length > 0,
    };
  }

  #peerMatches(rule: RuleModel, peer: Resolved): boolean {
    if (rule.peers === "all") return true;
    return rule.peers.some((p) => {
      if (p.kind === "pods") {
        return peer.pod !== undefined && this.#cluster.inGroup(p.group, peer.pod);
      }
      const address = peer.address;
      return address !== undefined &&
        p.block.ranges.some((r) => address >= r.start && address < r.end);
    });
  }

  #resolve(endpoint: Endpoint): Resolved {
    if ("pod" in endpoint) {
      const pod = this.#cluster.pod(endpoint.pod);
      if (!pod) throw new RangeError(`Unknown pod "${endpoint.pod}"`);
      return { pod, address: this.#cluster.address(pod) };
    }
    const address = parseIp(endpoint.ip);
    // An address that belongs to a pod is that pod (ipBlocks and selectors both apply).
    const pod = "node" in endpoint ? undefined : this.#cluster.podAt(address);
    return { pod, address, node: "node" in endpoint ? endpoint.node : undefined };
  }
}

function portMatches(rule: RuleModel, destination: Pod | undefined, probe: Probe): boolean {
  if (rule.ports === "all") return true;
  if (probe.protocol === "ICMP") return false;
  return rule.ports.some((port: PortModel) => {
    if (port.protocol !== probe.protocol) return false;
    if (port.kind === "numeric") return probe.port >= port.first && probe.port <= port.last;
    // A name resolves on the destination pod; an address that is no pod has no port names.
    return destination !== undefined &&
      namedPortNumbers(destination, port.name, port.protocol).includes(probe.port);
  });
}

function exempt(reason: "same-pod" | "own-node"): Verdict {
  return { allowed: true, reason, egress: OPEN, ingress: OPEN };
}
