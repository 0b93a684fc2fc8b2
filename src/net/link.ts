/**
 * Pod links: the veth pair that joins a pod to the node's bridge, and the pod side's address
 * and routes.
 *
 * Creation goes through rtnetlink in-process (netlink.ts) when FFI is allowed, else through
 * two `ip -batch` processes, one on the node and one inside the pod: process starts dominate
 * the cost of a CNI ADD. The veth is created with its peer already in the pod's namespace and
 * with its final name, so there is no window where a half-named interface sits on the node. Each function undoes its own partial work before it throws; the
 * caller only has to undo the steps that completed.
 */

import { CommandError, run } from "./exec.ts";
import {
  linkIndex,
  netlinkAvailable,
  netlinkConfigurePod,
  netlinkCreateVeth,
  netlinkDeleteLink,
  NetlinkError,
} from "./netlink.ts";
import {
  commandInNetns,
  ipBatch,
  IpBatchError,
  ipJsonQueries,
  NetnsNotFoundError,
  type NetnsOptions,
} from "./netns.ts";

const ENOENT = 2;
const EEXIST = 17;

export class LinkExistsError extends Error {
  constructor(
    readonly linkName: string,
    readonly where: string,
    options: { cause?: unknown } = {},
  ) {
    super(`Cannot create interface "${linkName}" in ${where}: it already exists`, options);
    this.name = "LinkExistsError";
  }
}

export class LinkNotFoundError extends Error {
  constructor(readonly linkName: string, readonly where = "this netns") {
    super(`Interface "${linkName}" not found in ${where}`);
    this.name = "LinkNotFoundError";
  }
}

export class DefaultRouteExistsError extends Error {
  constructor(readonly netns: string, readonly gateway: string, options: { cause?: unknown } = {}) {
    super(
      `Cannot add default route via ${gateway} in netns "${netns}": the pod already has a ` +
        `default route (from another network)`,
      options,
    );
    this.name = "DefaultRouteExistsError";
  }
}

/** Interface names the kernel accepts: 1-15 bytes, no '/', ':' or whitespace, not . or .. */
export function isValidLinkName(name: string): boolean {
  return name.length > 0 && new TextEncoder().encode(name).length <= 15 &&
    !/[/:\s]/.test(name) && name !== "." && name !== "..";
}

/** A random locally administered unicast MAC (for links whose MAC nothing depends on). */
export function randomMac(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  bytes[0] = (bytes[0] & 0xfc) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * The MTU of a link in the current namespace. sysfs first (no process), `ip` as a fallback
 * for the case where /sys belongs to another namespace than the one we run in.
 */
export async function readMtu(name: string): Promise<number> {
  try {
    const text = await Deno.readTextFile(`/sys/class/net/${name}/mtu`);
    const mtu = Number(text.trim());
    if (Number.isInteger(mtu) && mtu > 0) return mtu;
  } catch {
    // fall through to ip: /sys may be mounted for a different namespace
  }
  const links = await ipJsonQueries([`link show dev ${name}`]);
  const link = links[0]?.[0] as { mtu?: number } | undefined;
  if (!link?.mtu) throw new LinkNotFoundError(name);
  return link.mtu;
}

export interface VethOptions {
  /** Name of the peer, created directly inside `peerNetns`. */
  peerName: string;
  /** Namespace file of the pod (a path, as CNI_NETNS gives it). */
  peerNetns: string;
  /** Bridge to enslave the host side to, with hairpin on. */
  bridge: string;
  mtu: number;
  hostMac?: string;
}

/**
 * Creates `hostName` on the node and its peer inside the pod, enslaves the host side to the
 * bridge (hairpin on, up). Throws `LinkExistsError` when either name is taken, leaving
 * everything as it was.
 */
export async function createVethOnBridge(hostName: string, options: VethOptions): Promise<void> {
  if (!netlinkAvailable()) return await createVethWithIp(hostName, options);
  const { peerName, peerNetns, bridge, mtu, hostMac = randomMac() } = options;
  try {
    netlinkCreateVeth(hostName, { peerName, peerNetns, bridge, mtu, hostMac });
  } catch (error) {
    if (!(error instanceof NetlinkError)) throw error;
    if (error.operation.startsWith("open(") && error.errno === ENOENT) {
      throw new NetnsNotFoundError(peerNetns, { cause: error });
    }
    if (error.operation.startsWith("find bridge")) throw new LinkNotFoundError(bridge);
    if (error.errno === EEXIST) {
      throw linkIndex(hostName)
        ? new LinkExistsError(hostName, "the node's netns", { cause: error })
        : new LinkExistsError(peerName, `netns "${peerNetns}"`, { cause: error });
    }
    throw error;
  }
}

async function createVethWithIp(hostName: string, options: VethOptions): Promise<void> {
  const { peerName, peerNetns, bridge, mtu, hostMac = randomMac() } = options;
  const lines = [
    `link add ${hostName} mtu ${mtu} address ${hostMac} type veth peer name ${peerName} mtu ${mtu} netns ${peerNetns}`,
    `link set dev ${hostName} master ${bridge}`,
    `link set dev ${hostName} type bridge_slave hairpin on`,
    `link set dev ${hostName} up`,
  ];
  try {
    await ipBatch(lines);
  } catch (error) {
    if (!(error instanceof IpBatchError)) throw error;
    if (error.line === 1) {
      if (!error.alreadyExists) throw error;
      const hostTaken = await linkExists(hostName);
      throw hostTaken
        ? new LinkExistsError(hostName, "the node's netns", { cause: error })
        : new LinkExistsError(peerName, `netns "${peerNetns}"`, { cause: error });
    }
    // The pair exists but is not on the bridge: take it away again (the peer goes with it).
    await deleteLink(hostName);
    throw error;
  }
}

export interface PodAddressOptions {
  /** Pod-side interface name. */
  ifname: string;
  mac: string;
  /** Address with prefix, e.g. 10.32.0.5/12. */
  address: string;
  gateway: string;
  /** Add `default via gateway`; fails with `DefaultRouteExistsError` when one exists. */
  defaultRoute: boolean;
}

/** Sets MAC, address, up and (optionally) the default route on a pod interface. */
export async function configurePodInterface(
  netns: string,
  options: PodAddressOptions,
): Promise<void> {
  if (!netlinkAvailable()) return await configurePodWithIp(netns, options);
  try {
    netlinkConfigurePod(netns, options);
  } catch (error) {
    if (!(error instanceof NetlinkError)) throw error;
    if (error.operation.startsWith("open(") && error.errno === ENOENT) {
      throw new NetnsNotFoundError(netns, { cause: error });
    }
    if (error.operation.startsWith("add default route") && error.errno === EEXIST) {
      throw new DefaultRouteExistsError(netns, options.gateway, { cause: error });
    }
    throw error;
  }
}

async function configurePodWithIp(netns: string, options: PodAddressOptions): Promise<void> {
  const { ifname, mac, address, gateway, defaultRoute } = options;
  const lines = [
    `link set dev ${ifname} address ${mac}`,
    `addr add ${address} dev ${ifname}`,
    `link set dev ${ifname} up`,
  ];
  if (defaultRoute) lines.push(`route add default via ${gateway} dev ${ifname}`);
  try {
    await ipBatch(lines, { netns });
  } catch (error) {
    if (error instanceof IpBatchError && error.line === 4 && error.alreadyExists) {
      throw new DefaultRouteExistsError(netns, gateway, { cause: error });
    }
    throw error;
  }
}

export interface LinkExistsOptions extends NetnsOptions {
  /**
   * A link known to exist here (e.g. the bridge). When sysfs shows it, sysfs belongs to this
   * namespace and its answer about `name` is trusted either way, which saves starting `ip`.
   */
  knownLink?: string;
}

/** True when a link of that name exists in the current namespace (sysfs, then `ip`). */
export async function linkExists(name: string, options: LinkExistsOptions = {}): Promise<boolean> {
  if (options.netns === undefined) {
    // if_nametoindex asks this thread's namespace directly: exact, and no process
    if (netlinkAvailable()) return linkIndex(name) !== 0;
    if (await pathExists(`/sys/class/net/${name}`)) return true;
    // a missing entry is only conclusive when this sysfs is our namespace's
    if (options.knownLink && await pathExists(`/sys/class/net/${options.knownLink}`)) return false;
  }
  const [links] = await ipJsonQueries([`link show dev ${name}`], options);
  return links !== undefined && links.length > 0;
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Deletes a link; returns false when it was already gone (DEL must tolerate that). */
export async function deleteLink(name: string, options: NetnsOptions = {}): Promise<boolean> {
  if (options.netns === undefined && netlinkAvailable()) return netlinkDeleteLink(name);
  const command = commandInNetns(["ip", "link", "del", "dev", name], options);
  const result = await run(command, { allowFailure: true });
  if (result.code === 0) return true;
  if (/Cannot find device|does not exist/.test(result.stderr)) return false;
  throw new CommandError(command, result.code, result.stderr);
}

/** What CHECK and tests read back from the kernel about one interface. */
export interface LinkState {
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  master?: string;
  hairpin?: boolean;
  /** The link's type as the kernel names it (`bridge`, `veth`, `vxlan`, ...). */
  kind?: string;
  /** IPv4 addresses with prefix. */
  addresses: string[];
}

/** Reads one link (and its IPv4 addresses); undefined when it does not exist. */
export async function readLink(
  name: string,
  options: NetnsOptions = {},
): Promise<LinkState | undefined> {
  const [details, addrs] = await ipJsonQueries(
    [`-d link show dev ${name}`, `-4 addr show dev ${name}`],
    options,
  );
  const link = details?.[0] as RawLink | undefined;
  if (!link) return undefined;
  const addrInfo = (addrs?.[0] as RawLink | undefined)?.addr_info ?? [];
  return {
    name: link.ifname,
    mac: link.address,
    mtu: link.mtu,
    up: link.flags.includes("UP"),
    master: link.master,
    hairpin: link.linkinfo?.info_slave_data?.hairpin,
    kind: link.linkinfo?.info_kind,
    addresses: addrInfo.map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** IPv4 default routes in a namespace, as `{ gateway, dev }`. */
export async function readDefaultRoutes(
  options: NetnsOptions = {},
): Promise<{ gateway?: string; dev: string }[]> {
  const [routes] = await ipJsonQueries(["-4 route show default"], options);
  return ((routes ?? []) as { gateway?: string; dev: string }[]).map((r) => ({
    gateway: r.gateway,
    dev: r.dev,
  }));
}

interface RawLink {
  ifname: string;
  address: string;
  mtu: number;
  flags: string[];
  master?: string;
  linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean } };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}
