/**
 * Pods and namespaces indexed for the questions policy asks: which pods a group means, the
 * labels of a pod's namespace, the pod behind an address. The evaluator answers group
 * membership through `inGroup` and the compiler through `select`, side by side here with the
 * same two matches, so the two can only disagree about rules, which is what the conformance test
 * compares.
 */
import { parseIp } from "../net/cidr.ts";
import type { PodGroup } from "./model.ts";
import { matches } from "./selector.ts";
import { type Namespace, NAMESPACE_NAME_LABEL, type Pod, type Protocol } from "./types.ts";

export class ClusterView {
  readonly pods: readonly Pod[];
  #namespaceLabels = new Map<string, Record<string, string>>();
  #byKey = new Map<string, Pod>();
  #byIp = new Map<number, Pod>();
  #addresses = new Map<Pod, number>();

  constructor(pods: readonly Pod[], namespaces: readonly Namespace[]) {
    this.pods = pods;
    for (const ns of namespaces) {
      this.#namespaceLabels.set(ns.name, { ...ns.labels, [NAMESPACE_NAME_LABEL]: ns.name });
    }
    for (const pod of pods) {
      this.#byKey.set(`${pod.namespace}/${pod.name}`, pod);
      const address = podAddress(pod);
      if (address === undefined) continue;
      this.#addresses.set(pod, address);
      this.#byIp.set(address, pod);
    }
  }

  /**
   * A namespace's labels. The API server always sets kubernetes.io/metadata.name to the name;
   * we add it too, so a namespace not seen yet (or served by a fake) still matches by name.
   */
  namespaceLabels(name: string): Record<string, string> {
    return this.#namespaceLabels.get(name) ?? { [NAMESPACE_NAME_LABEL]: name };
  }

  pod(key: string): Pod | undefined {
    return this.#byKey.get(key);
  }

  podAt(address: number): Pod | undefined {
    return this.#byIp.get(address);
  }

  /** The pod's IPv4 address as a number; undefined when it has none (yet). */
  address(pod: Pod): number | undefined {
    return this.#addresses.get(pod);
  }

  /**
   * The entries of `group`'s pods, from entries filed by namespace: `inGroup` for many pods at
   * once, choosing namespaces first (one label match per namespace, not one per pod), which is
   * what keeps recomputing every set on each change cheap.
   */
  select<T extends { pod: Pod }>(
    group: PodGroup,
    byNamespace: ReadonlyMap<string, readonly T[]>,
  ): T[] {
    const scope = group.namespaces;
    const namespaces = "name" in scope
      ? [scope.name]
      : [...byNamespace.keys()].filter((ns) => matches(scope.selector, this.namespaceLabels(ns)));
    return namespaces.flatMap((ns) =>
      (byNamespace.get(ns) ?? []).filter(({ pod }) => matches(group.pods, pod.labels))
    );
  }

  inGroup(group: PodGroup, pod: Pod): boolean {
    const scope = group.namespaces;
    if ("name" in scope) {
      if (pod.namespace !== scope.name) return false;
    } else if (!matches(scope.selector, this.namespaceLabels(pod.namespace))) {
      return false;
    }
    return matches(group.pods, pod.labels);
  }
}

/** The pod's address; pods without a valid IPv4 address are not on weft's network yet. */
export function podAddress(pod: Pod): number | undefined {
  if (typeof pod.ip !== "string") return undefined;
  try {
    return parseIp(pod.ip);
  } catch {
    return undefined;
  }
}

/** The container port numbers a pod's `name` resolves to for `protocol`. */
export function namedPortNumbers(pod: Pod, name: string, protocol: Protocol): number[] {
  return (pod.ports ?? [])
    .filter((p) => p.name === name && (p.protocol ?? "TCP") === protocol)
    .map((p) => p.containerPort);
}
