/**
 * IPAM for a node that owns its space outright (single-node mode). Ownership is still a list
 * of ranges kept in the store, not "the whole range", so the cluster mode can hand ranges
 * between peers with the same book underneath.
 */
import { type AddressRange, type Cidr, cidrToRange, formatCidr, formatRange } from "../net/cidr.ts";
import { AllocationBook, normalizeRanges } from "./book.ts";
import { IpamConflictError, NoSpaceError } from "./errors.ts";
import type { Allocation, Store } from "./store.ts";
import {
  checkRequest,
  DEFAULT_IFNAME,
  type Ipam,
  type IpamStatus,
  openCommon,
  retainFilter,
} from "./common.ts";

export interface NodeIpamOptions {
  store: Store;
  clusterRange: Cidr;
  peerName: string;
  /** Clock in milliseconds since the epoch; defaults to Date.now. */
  now?: () => number;
}

export interface AllocateOptions {
  /** Interface name inside the container; defaults to "eth0". */
  ifname?: string;
  /** Allocate inside this block of the cluster range only (per-application subnets). */
  subnet?: Cidr;
  /** The CNI network asking, recorded with the allocation (see `Allocation.network`). */
  network?: string;
}

export class NodeIpam implements Ipam {
  #store: Store;
  #cluster: Cidr;
  #peerName: string;
  #now: () => number;
  #book: AllocationBook;
  #owned: AddressRange[];

  private constructor(options: NodeIpamOptions, owned: AddressRange[]) {
    this.#store = options.store;
    this.#cluster = options.clusterRange;
    this.#peerName = options.peerName;
    this.#now = options.now ?? Date.now;
    this.#book = new AllocationBook(options.store, options.clusterRange);
    this.#owned = owned;
  }

  static open(options: NodeIpamOptions): Promise<NodeIpam> {
    return Promise.resolve().then(() => {
      openCommon(options.store, options.clusterRange, options.peerName);
      const stored = options.store.getValue("owned-ranges");
      let owned: AddressRange[];
      if (stored === undefined || stored === "null") {
        owned = [cidrToRange(options.clusterRange)];
        options.store.setValue("owned-ranges", JSON.stringify(owned));
      } else owned = normalizeRanges(JSON.parse(stored) as AddressRange[]);
      return new NodeIpam(options, owned);
    });
  }

  get peerName(): string {
    return this.#peerName;
  }

  get clusterRange(): Cidr {
    return this.#cluster;
  }

  /**
   * The address of (containerId, ifname), allocating one if it has none. Idempotent: a repeated
   * call returns the same allocation. Never yields one address twice, however many calls run
   * at once, because choosing and recording happen in one synchronous step.
   */
  allocate(containerId: string, options: AllocateOptions = {}): Promise<Allocation> {
    return Promise.resolve().then(() => {
      const ifname = options.ifname ?? DEFAULT_IFNAME;
      checkRequest(this.#cluster, containerId, ifname, options.subnet);
      const existing = this.#book.find(containerId, ifname);
      if (existing) return existingOrConflict(existing, options.subnet);
      const allocation = this.#book.take(containerId, ifname, {
        owned: this.#owned,
        subnet: options.subnet,
        network: options.network,
        now: this.#now(),
      });
      if (!allocation) {
        const where = options.subnet ? `subnet ${formatCidr(options.subnet)} of ` : "";
        throw new NoSpaceError(
          `No free address in ${where}${formatCidr(this.#cluster)}: all ${this.#book.size} ` +
            `addresses this node owns there are in use`,
        );
      }
      return allocation;
    });
  }

  lookup(containerId: string, ifname?: string): Allocation[] {
    if (ifname !== undefined) {
      const found = this.#book.find(containerId, ifname);
      return found ? [found] : [];
    }
    return this.#book.byContainer(containerId);
  }

  /** Releases (containerId, ifname), or every interface of the container; returns what went. */
  release(containerId: string, ifname?: string): Allocation[] {
    const targets = this.lookup(containerId, ifname);
    return targets.map((a) => this.#book.release(a.containerId, a.ifname)).filter((a) =>
      a !== undefined
    );
  }

  /** CNI GC: releases every allocation not in `valid` and not kept by `keep`. */
  retainOnly(
    valid: Array<{ containerId: string; ifname: string }>,
    options: { keep?: (allocation: Allocation) => boolean } = {},
  ): Allocation[] {
    const doomed = retainFilter(this.#book.list(), valid, options.keep);
    return doomed.map((a) => this.#book.release(a.containerId, a.ifname)).filter((a) =>
      a !== undefined
    );
  }

  list(): Allocation[] {
    return this.#book.list();
  }

  status(): IpamStatus {
    const owned = this.#owned.map((range) => {
      const [start, end] = formatRange(range).split("-");
      return { start, end, size: this.#book.usableIn(range), used: this.#book.usedIn(range) };
    });
    const size = owned.reduce((sum, r) => sum + r.size, 0);
    const used = owned.reduce((sum, r) => sum + r.used, 0);
    return {
      range: formatCidr(this.#cluster),
      peerName: this.#peerName,
      mode: "single",
      owned,
      size,
      used,
      free: size - used,
      ready: true,
      waitingFor: undefined,
    };
  }

  close(): void {
    this.#store.close();
  }
}

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
