/**
 * The allocation API over this node's book (weave's allocate.go): choose and record an address
 * inside the ranges the ring gives us, in one synchronous step; when they hold no free address,
 * wait for a donation from another peer and try again. Readiness and the donation are the
 * cluster's business; this only asks.
 */
import type { AddressRange, Cidr } from "../net/cidr.ts";
import type { AllocationBook } from "./book.ts";
import {
  type AllocateOptions,
  checkRequest,
  DEFAULT_IFNAME,
  existingOrConflict,
  retainFilter,
} from "./common.ts";
import { NoSpaceError } from "./errors.ts";
import type { Allocation } from "./store.ts";

export interface AllocatorOptions {
  cluster: Cidr;
  me: string;
  now: () => number;
  /** The ranges we own now. */
  owned: () => AddressRange[];
  /** Throws (NotReadyError) when no address may be handed out now. */
  checkReady: () => void;
  /** Resolves once a peer gave space in `subnet` (or anywhere); rejects with NoSpaceError. */
  wantSpace: (subnet: Cidr | undefined) => Promise<void>;
}

export class Allocator {
  #book: AllocationBook;
  #options: AllocatorOptions;

  constructor(book: AllocationBook, options: AllocatorOptions) {
    this.#book = book;
    this.#options = options;
  }

  async allocate(containerId: string, options: AllocateOptions = {}): Promise<Allocation> {
    const ifname = options.ifname ?? DEFAULT_IFNAME;
    const { cluster, me } = this.#options;
    checkRequest(cluster, containerId, ifname, options.subnet);
    for (let attempt = 0;; attempt++) {
      const existing = this.#book.find(containerId, ifname);
      if (existing) return existingOrConflict(existing, options.subnet);
      this.#options.checkReady();
      const allocation = this.#book.take(containerId, ifname, {
        owned: this.#options.owned(),
        subnet: options.subnet,
        network: options.network,
        now: this.#options.now(),
      });
      if (allocation) return allocation;
      if (attempt >= 4) {
        throw new NoSpaceError(
          `No free address for "${containerId}" on peer "${me}": space obtained from ` +
            `other peers was taken by concurrent requests ${attempt} times`,
        );
      }
      await this.#options.wantSpace(options.subnet);
    }
  }

  lookup(containerId: string, ifname?: string): Allocation[] {
    if (ifname !== undefined) {
      const found = this.#book.find(containerId, ifname);
      return found ? [found] : [];
    }
    return this.#book.byContainer(containerId);
  }

  release(containerId: string, ifname?: string): Allocation[] {
    return this.lookup(containerId, ifname).map((a) => this.#book.release(a.containerId, a.ifname))
      .filter((a) => a !== undefined);
  }

  retainOnly(
    valid: Array<{ containerId: string; ifname: string }>,
    options: { keep?: (allocation: Allocation) => boolean } = {},
  ): Allocation[] {
    return retainFilter(this.#book.list(), valid, options.keep)
      .map((a) => this.#book.release(a.containerId, a.ifname))
      .filter((a) => a !== undefined);
  }
}
