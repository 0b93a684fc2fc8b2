/**
 * The node's bridge: the L2 segment every local pod veth, the VXLAN device and the sleeve TAP
 * hang off. The agent owns it; everything here is idempotent so a restarted agent adopts the
 * bridge it (or a previous version of it) made instead of tearing pods' connectivity down.
 */
import { ip, ipJson } from "./exec.ts";

interface IpLink {
  ifname: string;
  mtu: number;
  address?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string };
}

interface IpAddrInfo {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

export interface BridgeState {
  name: string;
  mtu: number;
  mac: string;
  /** IPv4 addresses on the bridge as `a.b.c.d/n`. */
  addresses: string[];
}

export class BridgeConflictError extends Error {
  constructor(name: string, kind: string) {
    super(`Cannot use "${name}" as the weft bridge: a ${kind || "non-bridge"} link has that name`);
    this.name = "BridgeConflictError";
  }
}

/** Reads a link, or undefined when it does not exist. */
export async function readLink(name: string): Promise<IpLink | undefined> {
  try {
    const [link] = await ipJson<IpLink>(["-details", "link", "show", "dev", name]);
    return link;
  } catch {
    return undefined;
  }
}

export async function readBridge(name: string): Promise<BridgeState | undefined> {
  const link = await readLink(name);
  if (!link) return undefined;
  const [info] = await ipJson<IpAddrInfo>(["-4", "addr", "show", "dev", name]);
  return {
    name,
    mtu: link.mtu,
    mac: link.address ?? "",
    addresses: (info?.addr_info ?? []).filter((a) => a.family === "inet").map((a) =>
      `${a.local}/${a.prefixlen}`
    ),
  };
}

export interface EnsureBridgeOptions {
  /** The bridge's own address with the pod range's prefix, e.g. 10.32.0.1/12. */
  address: string;
  mac: string;
  /** Leave the MTU alone when undefined (the data path sets it to what its paths carry). */
  mtu?: number;
  /**
   * Addresses on the bridge that weft may remove when they are not `address` (earlier gateway
   * addresses of this node inside the pod range); others are the operator's and stay.
   */
  isStale?: (cidr: string) => boolean;
}

/**
 * Creates the bridge or adopts an existing one and brings it to the wanted address, MAC and
 * MTU. Refuses to take over a link of another kind, since deleting it could cut the node off.
 */
export async function ensureBridge(
  name: string,
  options: EnsureBridgeOptions,
): Promise<BridgeState> {
  const existing = await readLink(name);
  if (existing && existing.linkinfo?.info_kind !== "bridge") {
    throw new BridgeConflictError(name, existing.linkinfo?.info_kind ?? "");
  }
  const script: string[] = [];
  if (!existing) {
    // The bridge must not pick its MAC from its lowest port (it would change as pods come
    // and go, breaking other nodes' forwarding entries): set one explicitly.
    script.push(`link add name ${name} type bridge`);
  }
  const mtu = options.mtu === undefined ? "" : ` mtu ${options.mtu}`;
  script.push(`link set dev ${name} address ${options.mac}${mtu}`);
  script.push(`link set dev ${name} up`);
  await ip(["-batch", "-"], { stdin: script.join("\n") + "\n" });
  const state = await readBridge(name);
  if (!state) throw new Error(`Bridge "${name}" vanished while it was being configured`);
  for (const address of state.addresses) {
    if (address !== options.address && options.isStale?.(address)) {
      await ip(["addr", "del", address, "dev", name]);
    }
  }
  if (!state.addresses.includes(options.address)) {
    await ip(["addr", "add", options.address, "dev", name]);
  }
  return (await readBridge(name))!;
}

/** Deletes a link if it exists; returns whether it did. */
export async function deleteLink(name: string): Promise<boolean> {
  if (!(await readLink(name))) return false;
  await ip(["link", "del", "dev", name]);
  return true;
}

/** Names of links whose name starts with `prefix` (e.g. the pods' `vethwepl` host ends). */
export async function listLinksWithPrefix(prefix: string): Promise<string[]> {
  const links = await ipJson<IpLink>(["link", "show"]);
  return links.map((l) => l.ifname.split("@")[0]).filter((n) => n.startsWith(prefix));
}
