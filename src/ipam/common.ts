/**
 * The rules of one allocation request that do not depend on the ring: argument checks, the
 * state file's identity, repeated requests, and which allocations a CNI GC releases.
 */
import { type Cidr, cidrToRange, cidrWithin, formatCidr } from "../net/cidr.ts";
import { IpamConflictError } from "./errors.ts";
import type { Allocation, Store } from "./store.ts";

export const DEFAULT_IFNAME = "eth0";

export interface AllocateOptions {
  /** Interface name inside the container; defaults to "eth0". */
  ifname?: string;
  /** Allocate inside this block of the cluster range only (per-application subnets). */
  subnet?: Cidr;
  /** The CNI network asking, recorded with the allocation (see `Allocation.network`). */
  network?: string;
}

export interface OwnedRangeStatus {
  /** First and last address of the range, dotted quads. */
  start: string;
  end: string;
  /** Usable addresses in it (the cluster range's network and broadcast excluded). */
  size: number;
  used: number;
}

export interface IpamStatus {
  range: string;
  peerName: string;
  mode: "consensus" | "seed" | "observer";
  owned: OwnedRangeStatus[];
  size: number;
  used: number;
  free: number;
  ready: boolean;
  /** When not ready: what the IPAM is waiting for, in words for people. */
  waitingFor: string | undefined;
}

export function checkRequest(
  cluster: Cidr,
  containerId: string,
  ifname: string,
  subnet: Cidr | undefined,
): void {
  if (containerId === "") throw new TypeError("Invalid container ID: it is empty");
  if (ifname === "") throw new TypeError(`Invalid interface name for "${containerId}": empty`);
  if (subnet && !cidrWithin(subnet, cluster)) {
    throw new RangeError(
      `Subnet ${formatCidr(subnet)} is not inside the cluster range ${formatCidr(cluster)}`,
    );
  }
}

/**
 * Records which cluster range and peer a state file belongs to. Opening it for another range
 * with allocations inside would hand out addresses already in pods, so that is refused.
 */
export function openCommon(store: Store, cluster: Cidr, peerName: string): void {
  const wanted = formatCidr(cluster);
  const recorded = store.getValue("cluster-range");
  if (recorded !== undefined && recorded !== wanted && store.loadAllocations().length > 0) {
    throw new IpamConflictError(
      `IPAM state is for range ${recorded} but ${wanted} was asked for; run "weft reset" to ` +
        `start over with the new range`,
    );
  }
  if (recorded !== wanted) {
    store.setValue("cluster-range", wanted);
    for (const key of ["owned-ranges", "ring"]) {
      if (store.getValue(key) !== undefined) store.setValue(key, "null");
    }
  }
  store.setValue("peer-name", peerName);
}

export function retainFilter(
  all: Allocation[],
  valid: Array<{ containerId: string; ifname: string }>,
  keep?: (allocation: Allocation) => boolean,
): Allocation[] {
  const wanted = new Set(valid.map((v) => `${v.containerId}\u0000${v.ifname}`));
  return all.filter((a) => !wanted.has(`${a.containerId}\u0000${a.ifname}`) && !(keep?.(a)));
}

/** A repeated request gets what it got before, unless it now asks for another subnet. */
export function existingOrConflict(existing: Allocation, subnet?: Cidr): Allocation {
  if (subnet) {
    const range = cidrToRange(subnet);
    if (existing.address < range.start || existing.address >= range.end) {
      throw new IpamConflictError(
        `Container "${existing.containerId}" interface "${existing.ifname}" already holds an ` +
          `address outside the requested subnet ${formatCidr(subnet)}`,
      );
    }
  }
  return existing;
}
