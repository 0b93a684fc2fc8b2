/**
 * The cluster as this node's rule set must see it, from two sources that know different
 * things: the API (every pod's labels, node and, some time after it started, its address) and
 * this node's attachment book (which local address belongs to which pod, from the moment its
 * CNI ADD asked for it). A pure function of both, rebuilt on every change; the engine compiles
 * what it returns.
 *
 * The rules, and why:
 * - A local pod's address comes from the book only: the API learns it after the ADD returns
 *   (too late to protect the first packet), and a deleted pod the API still shows may carry an
 *   address the book has already given to a new pod.
 * - A local pod the API shows with an address the IPAM handed out before this agent started,
 *   and that the book does not know (attached before the book existed), keeps the API's
 *   address: better than leaving a running pod out of every set.
 * - An attachment whose pod is not known (not in the API yet, deleted, another incarnation than
 *   the ADD's K8S_POD_UID) is `pending` (all its traffic dropped) when its namespace has a
 *   policy, or may have one because the API has not been listed yet; otherwise it cannot be
 *   isolated, and it stays out of every set (others' policies then deny it, the safe side).
 * - Until the API has been listed, policies are unknown: an attachment made since is pending,
 *   and the table an earlier run left goes on enforcing for the pods it knew.
 * - An attachment without a pod identity (an ADD outside Kubernetes) is not a pod: unfiltered.
 */
import type {
  Namespace as KubeNamespace,
  NetworkPolicy as KubeNetworkPolicy,
  Pod as KubePod,
} from "../kube/mod.ts";
import type { Namespace, NetworkPolicy, Pod } from "../policy/mod.ts";
import type { Attachment } from "./policy_attachments.ts";
import { outsidePolicy, policyNamespace, policyOf, policyPod } from "./policy_mapping.ts";

export interface StateSources {
  node: string;
  /** True once pods, namespaces and policies have all been listed. */
  synced: boolean;
  pods: readonly KubePod[];
  pod(key: string): KubePod | undefined;
  /** Pods read with a GET for an ADD that came before the watch delivered them. */
  fetched: ReadonlyMap<string, KubePod>;
  namespaces: readonly KubeNamespace[];
  policies: readonly KubeNetworkPolicy[];
  /** True when some policy lives in the namespace. */
  hasPolicy(namespace: string): boolean;
  attachments: readonly Attachment[];
  /** Keys (`containerID\0ifname`) of attachments made before the API was listed. */
  unsyncedAttachments: ReadonlySet<string>;
  /**
   * Addresses this node's IPAM handed out before the book could learn them (this agent's start),
   * less those being released: a local pod the API shows at one of them keeps that address.
   */
  allocated?: ReadonlySet<string>;
}

/** What enforcement knows of one local address. */
export type LocalState =
  /** In its pod's sets. */
  | "enforced"
  /** Pod unknown and its namespace (maybe) isolated: every packet dropped. */
  | "pending"
  /** Pod unknown, but nothing could isolate it: in no set. */
  | "unknown"
  /** The ADD named no pod. */
  | "unidentified";

export interface LocalAddress {
  ip: string;
  state: LocalState;
  /** `namespace/name` as the ADD or the API named it. */
  pod?: string;
  attachment?: Attachment;
}

export interface PolicyState {
  policies: NetworkPolicy[];
  pods: Pod[];
  namespaces: Namespace[];
  pending: string[];
  local: LocalAddress[];
}

export function attachmentKey(ref: { containerID: string; ifname: string }): string {
  return `${ref.containerID}\0${ref.ifname}`;
}

export function buildPolicyState(sources: StateSources): PolicyState {
  const { node } = sources;
  const claimed = new Map<string, Attachment[]>();
  const local: LocalAddress[] = [];
  const pending: string[] = [];
  for (const attachment of sources.attachments) {
    const identity = attachment.pod;
    if (!identity) {
      local.push({ ip: attachment.ip, state: "unidentified", attachment });
      continue;
    }
    const key = `${identity.namespace}/${identity.name}`;
    const known = sources.pod(key) ?? sources.fetched.get(key);
    const same = known && !outsidePolicy(known) &&
      (!identity.uid || !known.uid || known.uid === identity.uid);
    // Before the first list, policies are unknown: a pod attached since is held pending, one
    // attached by an earlier run keeps what that run's table says of it.
    const fresh = sources.unsyncedAttachments.has(attachmentKey(attachment));
    if (sources.synced ? same : !fresh) {
      if (same) claimed.set(key, [...claimed.get(key) ?? [], attachment]);
      local.push({ ip: attachment.ip, state: "enforced", pod: key, attachment });
      continue;
    }
    const isolable = !sources.synced || sources.hasPolicy(identity.namespace);
    if (isolable) pending.push(attachment.ip);
    local.push({
      ip: attachment.ip,
      state: isolable ? "pending" : "unknown",
      pod: key,
      attachment,
    });
  }

  const attached = new Set(sources.attachments.map((a) => a.ip));
  const pods: Pod[] = [];
  const add = (kube: KubePod) => {
    const key = `${kube.namespace}/${kube.name}`;
    const mine = claimed.get(key);
    if (mine) {
      for (const a of mine) pods.push(policyPod(kube, { ip: a.ip, node })!);
      return;
    }
    const apiIp = policyPod(kube)?.ip;
    // an address this node's book gives to another pod is not this pod's any more
    const usable = apiIp !== undefined && !attached.has(apiIp) &&
      (kube.nodeName !== node || sources.allocated?.has(apiIp) === true);
    const pod = policyPod(kube, usable ? {} : { ip: null });
    if (!pod) return;
    pods.push(pod);
    if (usable && kube.nodeName === node) {
      local.push({ ip: apiIp, state: "enforced", pod: key });
    }
  };
  for (const kube of sources.pods) add(kube);
  for (const [key, kube] of sources.fetched) if (!sources.pod(key)) add(kube);

  return {
    policies: sources.policies.map(policyOf),
    pods,
    namespaces: sources.namespaces.map(policyNamespace),
    pending,
    local,
  };
}
