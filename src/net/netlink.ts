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

import { parseIp } from "./cidr.ts";

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

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_BRIDGE = 7;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0x80000;
const NETLINK_ROUTE = 0;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;

const IFF_UP = 1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_BRPORT_MODE = 4;
const IFA_LOCAL = 2;
const IFA_ADDRESS = 1;
const RTA_GATEWAY = 5;
const RTA_OIF = 4;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;

const encoder = new TextEncoder();

/** Builds one netlink message: a fixed header struct, then attributes (nestable). */
class Message {
  #bytes: number[] = [];
  #nests: number[] = [];

  constructor(readonly type: number, readonly flags: number) {}

  u8(value: number): this {
    this.#bytes.push(value & 255);
    return this;
  }

  u16(value: number): this {
    return this.u8(value).u8(value >>> 8);
  }

  u32(value: number): this {
    return this.u16(value & 0xffff).u16(value >>> 16);
  }

  /** struct ifinfomsg */
  ifinfo(family: number, index = 0, flags = 0, change = 0): this {
    return this.u8(family).u8(0).u16(0).u32(index).u32(flags).u32(change);
  }

  attr(type: number, payload: Uint8Array | number[]): this {
    const length = 4 + payload.length;
    this.u16(length).u16(type);
    for (const byte of payload) this.#bytes.push(byte);
    this.#pad();
    return this;
  }

  attrU32(type: number, value: number): this {
    return this.attr(type, [value & 255, (value >>> 8) & 255, (value >>> 16) & 255, value >>> 24]);
  }

  attrString(type: number, value: string): this {
    return this.attr(type, [...encoder.encode(value), 0]);
  }

  begin(type: number): this {
    this.#nests.push(this.#bytes.length);
    return this.u16(0).u16(type);
  }

  end(): this {
    const start = this.#nests.pop()!;
    const length = this.#bytes.length - start;
    this.#bytes[start] = length & 255;
    this.#bytes[start + 1] = length >>> 8;
    return this;
  }

  encode(sequence: number): Uint8Array {
    const length = 16 + this.#bytes.length;
    const out = new Uint8Array(length);
    const view = new DataView(out.buffer);
    view.setUint32(0, length, true);
    view.setUint16(4, this.type, true);
    view.setUint16(6, this.flags, true);
    view.setUint32(8, sequence, true);
    view.setUint32(12, 0, true);
    out.set(this.#bytes, 16);
    return out;
  }

  #pad(): void {
    while (this.#bytes.length % 4) this.#bytes.push(0);
  }
}

function macBytes(mac: string): number[] {
  return mac.split(":").map((part) => parseInt(part, 16));
}

function ipBytes(address: string): number[] {
  const value = parseIp(address);
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
}

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

  /** Sends one request and waits for its acknowledgement; throws `NetlinkError` on refusal. */
  request(operation: string, message: Message): void {
    const c = libc()!;
    const sequence = this.#sequence++;
    const bytes = message.encode(sequence);
    if (Number(c.send(this.#fd, bytes, BigInt(bytes.length), 0)) !== bytes.length) {
      throw new NetlinkError(`${operation} (send)`, errno());
    }
    while (true) {
      const received = Number(c.recv(this.#fd, this.#buffer, BigInt(this.#buffer.length), 0));
      if (received < 0) throw new NetlinkError(`${operation} (recv)`, errno());
      const view = new DataView(this.#buffer.buffer, 0, received);
      for (let offset = 0; offset + 16 <= received;) {
        const length = view.getUint32(offset, true);
        const type = view.getUint16(offset + 4, true);
        const seq = view.getUint32(offset + 8, true);
        if (type === NLMSG_ERROR && seq === sequence) {
          const code = view.getInt32(offset + 16, true);
          if (code !== 0) throw new NetlinkError(operation, -code);
          return;
        }
        if (length < 16) break;
        offset += (length + 3) & ~3;
      }
    }
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
 * and up, in one request; then turns hairpin on. Undoes the pair if the second step fails.
 */
export function netlinkCreateVeth(hostName: string, options: NetlinkVethOptions): void {
  const bridgeIndex = linkIndex(options.bridge);
  if (!bridgeIndex) throw new NetlinkError(`find bridge "${options.bridge}"`, 19);
  const peerFd = openNetns(options.peerNetns);
  const node = RtNetlink.open();
  try {
    const message = new Message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
      .ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP)
      .attrString(IFLA_IFNAME, hostName)
      .attrU32(IFLA_MTU, options.mtu)
      .attr(IFLA_ADDRESS, macBytes(options.hostMac))
      .attrU32(IFLA_MASTER, bridgeIndex)
      .begin(IFLA_LINKINFO)
      .attrString(IFLA_INFO_KIND, "veth")
      .begin(IFLA_INFO_DATA)
      .begin(VETH_INFO_PEER)
      .ifinfo(AF_UNSPEC)
      .attrString(IFLA_IFNAME, options.peerName)
      .attrU32(IFLA_MTU, options.mtu)
      .attrU32(IFLA_NET_NS_FD, peerFd)
      .end()
      .end()
      .end();
    node.request(`create veth "${hostName}"`, message);
    try {
      const index = linkIndex(hostName);
      node.request(
        `hairpin on "${hostName}"`,
        new Message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK)
          .ifinfo(AF_BRIDGE, index)
          .begin(IFLA_PROTINFO | NLA_F_NESTED)
          .attr(IFLA_BRPORT_MODE, [1])
          .end(),
      );
    } catch (error) {
      netlinkDeleteLink(hostName);
      throw error;
    }
  } finally {
    node.close();
    libc()!.close(peerFd);
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
 * MAC, address, up and (optionally) the default route of a pod interface. A default route
 * that already exists fails with errno EEXIST on the last step; the earlier steps stay done,
 * as with the `ip` batch, and the caller removes the veth.
 */
export function netlinkConfigurePod(netns: string, options: NetlinkPodOptions): void {
  const { socket: pod, indices: [index] } = RtNetlink.openIn(netns, [options.ifname]);
  try {
    if (!index) throw new NetlinkError(`find "${options.ifname}" in netns "${netns}"`, 19);
    pod.request(
      `set "${options.ifname}" address`,
      new Message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK)
        .ifinfo(AF_UNSPEC, index)
        .attr(IFLA_ADDRESS, macBytes(options.mac)),
    );
    const [address, prefix] = options.address.split("/");
    pod.request(
      `add address ${options.address}`,
      new Message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        .u8(AF_INET).u8(Number(prefix)).u8(0).u8(RT_SCOPE_UNIVERSE).u32(index)
        .attr(IFA_LOCAL, ipBytes(address))
        .attr(IFA_ADDRESS, ipBytes(address)),
    );
    pod.request(
      `set "${options.ifname}" up`,
      new Message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK).ifinfo(AF_UNSPEC, index, IFF_UP, IFF_UP),
    );
    if (options.defaultRoute) {
      pod.request(
        `add default route via ${options.gateway}`,
        new Message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
          .u8(AF_INET).u8(0).u8(0).u8(0)
          .u8(RT_TABLE_MAIN).u8(RTPROT_BOOT).u8(RT_SCOPE_UNIVERSE).u8(RTN_UNICAST).u32(0)
          .attr(RTA_GATEWAY, ipBytes(options.gateway))
          .attrU32(RTA_OIF, index),
      );
    }
  } finally {
    pod.close();
  }
}

/** Deletes a link of the current namespace by name; false when it did not exist. */
export function netlinkDeleteLink(name: string): boolean {
  const node = RtNetlink.open();
  try {
    node.request(
      `delete "${name}"`,
      new Message(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK).ifinfo(AF_UNSPEC).attrString(
        IFLA_IFNAME,
        name,
      ),
    );
    return true;
  } catch (error) {
    if (error instanceof NetlinkError && error.errno === 19) return false;
    throw error;
  } finally {
    node.close();
  }
}
