/**
 * Shuts down TCP sockets of this process, found by their addresses.
 *
 * Why: Deno (2.9) does not release a TLS connection's socket when it is closed before its TLS
 * handshake completed: `close()` waits for the handshake, and a peer that stays silent never
 * lets it finish, so the descriptor stays open for as long as that peer likes. shutdown(2) on
 * the socket ends the pending handshake with an error, after which Deno closes the descriptor
 * itself; nothing here closes a descriptor, so nothing can close one Deno still uses.
 *
 * The descriptor is found by asking each socket in /proc/self/fd for its two ends, so the cost
 * follows this process's descriptors, not the whole node's connection table.
 */
import { libc } from "./libc.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SHUT_RDWR = 2;

export interface SocketEnds {
  local: Deno.NetAddr;
  remote: Deno.NetAddr;
}

/** One spelling per address: IPv6 through the URL parser's canonical form. */
function canonical(hostname: string): string {
  return hostname.includes(":") ? new URL(`http://[${hostname}]/`).hostname : hostname;
}

function key(hostname: string, port: number): string {
  return `${canonical(hostname)}|${port}`;
}

/** Parses a sockaddr_in / sockaddr_in6 into `address|port`; undefined for other families. */
export function sockaddrKey(bytes: Uint8Array): string | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  const port = view.getUint16(2);
  if (family === AF_INET) return key(bytes.subarray(4, 8).join("."), port);
  if (family !== AF_INET6) return undefined;
  const groups = Array.from({ length: 8 }, (_, i) => view.getUint16(8 + 2 * i).toString(16));
  return key(groups.join(":"), port);
}

function endOf(fd: number, call: "getsockname" | "getpeername"): string | undefined {
  const address = new Uint8Array(128);
  const length = new Uint32Array([address.byteLength]);
  if (libc()[call](fd, address, new Uint8Array(length.buffer)) !== 0) return undefined;
  return sockaddrKey(address);
}

/**
 * Shuts down (both directions) each socket of this process whose ends are in `targets`;
 * returns how many it found. Sockets already gone are simply not found.
 */
export function shutdownSockets(targets: SocketEnds[]): number {
  const wanted = new Set(
    targets.map((t) =>
      `${key(t.local.hostname, t.local.port)} ${key(t.remote.hostname, t.remote.port)}`
    ),
  );
  let found = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    if (wanted.size === 0) break;
    const fd = Number(entry.name);
    let link: string;
    try {
      link = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // closed while we looked
    }
    if (!link.startsWith("socket:")) continue;
    const remote = endOf(fd, "getpeername");
    if (remote === undefined) continue;
    const ends = `${endOf(fd, "getsockname")} ${remote}`;
    if (!wanted.has(ends)) continue;
    wanted.delete(ends);
    libc().shutdown(fd, SHUT_RDWR);
    found++;
  }
  return found;
}
