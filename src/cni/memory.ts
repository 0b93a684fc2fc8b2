/**
 * In-memory agent and kernel for tests: the second implementation of the two boundaries the
 * plugin has. They keep just enough state to show what a real run would leave behind (links
 * per namespace, allocations), and let a test make any step fail.
 */

import {
  cidrContains,
  cidrSize,
  cidrWithin,
  formatIp,
  isReservedInCidr,
  macForAddress,
  parseCidr,
  parseIp,
} from "../net/cidr.ts";
import { CommandError } from "../net/exec.ts";
import {
  DefaultRouteExistsError,
  LinkExistsError,
  LinkNotFoundError,
  type LinkState,
  type PodAddressOptions,
  type VethOptions,
} from "../net/link.ts";
import {
  type AgentApi,
  AgentResponseError,
  type AgentStatus,
  AgentUnreachableError,
  type Allocation,
  type PodIdentity,
} from "./agent_client.ts";
import type { Attachment } from "./config.ts";
import type { NetnsInspection } from "../net/netns.ts";
import type { PodKernel } from "./kernel.ts";

export interface MemoryAgentOptions {
  range?: string;
  /** The bridge's address, handed out as every pod's gateway. */
  gateway?: string;
  bridge?: string;
  mtu?: number;
}

/** An agent with an in-memory allocator that follows the HTTP contract's error statuses. */
export class MemoryAgent implements AgentApi {
  /** When false, every call fails as if the agent were not ready (503, retry). */
  ready = true;
  /** When true, every call fails as if nothing listened on the port. */
  unreachable = false;
  /** The pod each allocation was asked for, by `containerID/ifname` (for assertions). */
  readonly pods = new Map<string, PodIdentity>();
  readonly #range;
  readonly #gateway: number;
  readonly #bridge: string;
  readonly #mtu: number;
  readonly #byKey = new Map<string, Allocation>();
  readonly #networks = new Map<string, string>();
  readonly #used = new Set<number>();

  constructor(options: MemoryAgentOptions = {}) {
    this.#range = parseCidr(options.range ?? "10.32.0.0/12");
    this.#gateway = parseIp(options.gateway ?? formatIp(this.#range.base + 1));
    this.#bridge = options.bridge ?? "weave";
    this.#mtu = options.mtu ?? 1500;
  }

  /** Every current allocation (for assertions). */
  get allocations(): Allocation[] {
    return [...this.#byKey.values()];
  }

  // deno-lint-ignore require-await
  async status(): Promise<AgentStatus> {
    this.#reachable("GET /status");
    return {
      ready: this.ready,
      bridge: {
        name: this.#bridge,
        address: `${formatIp(this.#gateway)}/${this.#range.prefix}`,
        mtu: this.#mtu,
      },
      range: `${formatIp(this.#range.base)}/${this.#range.prefix}`,
    };
  }

  // deno-lint-ignore require-await
  async allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string; pod?: PodIdentity },
  ): Promise<Allocation> {
    const request = `POST /ip/${containerID}`;
    this.#usable(request);
    if (options.pod) this.pods.set(`${containerID}/${options.ifname}`, options.pod);
    const existing = this.#byKey.get(key(containerID, options.ifname));
    if (existing) return existing;
    let pool = this.#range;
    if (options.subnet) {
      try {
        pool = parseCidr(options.subnet);
      } catch (error) {
        throw new AgentResponseError(400, { message: (error as Error).message, request });
      }
      if (!cidrWithin(pool, this.#range)) {
        throw new AgentResponseError(400, {
          message: `subnet ${options.subnet} is outside the range`,
          request,
        });
      }
    }
    for (let offset = 0; offset < cidrSize(pool); offset++) {
      const address = pool.base + offset;
      if (address === this.#gateway || this.#used.has(address)) continue;
      if (isReservedInCidr(this.#range, address) || isReservedInCidr(pool, address)) continue;
      const allocation: Allocation = {
        containerID,
        ifname: options.ifname,
        address: `${formatIp(address)}/${this.#range.prefix}`,
        gateway: formatIp(this.#gateway),
        mac: macForAddress(address),
      };
      if (options.network) this.#networks.set(key(containerID, options.ifname), options.network);
      this.#used.add(address);
      this.#byKey.set(key(containerID, options.ifname), allocation);
      return allocation;
    }
    throw new AgentResponseError(507, {
      message: `no free address in ${options.subnet ?? "the range"}`,
      request,
    });
  }

  // deno-lint-ignore require-await
  async release(containerID: string, options: { ifname?: string } = {}): Promise<void> {
    this.#usable(`DELETE /ip/${containerID}`);
    for (const [k, allocation] of this.#byKey) {
      if (allocation.containerID !== containerID) continue;
      if (options.ifname !== undefined && allocation.ifname !== options.ifname) continue;
      this.#byKey.delete(k);
      this.#used.delete(parseIp(allocation.address.split("/")[0]));
    }
  }

  // deno-lint-ignore require-await
  async lookup(containerID: string, options: { ifname: string }): Promise<Allocation | undefined> {
    this.#usable(`GET /ip/${containerID}`);
    return this.#byKey.get(key(containerID, options.ifname));
  }

  async gc(
    valid: Attachment[],
    options: { network?: string } = {},
  ): Promise<{ released: Attachment[] }> {
    this.#usable("POST /gc");
    const keep = new Set(valid.map((a) => key(a.containerID, a.ifname)));
    const released: Attachment[] = [];
    for (const allocation of this.allocations) {
      const k = key(allocation.containerID, allocation.ifname);
      if (keep.has(k)) continue;
      // another network's attachment (or one whose network is unknown) is not ours to collect
      if (options.network && this.#networks.get(k) !== options.network) continue;
      released.push({ containerID: allocation.containerID, ifname: allocation.ifname });
      await this.release(allocation.containerID, { ifname: allocation.ifname });
    }
    return { released };
  }

  /** True when `address` (with or without prefix) lies in the range. */
  contains(address: string): boolean {
    return cidrContains(this.#range, parseIp(address.split("/")[0]));
  }

  #reachable(request: string): void {
    if (this.unreachable) {
      throw new AgentUnreachableError("memory", { cause: new Error(`${request}: refused`) });
    }
  }

  #usable(request: string): void {
    this.#reachable(request);
    if (!this.ready) {
      throw new AgentResponseError(503, { message: "agent is not ready", request, retry: true });
    }
  }
}

function key(containerID: string, ifname: string): string {
  return `${containerID}\u0000${ifname}`;
}

interface MemoryLink extends LinkState {
  peer?: { netns: string; name: string };
}

const NODE = "";

/** A kernel made of maps: namespaces hold links; the node namespace is the empty string. */
export class MemoryKernel implements PodKernel {
  /** Set to make the next matching call throw (consumed once). */
  failNext: { step: "createVeth" | "configurePod" | "deleteHostLink"; error: Error } | undefined;
  readonly #namespaces = new Map<string, Map<string, MemoryLink>>([[NODE, new Map()]]);
  readonly #defaultRoutes = new Map<string, { gateway?: string; dev: string }[]>();
  readonly #files = new Set<string>();
  /** Paths that name the namespace the plugin runs in (the node's). */
  readonly nodeNetnsPaths = new Set(["/proc/1/ns/net", "/proc/self/ns/net"]);

  /** Adds a namespace (a pod's netns path). */
  addNetns(path: string): void {
    this.#namespaces.set(path, new Map());
    this.#defaultRoutes.set(path, []);
  }

  /** Removes a namespace; like the kernel, it takes the veth peers of its links with it. */
  removeNetns(path: string): void {
    for (const link of this.#namespaces.get(path)?.values() ?? []) {
      if (link.peer) this.#namespaces.get(link.peer.netns)?.delete(link.peer.name);
    }
    this.#namespaces.delete(path);
    this.#defaultRoutes.delete(path);
  }

  /** Adds a path that exists but is no namespace (an unmounted namespace's mount point). */
  addFile(path: string): void {
    this.#files.add(path);
  }

  addBridge(name: string, mtu = 1500): void {
    this.#node().set(name, { name, mac: "02:00:00:00:00:01", mtu, up: true, addresses: [] });
  }

  /** Names of links in a namespace (the node when no path is given). */
  links(netns = NODE): string[] {
    return [...(this.#namespaces.get(netns)?.keys() ?? [])];
  }

  /** Adds a default route as another plugin would. */
  addDefaultRoute(netns: string, route: { gateway: string; dev: string }): void {
    this.#defaultRoutes.get(netns)?.push(route);
  }

  // deno-lint-ignore require-await
  async inspectNetns(path: string): Promise<NetnsInspection> {
    if (this.nodeNetnsPaths.has(path)) return { kind: "current" };
    if (this.#files.has(path)) return { kind: "not-network", what: "an empty regular file" };
    return path !== NODE && this.#namespaces.has(path) ? { kind: "other" } : { kind: "missing" };
  }

  // deno-lint-ignore require-await
  async linkMtu(name: string): Promise<number> {
    const link = this.#node().get(name);
    if (!link) throw new LinkNotFoundError(name);
    return link.mtu;
  }

  // deno-lint-ignore require-await
  async createVeth(hostName: string, options: VethOptions): Promise<void> {
    this.#maybeFail("createVeth");
    const pod = this.#namespaces.get(options.peerNetns);
    if (!pod) throw new CommandError(["ip", "link", "add"], 1, `Invalid "netns" value`);
    if (this.#node().has(hostName)) throw new LinkExistsError(hostName, "the node's netns");
    if (pod.has(options.peerName)) {
      throw new LinkExistsError(options.peerName, `netns "${options.peerNetns}"`);
    }
    if (!this.#node().has(options.bridge)) {
      throw new CommandError(["ip", "link", "set"], 1, `Cannot find device "${options.bridge}"`);
    }
    this.#node().set(hostName, {
      name: hostName,
      mac: options.hostMac ?? "02:00:00:00:00:02",
      mtu: options.mtu,
      up: true,
      master: options.bridge,
      hairpin: true,
      addresses: [],
      peer: { netns: options.peerNetns, name: options.peerName },
    });
    pod.set(options.peerName, {
      name: options.peerName,
      mac: "02:00:00:00:00:03",
      mtu: options.mtu,
      up: false,
      addresses: [],
      peer: { netns: NODE, name: hostName },
    });
  }

  // deno-lint-ignore require-await
  async configurePod(netns: string, options: PodAddressOptions): Promise<void> {
    this.#maybeFail("configurePod");
    const link = this.#namespaces.get(netns)?.get(options.ifname);
    if (!link) throw new CommandError(["ip"], 1, `Cannot find device "${options.ifname}"`);
    const routes = this.#defaultRoutes.get(netns) ?? [];
    link.mac = options.mac;
    link.addresses.push(options.address);
    link.up = true;
    if (options.defaultRoute) {
      // Like an ip batch, the earlier lines have taken effect when the route line fails.
      if (routes.length) throw new DefaultRouteExistsError(netns, options.gateway);
      routes.push({ gateway: options.gateway, dev: options.ifname });
    }
  }

  // deno-lint-ignore require-await
  async hostLinkExists(name: string): Promise<boolean> {
    return this.#node().has(name);
  }

  // deno-lint-ignore require-await
  async deleteHostLink(name: string): Promise<boolean> {
    this.#maybeFail("deleteHostLink");
    const link = this.#node().get(name);
    if (!link) return false;
    this.#node().delete(name);
    if (link.peer) {
      this.#namespaces.get(link.peer.netns)?.delete(link.peer.name);
      const routes = this.#defaultRoutes.get(link.peer.netns);
      if (routes) {
        this.#defaultRoutes.set(link.peer.netns, routes.filter((r) => r.dev !== link.peer!.name));
      }
    }
    return true;
  }

  // deno-lint-ignore require-await
  async readHostLink(name: string): Promise<LinkState | undefined> {
    return snapshot(this.#node().get(name));
  }

  // deno-lint-ignore require-await
  async readPodLink(netns: string, name: string): Promise<LinkState | undefined> {
    return snapshot(this.#namespaces.get(netns)?.get(name));
  }

  // deno-lint-ignore require-await
  async readPodDefaultRoutes(netns: string): Promise<{ gateway?: string; dev: string }[]> {
    return [...(this.#defaultRoutes.get(netns) ?? [])];
  }

  #node(): Map<string, MemoryLink> {
    return this.#namespaces.get(NODE)!;
  }

  #maybeFail(step: "createVeth" | "configurePod" | "deleteHostLink"): void {
    if (this.failNext?.step !== step) return;
    const { error } = this.failNext;
    this.failNext = undefined;
    throw error;
  }
}

function snapshot(link: MemoryLink | undefined): LinkState | undefined {
  if (!link) return undefined;
  const { peer: _peer, ...state } = link;
  return { ...state, addresses: [...state.addresses] };
}
