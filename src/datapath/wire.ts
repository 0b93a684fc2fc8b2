/**
 * The sleeve wire format. One UDP datagram = a fixed 40-byte header + a body. The header is in
 * clear (relays must read it) but authenticated as AEAD additional data when the hop is
 * encrypted. Peers are named by 8-byte ids (a hash of the mesh name) so the header has a fixed
 * size and the MTU arithmetic does not depend on name lengths.
 *
 *   0 magic 'W' | 1 version | 2 kind | 3 flags | 4 ttl | 5 zero | 6 wire length (u16)
 *   8 hop sender id | 16 origin id | 24 destination id | 32 counter (u64)
 *
 * A data body is a run of records, u32 length + one TAP frame (virtio-net header + Ethernet
 * frame), so many small frames share a datagram and a 64 KB TSO superframe travels as one
 * message.
 *
 * A message bigger than one underlay packet is cut into segments (flag SEGMENT: the header, a
 * 4-byte extension `index, count, 0, 0`, a slice of the body) that are sent with UDP GSO in one
 * call and may arrive coalesced by UDP GRO in one read: measured on the lab underlay, 64 KB
 * datagrams left to IP fragmentation move ~1 Gbit/s, GSO segments + GRO ~9 Gbit/s. Every
 * datagram carries its own wire length so a coalesced read splits back exactly. The counter
 * names the message (the AEAD nonce when sealed, a sender-chosen id when plain); the AEAD
 * covers the header with bytes 5..7 and the SEGMENT flag cleared, so it is the same for the
 * whole message and for each of its segments.
 */
import { createHash } from "node:crypto";
import { type SleeveCipher, TAG_BYTES } from "./crypto.ts";

export const HEADER_BYTES = 40;
const MAGIC = 0x57;
const VERSION = 1;
const FLAG_ENCRYPTED = 1;
const FLAG_SEGMENT = 2;
/** Segment extension after the header: index, count, two zero bytes. */
export const SEGMENT_EXTENSION_BYTES = 4;
/** Largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65507;
/** Largest data body in one datagram, leaving room for the header and an AEAD tag. */
export const MAX_BODY = MAX_DATAGRAM - HEADER_BYTES - TAG_BYTES;
export const RECORD_HEADER_BYTES = 4;

export enum Kind {
  Data = 1,
  Heartbeat = 2,
  HeartbeatAck = 3,
  /** Fast-path probe: travels inside a VXLAN packet to the peer's bridge address. */
  Probe = 4,
  ProbeAck = 5,
}

/** A peer's 8-byte wire id, as 16 hex digits (the form used as a map key). */
export function peerId(name: string): string {
  return createHash("sha256").update(name).digest("hex").slice(0, 16);
}

function writeId(view: Uint8Array, offset: number, id: string): void {
  for (let i = 0; i < 8; i++) view[offset + i] = parseInt(id.slice(i * 2, i * 2 + 2), 16);
}

function readId(view: Uint8Array, offset: number): string {
  let out = "";
  for (let i = 0; i < 8; i++) out += view[offset + i].toString(16).padStart(2, "0");
  return out;
}

export interface DatagramHeader {
  kind: Kind;
  ttl: number;
  /** Who sent this hop (decides which key opens it). */
  sender: string;
  /** Where the payload started and where it is going (differs from sender when relayed). */
  origin: string;
  destination: string;
}

export interface DecodedDatagram extends DatagramHeader {
  encrypted: boolean;
  counter: number;
  /** The canonical 40 header bytes (bytes 5..7 and SEGMENT cleared): the AEAD's extra data. */
  header: Uint8Array;
  /** Plain body, or ciphertext + tag when `encrypted`; for a segment, its slice of those. */
  payload: Uint8Array;
  /** Set on a segment of a larger message. */
  segment?: { index: number; count: number };
}

/** Builds one datagram; with a cipher the body is sealed under the next counter. */
export function encodeDatagram(
  header: DatagramHeader,
  body: Uint8Array,
  options: { cipher?: SleeveCipher; id?: number } = {},
): Uint8Array {
  const counter = options.cipher ? options.cipher.nextCounter() : (options.id ?? 0);
  const head = new Uint8Array(HEADER_BYTES);
  writeHeader(head, header, { counter, encrypted: options.cipher !== undefined });
  const payload = options.cipher ? options.cipher.seal(body, { header: head, counter }) : body;
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  out.set(head, 0);
  out.set(payload, HEADER_BYTES);
  setWireLength(out, out.length);
  return out;
}

/** Sets bytes 6..7: how long this datagram is on the wire. */
export function setWireLength(datagram: Uint8Array, length: number): void {
  datagram[6] = length >>> 8;
  datagram[7] = length & 255;
}

/**
 * Writes the 40 header bytes at the start of `into`. The hot path packs frames straight after
 * the header in one reusable buffer and sends it as is, with no further copy.
 */
export function writeHeader(
  into: Uint8Array,
  header: DatagramHeader,
  options: { counter: number; encrypted: boolean },
): void {
  into.fill(0, 0, HEADER_BYTES);
  into[0] = MAGIC;
  into[1] = VERSION;
  into[2] = header.kind;
  into[3] = options.encrypted ? FLAG_ENCRYPTED : 0;
  into[4] = header.ttl;
  writeId(into, 8, header.sender);
  writeId(into, 16, header.origin);
  writeId(into, 24, header.destination);
  new DataView(into.buffer, into.byteOffset, HEADER_BYTES).setBigUint64(
    32,
    BigInt(options.counter),
  );
}

/** Parses one datagram or segment; undefined for anything that is not weft sleeve traffic. */
export function decodeDatagram(datagram: Uint8Array): DecodedDatagram | undefined {
  if (datagram.length < HEADER_BYTES || datagram[0] !== MAGIC || datagram[1] !== VERSION) {
    return undefined;
  }
  const kind = datagram[2];
  if (kind < Kind.Data || kind > Kind.ProbeAck) return undefined;
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.length);
  const header = datagram.slice(0, HEADER_BYTES);
  header[3] &= ~FLAG_SEGMENT;
  header[5] = header[6] = header[7] = 0;
  const segmented = (datagram[3] & FLAG_SEGMENT) !== 0;
  const start = HEADER_BYTES + (segmented ? SEGMENT_EXTENSION_BYTES : 0);
  if (datagram.length < start) return undefined;
  return {
    kind,
    encrypted: (datagram[3] & FLAG_ENCRYPTED) !== 0,
    ttl: datagram[4],
    sender: readId(datagram, 8),
    origin: readId(datagram, 16),
    destination: readId(datagram, 24),
    counter: Number(view.getBigUint64(32)),
    header,
    payload: datagram.subarray(start),
    segment: segmented
      ? { index: datagram[HEADER_BYTES], count: datagram[HEADER_BYTES + 1] }
      : undefined,
  };
}

/**
 * Splits what one receive returned into datagrams by their wire lengths (UDP GRO may hand us
 * several back to back). A length that does not fit ends the walk: the rest is not ours.
 */
export function splitReceived(buffer: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let offset = 0;
  while (offset + HEADER_BYTES <= buffer.length) {
    const length = (buffer[offset + 6] << 8) | buffer[offset + 7];
    if (length < HEADER_BYTES || offset + length > buffer.length) break;
    out.push(buffer.subarray(offset, offset + length));
    offset += length;
  }
  return out;
}

export class SegmentationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SegmentationError";
  }
}

/**
 * Cuts a datagram into segments of at most `segmentBytes` each (all full but the last), laid
 * out back to back as UDP GSO wants them. Returns the datagram itself when it fits.
 */
export function segmentDatagram(datagram: Uint8Array, segmentBytes: number): Uint8Array {
  if (datagram.length <= segmentBytes) return datagram;
  const chunk = segmentBytes - HEADER_BYTES - SEGMENT_EXTENSION_BYTES;
  if (chunk <= 0) throw new SegmentationError(`Segment size ${segmentBytes} leaves no room`);
  const body = datagram.subarray(HEADER_BYTES);
  const count = Math.ceil(body.length / chunk);
  if (count > 255) {
    throw new SegmentationError(`Datagram of ${datagram.length} needs ${count} segments`);
  }
  const out = new Uint8Array(body.length + count * (HEADER_BYTES + SEGMENT_EXTENSION_BYTES));
  let offset = 0;
  for (let index = 0; index < count; index++) {
    const slice = body.subarray(index * chunk, (index + 1) * chunk);
    const length = HEADER_BYTES + SEGMENT_EXTENSION_BYTES + slice.length;
    out.set(datagram.subarray(0, HEADER_BYTES), offset);
    out[offset + 3] |= FLAG_SEGMENT;
    out[offset + 6] = length >>> 8;
    out[offset + 7] = length & 255;
    out[offset + HEADER_BYTES] = index;
    out[offset + HEADER_BYTES + 1] = count;
    out.set(slice, offset + HEADER_BYTES + SEGMENT_EXTENSION_BYTES);
    offset += length;
  }
  return out;
}

interface Partial {
  count: number;
  received: number;
  parts: (Uint8Array | undefined)[];
  first: DecodedDatagram;
}

/**
 * Puts segmented messages back together. A few messages per sender may be in flight at once
 * (two threads of one node send concurrently); the oldest incomplete one is dropped when the
 * table is full, which is what a lost segment costs.
 */
export class Reassembler {
  #partials = new Map<string, Partial>();
  #limit: number;
  dropped = 0;

  constructor(limit = 64) {
    this.#limit = limit;
  }

  /** Adds a segment; returns the whole message (header + body) once every segment is in. */
  add(segment: DecodedDatagram): DecodedDatagram | undefined {
    const { index, count } = segment.segment!;
    if (index >= count) return undefined;
    const key = `${segment.sender}:${segment.counter}:${segment.kind}`;
    let partial = this.#partials.get(key);
    if (!partial || partial.count !== count) {
      if (this.#partials.size >= this.#limit) {
        const oldest = this.#partials.keys().next().value!;
        this.#partials.delete(oldest);
        this.dropped++;
      }
      partial = { count, received: 0, parts: new Array(count), first: segment };
      this.#partials.set(key, partial);
    }
    if (partial.parts[index]) return undefined;
    partial.parts[index] = segment.payload.slice();
    partial.received++;
    if (partial.received < count) return undefined;
    this.#partials.delete(key);
    let total = 0;
    for (const part of partial.parts) total += part!.length;
    const payload = new Uint8Array(total);
    let offset = 0;
    for (const part of partial.parts) {
      payload.set(part!, offset);
      offset += part!.length;
    }
    return { ...partial.first, segment: undefined, payload };
  }
}

/** Packs frames as length-prefixed records (caller keeps the total under MAX_BODY). */
export function packRecords(frames: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const frame of frames) total += RECORD_HEADER_BYTES + frame.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const frame of frames) {
    view.setUint32(offset, frame.length);
    out.set(frame, offset + RECORD_HEADER_BYTES);
    offset += RECORD_HEADER_BYTES + frame.length;
  }
  return out;
}

export class MalformedBodyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedBodyError";
  }
}

/** Splits a data body into frames (views into `body`, no copies). */
export function unpackRecords(body: Uint8Array): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const frames: Uint8Array[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (offset + RECORD_HEADER_BYTES > body.length) {
      throw new MalformedBodyError(`Truncated record header at byte ${offset} of ${body.length}`);
    }
    const length = view.getUint32(offset);
    const start = offset + RECORD_HEADER_BYTES;
    if (start + length > body.length) {
      throw new MalformedBodyError(`Record of ${length} bytes at byte ${offset} overruns body`);
    }
    frames.push(body.subarray(start, start + length));
    offset = start + length;
  }
  return frames;
}

export function encodeSequence(seq: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, seq >>> 0);
  return out;
}

export function decodeSequence(body: Uint8Array): number | undefined {
  if (body.length < 4) return undefined;
  return new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
}

function macBytes(mac: string): number[] {
  return mac.split(":").map((part) => parseInt(part, 16));
}

function ipBytes(ip: string): number[] {
  return ip.split(".").map(Number);
}

function ipv4Checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += (header[i] << 8) | header[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface VxlanProbeAddresses {
  vni: number;
  sourceMac: string;
  destinationMac: string;
  sourceIp: string;
  destinationIp: string;
  sourcePort: number;
  destinationPort: number;
}

/**
 * Wraps `payload` as UDP in IPv4 in Ethernet in a VXLAN header: the UDP payload to send to the
 * peer's VXLAN port. The peer's kernel decapsulates it like any fast-path frame, so an answer
 * proves the VXLAN port is open in that direction and the peer's bridge delivers.
 */
export function encodeVxlanProbe(payload: Uint8Array, to: VxlanProbeAddresses): Uint8Array {
  const out = new Uint8Array(8 + 14 + 20 + 8 + payload.length);
  const view = new DataView(out.buffer);
  out[0] = 0x08; // VNI present
  out[4] = (to.vni >>> 16) & 255;
  out[5] = (to.vni >>> 8) & 255;
  out[6] = to.vni & 255;
  out.set(macBytes(to.destinationMac), 8);
  out.set(macBytes(to.sourceMac), 14);
  view.setUint16(20, 0x0800);
  const ipStart = 22;
  out[ipStart] = 0x45;
  view.setUint16(ipStart + 2, 20 + 8 + payload.length);
  view.setUint16(ipStart + 6, 0x4000); // DF: a probe must not be fragmented
  out[ipStart + 8] = 64;
  out[ipStart + 9] = 17;
  out.set(ipBytes(to.sourceIp), ipStart + 12);
  out.set(ipBytes(to.destinationIp), ipStart + 16);
  view.setUint16(ipStart + 10, ipv4Checksum(out.subarray(ipStart, ipStart + 20)));
  const udpStart = ipStart + 20;
  view.setUint16(udpStart, to.sourcePort);
  view.setUint16(udpStart + 2, to.destinationPort);
  view.setUint16(udpStart + 4, 8 + payload.length);
  // UDP checksum 0 = none, allowed over IPv4.
  out.set(payload, udpStart + 8);
  return out;
}
