/**
 * rtnetlink requests as bytes: the message builder and the few requests the CNI plugin sends.
 * Pure (no FFI, no socket), so the encoding is tested without a kernel; netlink.ts sends them.
 * Layouts follow <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>: a 16-byte header,
 * a fixed struct per message type, then 4-byte aligned type-length-value attributes, nestable.
 */

import { parseIp } from "./cidr.ts";

const AF_UNSPEC = 0;
const AF_INET = 2;

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
export const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

const IFF_UP = 1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
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

/** One netlink message: a fixed header struct, then attributes (nestable). */
export class Message {
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

/** A request and the words an error about it should use. */
export interface NetlinkStep {
  operation: string;
  message: Message;
}

/** Several requests as one buffer (one send), numbered from `firstSequence`. */
export function encodeBatch(steps: readonly NetlinkStep[], firstSequence: number): Uint8Array {
  const parts = steps.map((step, index) => step.message.encode(firstSequence + index));
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function macBytes(mac: string): number[] {
  return mac.split(":").map((part) => parseInt(part, 16));
}

function ipBytes(address: string): number[] {
  const value = parseIp(address);
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
}

const CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const CHANGE = NLM_F_REQUEST | NLM_F_ACK;

export interface VethMessageOptions {
  peerName: string;
  /** An open file descriptor of the peer's network namespace. */
  peerNetnsFd: number;
  bridgeIndex: number;
  mtu: number;
  hostMac: string;
}

/** A veth pair: the host side up on the bridge, the peer created inside the pod's namespace. */
export function newVethMessage(hostName: string, options: VethMessageOptions): Message {
  return new Message(RTM_NEWLINK, CREATE)
    .ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP)
    .attrString(IFLA_IFNAME, hostName)
    .attrU32(IFLA_MTU, options.mtu)
    .attr(IFLA_ADDRESS, macBytes(options.hostMac))
    .attrU32(IFLA_MASTER, options.bridgeIndex)
    .begin(IFLA_LINKINFO)
    .attrString(IFLA_INFO_KIND, "veth")
    .begin(IFLA_INFO_DATA)
    .begin(VETH_INFO_PEER)
    .ifinfo(AF_UNSPEC)
    .attrString(IFLA_IFNAME, options.peerName)
    .attrU32(IFLA_MTU, options.mtu)
    .attrU32(IFLA_NET_NS_FD, options.peerNetnsFd)
    .end()
    .end()
    .end();
}

/**
 * Hairpin on for a bridge port found by name (`ip link set dev X type bridge_slave hairpin
 * on`): by name, so it can follow the port's creation in the same batch without its index.
 */
export function hairpinMessage(portName: string): Message {
  return new Message(RTM_NEWLINK, CHANGE)
    .ifinfo(AF_UNSPEC)
    .attrString(IFLA_IFNAME, portName)
    .begin(IFLA_LINKINFO)
    .attrString(IFLA_INFO_SLAVE_KIND, "bridge")
    .begin(IFLA_INFO_SLAVE_DATA)
    .attr(IFLA_BRPORT_MODE, [1])
    .end()
    .end();
}

/** A link's MAC address. */
export function setMacMessage(index: number, mac: string): Message {
  return new Message(RTM_SETLINK, CHANGE).ifinfo(AF_UNSPEC, index).attr(
    IFLA_ADDRESS,
    macBytes(mac),
  );
}

/** A link up. */
export function setUpMessage(index: number): Message {
  return new Message(RTM_SETLINK, CHANGE).ifinfo(AF_UNSPEC, index, IFF_UP, IFF_UP);
}

/** An IPv4 address with prefix (`10.32.0.5/12`) on a link. */
export function newAddressMessage(index: number, cidr: string): Message {
  const [address, prefix] = cidr.split("/");
  return new Message(RTM_NEWADDR, CREATE)
    .u8(AF_INET).u8(Number(prefix)).u8(0).u8(RT_SCOPE_UNIVERSE).u32(index)
    .attr(IFA_LOCAL, ipBytes(address))
    .attr(IFA_ADDRESS, ipBytes(address));
}

/** `default via gateway dev <index>` in the main table; EEXIST when a default route exists. */
export function defaultRouteMessage(index: number, gateway: string): Message {
  return new Message(RTM_NEWROUTE, CREATE)
    .u8(AF_INET).u8(0).u8(0).u8(0)
    .u8(RT_TABLE_MAIN).u8(RTPROT_BOOT).u8(RT_SCOPE_UNIVERSE).u8(RTN_UNICAST).u32(0)
    .attr(RTA_GATEWAY, ipBytes(gateway))
    .attrU32(RTA_OIF, index);
}

/** Deletes a link by name. */
export function deleteLinkMessage(name: string): Message {
  return new Message(RTM_DELLINK, CHANGE).ifinfo(AF_UNSPEC).attrString(IFLA_IFNAME, name);
}
