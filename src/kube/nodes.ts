/**
 * Pure reading of Node objects: which address a peer is reached on, and the peer list a set of
 * Nodes implies. Kept apart from the watcher so the rules are tested without any HTTP.
 */
import type { ResourceType } from "./informer.ts";

/** The slice of a v1 Node that weft reads. */
export interface KubeNode {
  metadata: { name: string; uid?: string; resourceVersion?: string };
  status?: { addresses?: { type: string; address: string }[] };
}

/** What the watcher remembers of a Node. */
export interface NodeSummary {
  name: string;
  /** Tells apart two Nodes that had the same name at different times. */
  uid: string;
  /** Where this node's weft listens, or undefined while the Node reports no usable address. */
  address?: string;
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * InternalIP first (the address nodes reach each other on inside a cluster), ExternalIP only as
 * a fallback; within a type IPv4 wins because the mesh underlay is IPv4.
 */
export function nodeAddress(node: KubeNode): string | undefined {
  const addresses = node.status?.addresses ?? [];
  for (const type of ["InternalIP", "ExternalIP"]) {
    const ofType = addresses.filter((a) => a.type === type && a.address);
    const chosen = ofType.find((a) => IPV4.test(a.address)) ?? ofType[0];
    if (chosen) return chosen.address;
  }
  return undefined;
}

export function summarizeNode(node: KubeNode): NodeSummary {
  return {
    name: node.metadata.name,
    uid: node.metadata.uid ?? "",
    address: nodeAddress(node),
  };
}

/** Nodes as the node watcher's informer keeps them: name, uid and peer address only. */
export const NODE_RESOURCE: ResourceType<NodeSummary> = {
  path: "/api/v1/nodes",
  slim: (raw) => summarizeNode(raw as unknown as KubeNode),
  indexes: {},
};

/** The other nodes' addresses, sorted and without duplicates; `self` is left out by name. */
export function peerAddresses(nodes: Iterable<NodeSummary>, self: string): string[] {
  const addresses = new Set<string>();
  for (const node of nodes) {
    if (node.name !== self && node.address) addresses.add(node.address);
  }
  return [...addresses].sort();
}

/**
 * The peer list kept sorted under single-node changes, so applying one watch event costs a
 * binary search and a splice rather than re-sorting the cluster. Counts let two Nodes share an
 * address (a re-created node before its old object is gone) without dropping it early.
 */
export class PeerAddressSet {
  #counts = new Map<string, number>();
  #sorted: string[] = [];

  /** Returns true when `address` became a member. */
  add(address: string | undefined): boolean {
    if (!address) return false;
    const count = this.#counts.get(address) ?? 0;
    this.#counts.set(address, count + 1);
    if (count > 0) return false;
    this.#sorted.splice(this.#position(address), 0, address);
    return true;
  }

  /** Returns true when `address` stopped being a member. */
  remove(address: string | undefined): boolean {
    if (!address) return false;
    const count = this.#counts.get(address) ?? 0;
    if (count === 0) return false;
    if (count > 1) {
      this.#counts.set(address, count - 1);
      return false;
    }
    this.#counts.delete(address);
    this.#sorted.splice(this.#position(address), 1);
    return true;
  }

  list(): string[] {
    return [...this.#sorted];
  }

  #position(address: string): number {
    let low = 0;
    let high = this.#sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#sorted[middle] < address) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
