/**
 * Where the IPAM keeps what must survive a restart: the allocations and a few named values
 * (the cluster range, allocation cursors, the ring). The interface is synchronous on purpose:
 * an allocation picks an address and records it in one uninterrupted step, so two concurrent
 * requests in the agent can never see the same address as free. A store that cannot write
 * (full, read-only, I/O) throws StoreUnavailableError and leaves the failed write undone.
 */
import { StoreUnavailableError } from "./errors.ts";

/** One address handed to one interface of one container. */
export interface Allocation {
  containerId: string;
  ifname: string;
  /** IPv4 address as an unsigned 32-bit number (see src/net/cidr.ts). */
  address: number;
  /** Milliseconds since the epoch, from the IPAM's clock. */
  createdAt: number;
  /**
   * The CNI network (config `name`) that asked for it, when known: a garbage collection run for
   * one network must leave the others' attachments alone.
   */
  network?: string;
}

export interface Store {
  /** Every stored allocation, in no particular order. */
  loadAllocations(): Allocation[];
  /** Inserts an allocation; throws if the address or the (containerId, ifname) key is taken. */
  insertAllocation(allocation: Allocation): void;
  /** Deletes one allocation; deleting a missing one is not an error. */
  deleteAllocation(containerId: string, ifname: string): void;
  /** Deletes every allocation (a peer that was reclaimed while away starts clean). */
  clearAllocations(): void;
  getValue(key: string): string | undefined;
  setValue(key: string, value: string): void;
  /** Runs `fn` atomically: all of its writes land, or none do when it throws. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

/** Thrown by a store when an insert would break uniqueness; a bug if the IPAM ever sees it. */
export class DuplicateAllocationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DuplicateAllocationError";
  }
}

/**
 * A store that remembers its last failure to write (a StoreUnavailableError) until a write
 * succeeds again: what ClusterIpam reports as a diagnostic while the disk is full or read-only.
 */
export class WatchedStore implements Store {
  #inner: Store;
  #now: () => number;
  #depth = 0;
  #failure: { error: StoreUnavailableError; since: number } | undefined;

  constructor(inner: Store, now: () => number) {
    this.#inner = inner;
    this.#now = now;
  }

  /** The failure writes have hit since the last successful write, if any. */
  get failure(): { error: StoreUnavailableError; since: number } | undefined {
    return this.#failure;
  }

  loadAllocations(): Allocation[] {
    return this.#watch(false, () => this.#inner.loadAllocations());
  }

  insertAllocation(allocation: Allocation): void {
    this.#watch(true, () => this.#inner.insertAllocation(allocation));
  }

  deleteAllocation(containerId: string, ifname: string): void {
    this.#watch(true, () => this.#inner.deleteAllocation(containerId, ifname));
  }

  clearAllocations(): void {
    this.#watch(true, () => this.#inner.clearAllocations());
  }

  getValue(key: string): string | undefined {
    return this.#watch(false, () => this.#inner.getValue(key));
  }

  setValue(key: string, value: string): void {
    this.#watch(true, () => this.#inner.setValue(key, value));
  }

  transaction<T>(fn: () => T): T {
    return this.#watch(true, () => this.#inner.transaction(fn));
  }

  close(): void {
    this.#inner.close();
  }

  /** Only the outermost call counts: a write inside a transaction succeeds only with it. */
  #watch<T>(write: boolean, fn: () => T): T {
    this.#depth++;
    try {
      const result = fn();
      if (write && this.#depth === 1) this.#failure = undefined;
      return result;
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        this.#failure = { error, since: this.#failure?.since ?? this.#now() };
      }
      throw error;
    } finally {
      this.#depth--;
    }
  }
}
