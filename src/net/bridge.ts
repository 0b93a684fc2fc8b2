/**
 * The node's bridge: the L2 segment every local pod veth, the VXLAN device and the sleeve TAP
 * hang off. The agent owns it; everything here is idempotent so a restarted agent adopts the
 * bridge it (or a previous version of it) made instead of tearing pods' connectivity down.
 */
import { ip, ipJson } from "./exec.ts";
import { readLink } from "./link.ts";

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

export async function readBridge(name: string): Promise<BridgeState | undefined> {
  const link = await readLink(name);
  if (!link) return undefined;
  return { name, mtu: link.mtu, mac: link.mac, addresses: link.addresses };
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
  if (existing && existing.kind !== "bridge") {
    throw new BridgeConflictError(name, existing.kind ?? "");
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

/** Names of links whose name starts with `prefix` (e.g. the pods' `vethwepl` host ends). */
export async function listLinksWithPrefix(prefix: string): Promise<string[]> {
  const links = await ipJson<{ ifname: string }>(["link", "show"]);
  return links.map((l) => l.ifname.split("@")[0]).filter((n) => n.startsWith(prefix));
}
