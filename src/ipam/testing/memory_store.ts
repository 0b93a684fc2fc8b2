/**
 * The in-memory store and a store view that survives close(): test and simulation doubles of
 * the SQLite store (the agent always persists).
 */
import { type Allocation, DuplicateAllocationError, type Store } from "../store.ts";

/**
 * A view of `inner` whose close() does nothing: a peer "restarting" on the same in-memory store
 * finds its state again (simulations and tests; a SQLite store survives by its file).
 */
export function unclosable(inner: Store): Store {
  return {
    loadAllocations: () => inner.loadAllocations(),
    insertAllocation: (a) => inner.insertAllocation(a),
    deleteAllocation: (c, i) => inner.deleteAllocation(c, i),
    clearAllocations: () => inner.clearAllocations(),
    getValue: (k) => inner.getValue(k),
    setValue: (k, v) => inner.setValue(k, v),
    transaction: (fn) => inner.transaction(fn),
    close: () => {},
  };
}

function keyOf(containerId: string, ifname: string): string {
  return `${containerId}\u0000${ifname}`;
}

/** The in-memory store: for tests and for peers that need no persistence (simulations). */
export class MemoryStore implements Store {
  #allocations = new Map<string, Allocation>();
  #addresses = new Set<number>();
  #values = new Map<string, string>();
  /** Inverse operations of the running transaction, newest last (an undo log, not a copy). */
  #undo: Array<() => void> | undefined;
  #closed = false;

  loadAllocations(): Allocation[] {
    this.#check();
    return [...this.#allocations.values()].map((a) => ({ ...a }));
  }

  insertAllocation(allocation: Allocation): void {
    this.#check();
    const key = keyOf(allocation.containerId, allocation.ifname);
    if (this.#allocations.has(key)) {
      throw new DuplicateAllocationError(
        `Allocation for container "${allocation.containerId}" interface "${allocation.ifname}" already exists`,
      );
    }
    if (this.#addresses.has(allocation.address)) {
      throw new DuplicateAllocationError(`Address ${allocation.address} is already allocated`);
    }
    this.#allocations.set(key, { ...allocation });
    this.#addresses.add(allocation.address);
    this.#undo?.push(() => {
      this.#allocations.delete(key);
      this.#addresses.delete(allocation.address);
    });
  }

  deleteAllocation(containerId: string, ifname: string): void {
    this.#check();
    const key = keyOf(containerId, ifname);
    const found = this.#allocations.get(key);
    if (!found) return;
    this.#allocations.delete(key);
    this.#addresses.delete(found.address);
    this.#undo?.push(() => {
      this.#allocations.set(key, found);
      this.#addresses.add(found.address);
    });
  }

  clearAllocations(): void {
    this.#check();
    const allocations = this.#allocations;
    const addresses = this.#addresses;
    this.#allocations = new Map();
    this.#addresses = new Set();
    this.#undo?.push(() => {
      this.#allocations = allocations;
      this.#addresses = addresses;
    });
  }

  getValue(key: string): string | undefined {
    this.#check();
    return this.#values.get(key);
  }

  setValue(key: string, value: string): void {
    this.#check();
    const previous = this.#values.get(key);
    this.#values.set(key, value);
    this.#undo?.push(() => {
      if (previous === undefined) this.#values.delete(key);
      else this.#values.set(key, previous);
    });
  }

  transaction<T>(fn: () => T): T {
    this.#check();
    if (this.#undo) return fn(); // nested: joins the outer transaction
    const undo: Array<() => void> = [];
    this.#undo = undo;
    try {
      return fn();
    } catch (error) {
      for (const step of undo.reverse()) step();
      throw error;
    } finally {
      this.#undo = undefined;
    }
  }

  close(): void {
    this.#closed = true;
  }

  #check(): void {
    if (this.#closed) throw new Error("Cannot use IPAM memory store: it is closed");
  }
}
