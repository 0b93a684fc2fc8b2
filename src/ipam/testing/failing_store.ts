/**
 * A store that fails like a full, read-only or broken disk while told to: every write throws
 * StoreUnavailableError, either at once (`at: "write"`) or when the transaction commits
 * (`at: "commit"`, after its writes went through), so a test sees the IPAM undo all of it.
 */
import { type StoreFailure, StoreUnavailableError } from "../errors.ts";
import type { Allocation, Store } from "../store.ts";

export class FailingStore implements Store {
  readonly path: string;
  #inner: Store;
  #failing: { reason: StoreFailure; at: "write" | "commit" } | undefined;
  #depth = 0;

  constructor(inner: Store, path: string) {
    this.#inner = inner;
    this.path = path;
  }

  /** Fails from now on for `reason` (undefined: works again). */
  fail(reason: StoreFailure | undefined, options: { at?: "write" | "commit" } = {}): void {
    this.#failing = reason && { reason, at: options.at ?? "write" };
  }

  loadAllocations(): Allocation[] {
    return this.#inner.loadAllocations();
  }

  insertAllocation(allocation: Allocation): void {
    this.#check("write");
    this.#inner.insertAllocation(allocation);
  }

  deleteAllocation(containerId: string, ifname: string): void {
    this.#check("write");
    this.#inner.deleteAllocation(containerId, ifname);
  }

  clearAllocations(): void {
    this.#check("write");
    this.#inner.clearAllocations();
  }

  getValue(key: string): string | undefined {
    return this.#inner.getValue(key);
  }

  setValue(key: string, value: string): void {
    this.#check("write");
    this.#inner.setValue(key, value);
  }

  transaction<T>(fn: () => T): T {
    return this.#inner.transaction(() => {
      this.#depth++;
      try {
        const result = fn();
        if (this.#depth === 1) this.#check("commit");
        return result;
      } finally {
        this.#depth--;
      }
    });
  }

  close(): void {
    this.#inner.close();
  }

  #check(at: "write" | "commit"): void {
    const failing = this.#failing;
    // Outside a transaction a single write commits at once.
    if (!failing || (failing.at === "commit" && at === "write" && this.#depth > 0)) return;
    throw new StoreUnavailableError(
      `Cannot write the IPAM state ${this.path}: failing as told (${failing.reason})`,
      failing.reason,
      this.path,
    );
  }
}
