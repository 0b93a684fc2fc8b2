/**
 * The underlay: which of our addresses peers should send to, and the MTU of the way there.
 *
 * Both come from the kernel's own route lookup toward a peer (`ip route get PEER`), not from a
 * default route: a node in an air-gapped network or a lab may have none, and a node with two
 * networks reaches its peers through the one that routes to them, whatever the default route
 * says. The pod MTU is derived from the link the underlay traffic actually leaves by, rather
 * than a constant, so 9000-byte underlays get 8950-byte pods and 1400-byte clouds do not drop
 * frames.
 */
import { CommandError, ipJson } from "./exec.ts";

interface RouteRow {
  type?: string;
  dev?: string;
  prefsrc?: string;
  metrics?: Array<{ mtu?: number }>;
}

interface LinkRow {
  ifname: string;
  mtu: number;
  addr_info?: Array<{ family: string; local: string; scope?: string }>;
}

export class UnderlayError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnderlayError";
  }
}

export interface UnderlayEndpoint {
  /** Our address on the underlay. */
  ip: string;
  /** MTU of the link (lowered by a route `mtu` lock when there is one). */
  mtu: number;
  device: string;
}

async function linkMtu(device: string): Promise<number> {
  const [link] = await ipJson<LinkRow>(["link", "show", "dev", device]);
  if (!link) throw new UnderlayError(`Underlay link "${device}" not found`);
  return link.mtu;
}

async function routeGet(destination: string): Promise<RouteRow> {
  try {
    const [route] = await ipJson<RouteRow>(["route", "get", destination]);
    if (route?.dev) return route;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    const words = error.stderr.replace(/^RTNETLINK answers: /, "").trim();
    throw new UnderlayError(`No route to ${destination}: ${words}`, { cause: error });
  }
  throw new UnderlayError(`No route to ${destination}`);
}

/** MTU of the link the kernel would use to reach `destination`, honouring route `mtu` locks. */
export async function routeMtu(destination: string): Promise<number> {
  const route = await routeGet(destination);
  const routeLimit = route.metrics?.find((m) => m.mtu)?.mtu;
  const device = await linkMtu(route.dev!);
  return routeLimit ? Math.min(routeLimit, device) : device;
}

/** The link holding `address` (an explicit `--host`); UnderlayError when no link holds it. */
export async function underlayOf(address: string): Promise<UnderlayEndpoint> {
  const links = await ipJson<LinkRow>(["-4", "addr", "show"]);
  const link = links.find((l) => l.addr_info?.some((a) => a.local === address));
  if (!link) throw new UnderlayError(`No interface holds underlay address ${address}`);
  return { ip: address, mtu: link.mtu, device: link.ifname };
}

/**
 * The address and link this node uses toward `destination` (a peer's address): the route's
 * source address, or, when `destination` is one of our own addresses, that address and its
 * link. UnderlayError with the kernel's words when there is no route.
 */
export async function underlayToward(destination: string): Promise<UnderlayEndpoint> {
  const route = await routeGet(destination);
  if (route.type === "local") return await underlayOf(destination);
  if (!route.prefsrc) {
    throw new UnderlayError(`The route to ${destination} (dev ${route.dev}) has no source address`);
  }
  const routeLimit = route.metrics?.find((m) => m.mtu)?.mtu;
  const device = await linkMtu(route.dev!);
  return {
    ip: route.prefsrc,
    mtu: routeLimit ? Math.min(routeLimit, device) : device,
    device: route.dev!,
  };
}

/**
 * The underlay MTU to assume before any peer says where the underlay is: the smallest MTU of the
 * links that hold a global IPv4 address, the ones in `exclude` (our bridge) left out; 1500 when
 * there is none. Pods made before the guess is replaced keep it; a wrong guess costs PMTU
 * discovery (VXLAN answers "frag needed"), never lost frames.
 */
export async function likelyUnderlayMtu(exclude: string[]): Promise<number> {
  const links = await ipJson<LinkRow>(["-4", "addr", "show", "scope", "global"]);
  const mtus = links
    .filter((l) => !exclude.includes(l.ifname) && l.ifname !== "lo")
    .map((l) => l.mtu);
  return mtus.length ? Math.min(...mtus) : 1500;
}
