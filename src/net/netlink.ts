/**
 * rtnetlink from inside the process, through libc (Deno.dlopen), for the CNI plugin's hot path.
 *
 * Why: starting a process from this runtime costs 10-35 ms (the first one most), and an ADD
 * needs two (`ip` on the node, `nsenter ip` in the pod); a netlink request costs microseconds.
 * The `ip` versions in link.ts stay the reference and the fallback (no FFI permission, or
 * WEFT_NETLINK=0), and they are what CHECK and people read with.
 *
 * Namespaces: a netlink socket belongs to the namespace it was created in. To talk to a pod we
 * switch this thread into its namespace with setns(), create the socket, and switch back at
 * once, all in one synchronous stretch of JS, so no other operation can run in between and
 * nothing else ever sees the pod's namespace (see netns.ts for the process-based rule).
 */

import {
  defaultRouteMessage,
  deleteLinkMessage,
  encodeBatch,
  hairpinMessage,
  type NetlinkStep,
  newAddressMessage,
  newVethMessage,
  NLMSG_ERROR,
  setMacMessage,
  setUpMessage,
} from "./netlink_message.ts";

const symbols = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof symbols>["symbols"];
let loaded: Libc | undefined | null;

/** libc, or undefined when FFI is not allowed or not available here. */
function libc(): Libc | undefined {
  if (loaded === undefined) {
    try {
      loaded = Deno.dlopen("libc.so.6", symbols).symbols;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}

/** True when netlink can be used (FFI allowed, not turned off with WEFT_NETLINK=0). */
export function netlinkAvailable(): boolean {
  let disabled = false;
  try {
    disabled = Deno.env.get("WEFT_NETLINK") === "0";
  } catch {
    // no env permission: use the default
  }
  return !disabled && libc() !== undefined;
}

function errno(): number {
  const pointer = libc()!.__errno_location();
  return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  25: "ENOTTY",
  95: "EOPNOTSUPP",
};

/** A netlink request the kernel refused; `errno` is positive (17 = EEXIST, 19 = ENODEV). */
export class NetlinkError extends Error {
  constructor(readonly operation: string, readonly errno: number) {
    super(`Netlink ${operation} failed: ${ERRNO_NAMES[errno] ?? "errno"} (${errno})`);
    this.name = "NetlinkError";
  }
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;

const encoder = new TextEncoder();

function cString(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

/** Opens a namespace file, throwing with the path when it cannot. */
function openNetns(path: string): number {
  const fd = libc()!.open(cString(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw new NetlinkError(`open("${path}")`, errno());
  return fd;
}

function openSocket(): number {
  const fd = libc()!.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) throw new NetlinkError("socket", errno());
  return fd;
}

/**
 * Runs `body` (synchronous, so nothing else can run meanwhile) with this thread switched into
 * the namespace file `path`, and always switches back.
 */
function withNetns<T>(path: string, body: () => T): T {
  const c = libc()!;
  const target = openNetns(path);
  let home = -1;
  try {
    // the calling thread's namespace, not the process leader's: setns() is per thread
    home = openNetns("/proc/thread-self/ns/net");
    if (c.setns(target, CLONE_NEWNET) !== 0) throw new NetlinkError(`setns("${path}")`, errno());
    let outcome: { value: T } | { error: unknown };
    try {
      outcome = { value: body() };
    } catch (error) {
      outcome = { error };
    }
    if (c.setns(home, CLONE_NEWNET) !== 0) {
      // Staying in the pod's namespace would silently misdirect everything after this.
      throw new Error(`Cannot return to the original netns after setns: errno ${errno()}`);
    }
    if ("error" in outcome) throw outcome.error;
    return outcome.value;
  } finally {
    c.close(target);
    if (home >= 0) c.close(home);
  }
}

/** ioctl(NS_GET_NSTYPE): which kind of namespace an nsfs file is (Linux 4.11+). */
const NS_GET_NSTYPE = 0xb703;
const ENOTTY = 25;

/**
 * What the file `path` is, asked of the kernel: a network namespace, another kind of namespace
 * (mount, pid, ...), or no namespace at all (a regular file, a directory: ioctl says ENOTTY).
 * Undefined when FFI is not available here. Throws `NetlinkError` when `path` cannot be opened.
 */
export function namespaceKind(path: string): "network" | "other" | "none" | undefined {
  const c = libc();
  if (!c) return undefined;
  const fd = openNetns(path);
  try {
    const type = c.ioctl(fd, BigInt(NS_GET_NSTYPE), 0n);
    if (type >= 0) return type === CLONE_NEWNET ? "network" : "other";
    const code = errno();
    if (code === ENOTTY) return "none";
    throw new NetlinkError(`ioctl(NS_GET_NSTYPE, "${path}")`, code);
  } finally {
    c.close(fd);
  }
}

/** One rtnetlink socket; requests are sent one at a time and must be acknowledged. */
export class RtNetlink {
  readonly #fd: number;
  #sequence = 1;
  readonly #buffer = new Uint8Array(8192);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A socket in the current namespace. */
  static open(): RtNetlink {
    if (!libc()) throw new Error("Netlink is not available: FFI is not allowed in this process");
    return new RtNetlink(openSocket());
  }

  /** A socket inside the namespace file `netns`, and the indices of `links` there (0: none). */
  static openIn(netns: string, links: string[] = []): { socket: RtNetlink; indices: number[] } {
    if (!libc()) throw new Error("Netlink is not available: FFI is not allowed in this process");
    return withNetns(netns, () => {
      const socket = new RtNetlink(openSocket());
      return { socket, indices: links.map(linkIndex) };
    });
  }

  /**
   * Sends every step in ONE send() and waits for all their acknowledgements. The kernel handles
   * the messages in order and each on its own: a step after a refused one still runs, so a
   * batch holds only steps whose failure the caller undoes as a whole. Throws `NetlinkError`
   * for the first step, in order, that the kernel refused.
   */
  requestAll(steps: readonly NetlinkStep[]): void {
    const c = libc()!;
    const first = this.#sequence;
    this.#sequence += steps.length;
    const bytes = encodeBatch(steps, first);
    if (Number(c.send(this.#fd, bytes, BigInt(bytes.length), 0)) !== bytes.length) {
      throw new NetlinkError(`${steps[0].operation} (send)`, errno());
    }
    const errors = new Map<number, number>();
    let pending = steps.length;
    while (pending > 0) {
      const received = Number(c.recv(this.#fd, this.#buffer, BigInt(this.#buffer.length), 0));
      if (received < 0) throw new NetlinkError(`${steps[0].operation} (recv)`, errno());
      const view = new DataView(this.#buffer.buffer, 0, received);
      for (let offset = 0; offset + 16 <= received;) {
        const length = view.getUint32(offset, true);
        const type = view.getUint16(offset + 4, true);
        const step = view.getUint32(offset + 8, true) - first;
        if (type === NLMSG_ERROR && step >= 0 && step < steps.length && !errors.has(step)) {
          errors.set(step, -view.getInt32(offset + 16, true));
          pending--;
        }
        if (length < 16) break;
        offset += (length + 3) & ~3;
      }
    }
    for (const [index, step] of steps.entries()) {
      const code = errors.get(index)!;
      if (code !== 0) throw new NetlinkError(step.operation, code);
    }
  }

  /** One request; throws `NetlinkError` on refusal. */
  request(step: NetlinkStep): void {
    this.requestAll([step]);
  }

  close(): void {
    libc()!.close(this.#fd);
  }
}

/** The index of a link in the current namespace, or 0 when there is none. */
export function linkIndex(name: string): number {
  return libc()!.if_nametoindex(cString(name));
}

export interface NetlinkVethOptions {
  peerName: string;
  peerNetns: string;
  bridge: string;
  mtu: number;
  hostMac: string;
}

/**
 * Creates the veth pair with the peer inside `peerNetns`, the host side enslaved to the bridge
 * and up, and turns hairpin on: two requests in one send. Undoes the pair if hairpin failed.
 */
export function netlinkCreateVeth(hostName: string, options: NetlinkVethOptions): void {
  const bridgeIndex = linkIndex(options.bridge);
  if (!bridgeIndex) throw new NetlinkError(`find bridge "${options.bridge}"`, 19);
  const peerNetnsFd = openNetns(options.peerNetns);
  const node = RtNetlink.open();
  try {
    const create = {
      operation: `create veth "${hostName}"`,
      message: newVethMessage(hostName, { ...options, bridgeIndex, peerNetnsFd }),
    };
    const hairpin = { operation: `hairpin on "${hostName}"`, message: hairpinMessage(hostName) };
    try {
      node.requestAll([create, hairpin]);
    } catch (error) {
      // the pair exists but is not what we asked for: take it away again (the peer goes too)
      if (error instanceof NetlinkError && error.operation === hairpin.operation) {
        netlinkDeleteLink(hostName);
      }
      throw error;
    }
  } finally {
    node.close();
    libc()!.close(peerNetnsFd);
  }
}

export interface NetlinkPodOptions {
  ifname: string;
  mac: string;
  /** With prefix, e.g. 10.32.0.5/12. */
  address: string;
  gateway: string;
  defaultRoute: boolean;
}

/**
 * MAC, address, up and (optionally) the default route of a pod interface, in one send. A
 * default route that already exists fails with errno EEXIST on the last step; the earlier
 * steps stay done, as with the `ip` batch, and the caller removes the veth.
 */
export function netlinkConfigurePod(netns: string, options: NetlinkPodOptions): void {
  const { socket: pod, indices: [index] } = RtNetlink.openIn(netns, [options.ifname]);
  try {
    if (!index) throw new NetlinkError(`find "${options.ifname}" in netns "${netns}"`, 19);
    const steps: NetlinkStep[] = [
      { operation: `set "${options.ifname}" address`, message: setMacMessage(index, options.mac) },
      {
        operation: `add address ${options.address}`,
        message: newAddressMessage(index, options.address),
      },
      { operation: `set "${options.ifname}" up`, message: setUpMessage(index) },
    ];
    if (options.defaultRoute) {
      steps.push({
        operation: `add default route via ${options.gateway}`,
        message: defaultRouteMessage(index, options.gateway),
      });
    }
    pod.requestAll(steps);
  } finally {
    pod.close();
  }
}

/** Deletes a link of the current namespace by name; false when it did not exist. */
export function netlinkDeleteLink(name: string): boolean {
  const node = RtNetlink.open();
  try {
    node.request({ operation: `delete "${name}"`, message: deleteLinkMessage(name) });
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === 19) return false;
    throw error;
  } finally {
    node.close();
  }
}
