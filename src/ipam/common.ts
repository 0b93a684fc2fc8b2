/** Pieces NodeIpam and ClusterIpam share: request checks, state-file identity, GC filtering. */
import { type Cidr, cidrWithin, formatCidr } from "../net/cidr.ts";
import { IpamConflictError } from "./errors.ts";
import type { Allocation, Store } from "./store.ts";

/** What the agent needs from an IPAM; NodeIpam and ClusterIpam both provide it. */
export interface Ipam {
  allocate(
    containerId: string,
    options?: { ifname?: string; subnet?: Cidr; network?: string },
  ): Promise<Allocation>;
  lookup(containerId: string, ifname?: string): Allocation[];
  release(containerId: string, ifname?: string): Allocation[];
  retainOnly(
    valid: Array<{ containerId: string; ifname: string }>,
    options?: { keep?: (allocation: Allocation) => boolean },
  ): Allocation[];
  list(): Allocation[];
  status(): IpamStatus;
  close(): void;
}

export const DEFAULT_IFNAME = "eth0";

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
  mode: "single" | "consensus" | "seed" | "observer";
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
