/**
 * IPv4 addresses and CIDR blocks as plain numbers.
 *
 * Everything that reasons about address space (IPAM ranges, the ring, pod subnets, the bridge
 * address) goes through these few functions, so an address is always an unsigned 32-bit number
 * inside the program and a dotted quad only at the edges (JSON, the kernel, people).
 */

/** An IPv4 block: `base` is the first address (host bits cleared), `prefix` its length. */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

/** A half-open span of addresses `[start, end)`; the unit the IPAM hands between peers. */
export interface AddressRange {
  readonly start: number;
  readonly end: number;
}

/** Parses `a.b.c.d` into an unsigned 32-bit number; throws `TypeError` naming the bad text. */
export function parseIp(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4) throw new TypeError(`Invalid IPv4 address "${text}"`);
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) {
      throw new TypeError(`Invalid IPv4 address "${text}"`);
    }
    value = value * 256 + Number(part);
  }
  return value;
}

export function formatIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/**
 * Parses `a.b.c.d/n`. With `strict` (the default) host bits must be zero, because a range
 * written as 10.32.0.1/12 is almost always a typo for something else and silently masking
 * it would hand out addresses the operator did not mean.
 */
export function parseCidr(text: string, options: { strict?: boolean } = {}): Cidr {
  const { strict = true } = options;
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  if (!match) throw new TypeError(`Invalid CIDR "${text}": expected a.b.c.d/n`);
  const prefix = Number(match[2]);
  if (prefix > 32) throw new TypeError(`Invalid CIDR "${text}": prefix ${prefix} is over 32`);
  const address = parseIp(match[1]);
  const base = maskAddress(address, prefix);
  if (strict && base !== address) {
    throw new TypeError(
      `Invalid CIDR "${text}": host bits are set (did you mean ${formatIp(base)}/${prefix}?)`,
    );
  }
  return { base, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.base)}/${cidr.prefix}`;
}

export function maskAddress(address: number, prefix: number): number {
  if (prefix === 0) return 0;
  return (address - (address % 2 ** (32 - prefix))) >>> 0;
}

export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

export function cidrToRange(cidr: Cidr): AddressRange {
  return { start: cidr.base, end: cidr.base + cidrSize(cidr) };
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return address >= cidr.base && address < cidr.base + cidrSize(cidr);
}

/** True when `inner` lies wholly inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.base);
}

export function rangeSize(range: AddressRange): number {
  return range.end - range.start;
}

export function rangeContains(range: AddressRange, address: number): boolean {
  return address >= range.start && address < range.end;
}

/** The overlap of two ranges, or undefined when they do not meet. */
export function intersectRanges(a: AddressRange, b: AddressRange): AddressRange | undefined {
  const start = Math.max(a.start, b.start);
  const end = Math.min(a.end, b.end);
  return start < end ? { start, end } : undefined;
}

export function formatRange(range: AddressRange): string {
  return `${formatIp(range.start)}-${formatIp(range.end - 1)}`;
}

/**
 * Addresses no host may take inside a block: the network address and, for blocks big enough
 * to have one, the broadcast address. Pods get the whole range's prefix (an L2 overlay), so
 * these are the only two addresses of the cluster range that are never usable.
 */
export function isReservedInCidr(cidr: Cidr, address: number): boolean {
  if (cidr.prefix >= 31) return false;
  return address === cidr.base || address === cidr.base + cidrSize(cidr) - 1;
}

/**
 * The MAC weft gives an interface holding `address`: 0a:58 followed by the address bytes.
 * The locally administered prefix avoids vendor MACs, and deriving it from the address lets
 * every node compute where a pod's frames belong from the address alone, which is what the
 * data path programs into forwarding tables.
 */
export function macForAddress(address: number): string {
  const bytes = [
    0x0a,
    0x58,
    address >>> 24,
    (address >>> 16) & 255,
    (address >>> 8) & 255,
    address & 255,
  ];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}
