/**
 * Underlay MTU discovery. The pod MTU is derived from the link the underlay traffic actually
 * leaves by (the route to a peer, or the link that holds our underlay address) rather than a
 * constant, so 9000-byte underlays get 8950-byte pods and 1400-byte clouds do not drop frames.
 */
import { ipJson } from "./exec.ts";

interface RouteRow {
  dev?: string;
  prefsrc?: string;
}

interface LinkRow {
  ifname: string;
  mtu: number;
  addr_info?: Array<{ family: string; local: string }>;
}

export class UnderlayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnderlayError";
  }
}

async function linkMtu(device: string): Promise<number> {
  const [link] = await ipJson<LinkRow>(["link", "show", "dev", device]);
  if (!link) throw new UnderlayError(`Underlay link "${device}" not found`);
  return link.mtu;
}

/** MTU of the link the kernel would use to reach `destination`, honouring route `mtu` locks. */
export async function routeMtu(destination: string): Promise<number> {
  const [route] = await ipJson<RouteRow & { metrics?: Array<{ mtu?: number }> }>([
    "route",
    "get",
    destination,
  ]);
  if (!route?.dev) throw new UnderlayError(`No route to underlay address ${destination}`);
  const routeLimit = route.metrics?.find((m) => m.mtu)?.mtu;
  const device = await linkMtu(route.dev);
  return routeLimit ? Math.min(routeLimit, device) : device;
}

/** The underlay address and MTU: of the link holding `address`, else of the default route. */
export async function underlayEndpoint(address?: string): Promise<{ ip: string; mtu: number }> {
  if (address) {
    const links = await ipJson<LinkRow>(["-4", "addr", "show"]);
    const link = links.find((l) => l.addr_info?.some((a) => a.local === address));
    if (!link) throw new UnderlayError(`No interface holds underlay address ${address}`);
    return { ip: address, mtu: link.mtu };
  }
  const [route] = await ipJson<RouteRow>(["route", "get", "1.1.1.1"]).catch(() => []);
  if (!route?.dev || !route.prefsrc) {
    throw new UnderlayError("No underlay address given and no default route to take one from");
  }
  return { ip: route.prefsrc, mtu: await linkMtu(route.dev) };
}
