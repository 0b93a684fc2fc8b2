/** Peer addresses as people type them (`host`, `host:port`, `[v6]:port`), made canonical. */
import { AddressError } from "./errors.ts";

export const DEFAULT_PORT = 6783;

/** `host[:port]` -> `host:port`, defaulting the port; throws `AddressError` naming bad input. */
export function normalizeAddress(text: string, options: { defaultPort?: number } = {}): string {
  const port = options.defaultPort ?? DEFAULT_PORT;
  const value = text.trim();
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(value);
  const plain = /^([A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?$/.exec(value);
  const match = v6 ?? plain;
  const portNumber = match?.[2] === undefined ? port : Number(match[2]);
  if (!match || portNumber < 1 || portNumber > 65535) {
    throw new AddressError(`Invalid peer address "${text}": expected host[:port]`);
  }
  return v6 ? `[${match[1]}]:${portNumber}` : `${match[1]}:${portNumber}`;
}

/** The host part of `host:port`, brackets kept for IPv6. */
export function hostOf(address: string): string {
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}

/** The host part without IPv6 brackets, lower-cased, for comparing addresses. */
function bareHost(host: string): string {
  return (host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host).toLowerCase();
}

/** This machine's interface addresses (loopback included), as `Deno.networkInterfaces()` says. */
export function localHostAddresses(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => bareHost(i.address.split("%")[0]));
  } catch {
    // Without --allow-sys there is no list: only loopback is surely this machine.
    return ["127.0.0.1", "::1"];
  }
}

/**
 * Whether `address` (`host:port`, as `normalizeAddress` gives) is this peer itself: one of this
 * host's addresses (or the unspecified address) with this peer's mesh port. Pure given
 * `hostAddresses`; by default they are this machine's (`localHostAddresses()`). Host names are
 * not resolved, so a name that points here is recognised only by the "connected to self" answer.
 * Used to skip this node in a `--peers` list that names every node, and to count distinct
 * other peers for the consensus quorum.
 */
export function isLocalAddress(
  address: string,
  options: { port: number; hostAddresses?: readonly string[] },
): boolean {
  const colon = address.lastIndexOf(":");
  if (colon < 0 || Number(address.slice(colon + 1)) !== options.port) return false;
  const host = bareHost(address.slice(0, colon));
  if (host === "0.0.0.0" || host === "::") return true;
  return (options.hostAddresses ?? localHostAddresses()).some((h) => bareHost(h) === host);
}

/**
 * Whether `address` is this peer's, given where it listens: our port on the listening host or,
 * listening on all addresses, on any of this host's (`hostAddresses`, default: the machine's).
 */
export function isOwnAddress(
  address: string,
  options: { listen: string; hostAddresses?: readonly string[] },
): boolean {
  const { listen } = options;
  const port = Number(listen.slice(listen.lastIndexOf(":") + 1));
  const host = bareHost(hostOf(listen));
  const any = host === "0.0.0.0" || host === "::";
  const hostAddresses = any ? options.hostAddresses ?? localHostAddresses() : [host];
  return isLocalAddress(address, { port, hostAddresses });
}
