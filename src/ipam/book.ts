/**
 * The allocation book: which address each (container, interface) holds, and how a free
 * address is chosen inside whatever ranges this node owns right now. It knows nothing about
 * how ownership is decided (single node or ring), so both NodeIpam and ClusterIpam use it.
 *
 * Choice is next-fit: search starts just after the last address handed out in the same scope
 * and wraps around, so a just-freed address is the last one reused. A new pod then rarely
 * inherits a dead pod's address while neighbours still hold its ARP entry or conntrack state.
 */
import {
  type AddressRange,
  type Cidr,
  cidrToRange,
  formatCidr,
  intersectRanges,
  isReservedInCidr,
} from "../net/cidr.ts";
import type { Allocation, Store } from "./store.ts";

function keyOf(containerId: string, ifname: string): string {
  return `${containerId}\u0000${ifname}`;
}

/** Sorted, non-overlapping, merged copy of `ranges`. */
export function normalizeRanges(ranges: readonly AddressRange[]): AddressRange[] {
  const sorted = ranges.filter((r) => r.end > r.start).map((r) => ({ start: r.start, end: r.end }))
    .sort((a, b) => a.start - b.start);
  const merged: AddressRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last && range.start <= last.end) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, range.end) };
    } else merged.push(range);
  }
  return merged;
}

export class AllocationBook {
  #store: Store;
  #cluster: Cidr;
  #byKey = new Map<string, Allocation>();
  #byAddress = new Map<number, Allocation>();

  constructor(store: Store, cluster: Cidr) {
    this.#store = store;
    this.#cluster = cluster;
    this.reload();
  }

  /**
   * Re-reads the store: at open, and after a transition that dropped the allocations (a peer
   * reclaimed while away starts clean) has committed.
   */
  reload(): void {
    this.#byKey.clear();
    this.#byAddress.clear();
    for (const allocation of this.#store.loadAllocations()) this.#remember(allocation);
  }

  find(containerId: string, ifname: string): Allocation | undefined {
    const found = this.#byKey.get(keyOf(containerId, ifname));
    return found && { ...found };
  }

  byContainer(containerId: string): Allocation[] {
    return this.list().filter((a) => a.containerId === containerId);
  }

  holder(address: number): Allocation | undefined {
    const found = this.#byAddress.get(address);
    return found && { ...found };
  }

  list(): Allocation[] {
    return [...this.#byKey.values()].map((a) => ({ ...a })).sort((a, b) => a.address - b.address);
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Addresses in use inside `range`. */
  usedIn(range: AddressRange): number {
    let used = 0;
    for (const address of this.#byAddress.keys()) {
      if (address >= range.start && address < range.end) used++;
    }
    return used;
  }

  /** Addresses of `range` a pod may hold (the cluster's network and broadcast excluded). */
  usableIn(range: AddressRange): number {
    let size = range.end - range.start;
    for (const address of this.#reservedAddresses()) {
      if (address >= range.start && address < range.end) size--;
    }
    return size;
  }

  /**
   * Picks a free address inside `owned` (intersected with `subnet` when given), records it and
   * returns it; undefined when every such address is taken. Synchronous from choice to record.
   */
  take(
    containerId: string,
    ifname: string,
    options: { owned: readonly AddressRange[]; subnet?: Cidr; now: number; network?: string },
  ): Allocation | undefined {
    const scope = options.subnet ?? this.#cluster;
    const scopeRange = cidrToRange(scope);
    const pieces = normalizeRanges(
      options.owned.map((r) => intersectRanges(r, scopeRange)).filter((r) => r !== undefined),
    );
    if (pieces.length === 0) return undefined;
    const cursorKey = `cursor:${formatCidr(scope)}`;
    const cursor = Number(this.#store.getValue(cursorKey) ?? scope.base - 1);
    const address = this.#search(pieces, cursor + 1, scope);
    if (address === undefined) return undefined;
    const allocation: Allocation = {
      containerId,
      ifname,
      address,
      createdAt: options.now,
      ...(options.network === undefined ? {} : { network: options.network }),
    };
    this.#store.transaction(() => {
      this.#store.insertAllocation(allocation);
      this.#store.setValue(cursorKey, String(address));
    });
    this.#remember(allocation);
    return { ...allocation };
  }

  release(containerId: string, ifname: string): Allocation | undefined {
    const key = keyOf(containerId, ifname);
    const found = this.#byKey.get(key);
    if (!found) return undefined;
    this.#store.deleteAllocation(containerId, ifname);
    this.#byKey.delete(key);
    this.#byAddress.delete(found.address);
    return { ...found };
  }

  #remember(allocation: Allocation): void {
    this.#byKey.set(keyOf(allocation.containerId, allocation.ifname), allocation);
    this.#byAddress.set(allocation.address, allocation);
  }

  #reservedAddresses(): number[] {
    const range = cidrToRange(this.#cluster);
    return isReservedInCidr(this.#cluster, range.start) ? [range.start, range.end - 1] : [];
  }

  #free(address: number, scope: Cidr): boolean {
    return !this.#byAddress.has(address) && !isReservedInCidr(this.#cluster, address) &&
      !isReservedInCidr(scope, address);
  }

  /** Next-fit over the sorted pieces, starting at `from` and wrapping once. */
  #search(pieces: AddressRange[], from: number, scope: Cidr): number | undefined {
    let first = pieces.findIndex((p) => p.end > from);
    if (first < 0) first = 0;
    for (let step = 0; step <= pieces.length; step++) {
      const piece = pieces[(first + step) % pieces.length];
      // The first piece is visited twice: from the cursor on, and at the very end below it.
      const start = step === 0 ? Math.max(piece.start, from) : piece.start;
      const end = step === pieces.length
        ? Math.min(piece.end, Math.max(piece.start, from))
        : piece.end;
      if (end <= start || this.usedIn({ start, end }) >= end - start) continue;
      for (let address = start; address < end; address++) {
        if (this.#free(address, scope)) return address;
      }
    }
    return undefined;
  }
}
