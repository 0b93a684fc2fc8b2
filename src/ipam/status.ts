/**
 * What the IPAM reports, computed next to the ring: a pure function of the ring, this peer's
 * book (as counts), and which peers the mesh can reach now.
 */
import { type AddressRange, type Cidr, cidrToRange, formatCidr, formatRange } from "../net/cidr.ts";
import type { ClusterIpamStatus, PeerStatus } from "./cluster_types.ts";
import type { RingState } from "./ring.ts";
import type { PeerView } from "./standing.ts";
import { entryRanges, isDead, ownedSize } from "./ring.ts";
import { reclaimWaitingOn } from "./reclaim.ts";

export interface StatusInput extends PeerView {
  /** This peer's ranges with the book's counts for each. */
  owned: ReadonlyArray<{ range: AddressRange; size: number; used: number }>;
  /** Allocations in the book, inside our ranges or not. */
  allocations: number;
  waitingFor: string | undefined;
  pendingRequests: number;
}

export function clusterStatus(input: StatusInput): ClusterIpamStatus {
  const { state, cluster, me, reachable, waitingFor } = input;
  const owned = input.owned.map(({ range, size, used }) => {
    const [start, end] = formatRange(range).split("-");
    return { start, end, size, used };
  });
  const size = owned.reduce((sum, r) => sum + r.size, 0);
  const used = owned.reduce((sum, r) => sum + r.used, 0);
  const total = cidrToRange(cluster).end - cidrToRange(cluster).start;
  const peers: PeerStatus[] = state.peers.map((p) => {
    const self = p.name === me;
    return {
      name: p.name,
      gen: p.gen,
      mode: p.mode,
      owned: ownedSize(state, p.name),
      used: self ? used : p.used,
      free: self ? size - used : p.free,
      reachable: self || reachable.has(p.name),
      removed: isDead(state, p.name, p.gen) && !p.left,
      left: p.left === true,
    };
  });
  const unreachable = peers.filter((p) => !p.reachable && !p.removed)
    .reduce((sum, p) => sum + p.owned, 0);
  return {
    range: formatCidr(cluster),
    peerName: me,
    mode: input.init.mode,
    owned,
    size,
    used,
    free: size - used,
    ready: waitingFor === undefined,
    waitingFor,
    gen: input.gen,
    peers,
    unreachablePercentage: Math.round((unreachable / total) * 10000) / 100,
    pendingRequests: input.pendingRequests,
    ownerless: hasOwnerlessSpace(state),
    strayAllocations: input.allocations - used,
    reclaims: pendingReclaims(state),
  };
}

/** The NoSpaceError text: what we asked, and what every other peer reported. */
export function noSpaceMessage(
  status: ClusterIpamStatus,
  options: { subnet: Cidr | undefined; asked: readonly string[] },
): string {
  const where = options.subnet ? `subnet ${formatCidr(options.subnet)} of ` : "";
  const head = `No free address in ${where}${status.range} on peer "${status.peerName}"`;
  if (status.ownerless) {
    return `${head}: no live peer owns any space (all owners were removed or left); run ` +
      `"weft ipam adopt" on exactly one node`;
  }
  const peers = status.peers.filter((p) => p.name !== status.peerName)
    .map((p) => `${p.name}: ${p.free} free${p.reachable ? "" : ", unreachable"}`);
  return `${head} and no peer could give space (asked: ${options.asked.join(", ") || "nobody"}; ${
    peers.join("; ") || "no other peers"
  })`;
}

/** Removed peers that still own space: what each reclaim waits for. */
export function pendingReclaims(
  state: RingState,
): Array<{ peer: string; addresses: number; waitingOn: string[] }> {
  return Object.keys(state.tombstones).map((peer) => ({
    peer,
    addresses: deadSize(state, peer),
    waitingOn: reclaimWaitingOn(state, peer),
  })).filter((r) => r.addresses > 0);
}

/** True when the ring has entries but none is owned by a live peer. */
export function hasOwnerlessSpace(state: RingState): boolean {
  return state.entries.length > 0 && state.entries.every((e) => isDead(state, e.owner, e.gen));
}

/** Who owns which part of the range, in address order (the topology page's ring). */
export function ringSegments(
  state: RingState,
): Array<{ start: number; end: number; owner: string }> {
  return entryRanges(state).map(({ entry, range }) => ({ ...range, owner: entry.owner }));
}

/** True while a removed peer still owns space (its reclaim is unfinished). */
export function reclaimUnfinished(state: RingState): boolean {
  return state.entries.some((e) => isDead(state, e.owner, e.gen));
}

/** Addresses still held by removed generations of `name`. */
function deadSize(state: RingState, name: string): number {
  let size = 0;
  for (const { entry, range } of entryRanges(state)) {
    if (entry.owner === name && isDead(state, entry.owner, entry.gen)) {
      size += range.end - range.start;
    }
  }
  return size;
}
