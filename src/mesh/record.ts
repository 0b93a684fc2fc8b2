/**
 * Peer records: the unit of gossip. Each peer owns exactly one record and is the only writer of
 * it, so merging two copies never needs to combine fields: the copy with the larger
 * (incarnation, version) wins. Incarnations sort by start time (a time prefix plus random bits),
 * so a restarted peer's record beats everything its previous life wrote.
 *
 * Each record carries its owner's public key and the owner's Ed25519 signature over every other
 * field (`recordSigningBytes`), so a record relayed by anyone can be checked against the key the
 * receiver has bound to that name: nobody but the owner can write it, and an old copy, though
 * validly signed, never beats a newer one.
 */
import { MalformedFrameError } from "./errors.ts";
import { PUBLIC_KEY, SIGNATURE } from "./keys.ts";

/** One connection as its owner reports it; an edge counts only when both ends report it. */
export interface ConnectionInfo {
  readonly peer: string;
  /** An address the peer can be dialled at (learnt from an outbound dial or the hello's port). */
  readonly address: string;
}

export interface PeerRecord {
  readonly name: string;
  readonly nickname: string;
  readonly incarnation: string;
  readonly version: number;
  readonly connections: readonly ConnectionInfo[];
  /** Opaque blobs keyed by module ("datapath", "ipam"); only that module decodes them. */
  readonly data: Readonly<Record<string, string>>;
  /** The owner's Ed25519 public key, base64. */
  readonly key: string;
  /** The owner's signature over `recordSigningBytes(record)`, base64. */
  readonly sig: string;
}

/** The bytes a record's signature covers: every field but the signature, in a fixed order. */
export function recordSigningBytes(record: Omit<PeerRecord, "sig">): Uint8Array {
  const data = Object.keys(record.data).sort().map((k) => [k, record.data[k]]);
  return new TextEncoder().encode(JSON.stringify([
    "weft-record-v1",
    record.name,
    record.nickname,
    record.incarnation,
    record.version,
    record.connections.map((c) => [c.peer, c.address]),
    data,
    record.key,
  ]));
}

/** Orders two copies of the same peer's record by (incarnation, version): <0, 0 or >0. */
export function compareRecords(a: PeerRecord, b: PeerRecord): number {
  if (a.incarnation !== b.incarnation) return a.incarnation < b.incarnation ? -1 : 1;
  return a.version - b.version;
}

/**
 * The winner of two copies of one peer's record. Equal (incarnation, version) pairs come from the
 * same write of the owner and so are equal; the encoding tie-break only keeps the function
 * commutative should a buggy or hostile peer ever break that rule.
 */
export function mergeRecord(a: PeerRecord, b: PeerRecord): PeerRecord {
  const order = compareRecords(a, b);
  if (order !== 0) return order > 0 ? a : b;
  return JSON.stringify(a) >= JSON.stringify(b) ? a : b;
}

/** Merges a batch of records into a map keyed by name; returns the names whose record changed. */
export function mergeInto(
  records: Map<string, PeerRecord>,
  incoming: Iterable<PeerRecord>,
): string[] {
  const changed: string[] = [];
  for (const record of incoming) {
    const current = records.get(record.name);
    const winner = current ? mergeRecord(current, record) : record;
    if (winner !== current) {
      records.set(record.name, winner);
      changed.push(record.name);
    }
  }
  return changed;
}

/** What a peer name may look like: letters, digits and ":._-", at most 128 characters. */
export const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$/;
const MAX_BLOB = 1 << 20;

function fail(what: string, value: unknown): never {
  const text = JSON.stringify(value) ?? String(value);
  throw new MalformedFrameError(`Invalid peer record: ${what} ${text.slice(0, 80)}`);
}

/** Checks that an untrusted value is a well-formed record; throws `MalformedFrameError` if not. */
export function parseRecord(value: unknown): PeerRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("not an object", value);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.name !== "string" || !PEER_NAME.test(v.name)) fail("bad name", v.name);
  if (typeof v.nickname !== "string" || v.nickname.length > 256) fail("bad nickname", v.nickname);
  if (typeof v.incarnation !== "string" || !/^[0-9a-f]{8,64}$/.test(v.incarnation)) {
    fail("bad incarnation", v.incarnation);
  }
  if (typeof v.version !== "number" || !Number.isSafeInteger(v.version) || v.version < 0) {
    fail("bad version", v.version);
  }
  if (!Array.isArray(v.connections) || v.connections.length > 10_000) {
    fail("bad connections", v.connections);
  }
  for (const c of v.connections as unknown[]) {
    const conn = c as Record<string, unknown>;
    if (typeof c !== "object" || c === null) fail("bad connection", c);
    if (typeof conn.peer !== "string" || !PEER_NAME.test(conn.peer)) fail("bad connection peer", c);
    if (typeof conn.address !== "string" || conn.address.length > 300) {
      fail("bad connection address", c);
    }
  }
  if (typeof v.data !== "object" || v.data === null || Array.isArray(v.data)) {
    fail("bad data", v.data);
  }
  const data: Record<string, string> = {};
  for (const [key, blob] of Object.entries(v.data as object)) {
    if (typeof blob !== "string" || blob.length > MAX_BLOB) fail(`bad data["${key}"]`, blob);
    data[key] = blob;
  }
  if (typeof v.key !== "string" || !PUBLIC_KEY.test(v.key)) fail("bad key", v.key);
  if (typeof v.sig !== "string" || !SIGNATURE.test(v.sig)) fail("bad signature", v.sig);
  // Rebuilt field by field: unknown fields from a newer or hostile peer are not passed on.
  return {
    name: v.name as string,
    nickname: v.nickname as string,
    incarnation: v.incarnation as string,
    version: v.version as number,
    connections: (v.connections as ConnectionInfo[]).map((c) => ({
      peer: c.peer,
      address: c.address,
    })),
    data,
    key: v.key as string,
    sig: v.sig as string,
  };
}

/** FNV-1a over a string with a given offset basis, as an unsigned 32-bit number. */
function fnv1a(text: string, basis: number): number {
  let h = basis;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * An order-independent fingerprint of a set of (name, incarnation, version) triples: the XOR of a
 * 64-bit hash of each. Adding and removing are the same O(1) step, so a peer keeps its digest
 * current as records merge instead of rehashing the whole topology every anti-entropy round.
 * It is a change detector, not a security device: connections are authenticated separately.
 */
export class Digest {
  #hi = 0;
  #lo = 0;
  #count = 0;

  static key(record: PeerRecord): string {
    return `${record.name}\u0000${record.incarnation}\u0000${record.version}`;
  }

  add(record: PeerRecord): void {
    this.#toggle(Digest.key(record));
    this.#count++;
  }

  remove(record: PeerRecord): void {
    this.#toggle(Digest.key(record));
    this.#count--;
  }

  #toggle(key: string): void {
    this.#hi = (this.#hi ^ fnv1a(key, 0x811c9dc5)) >>> 0;
    this.#lo = (this.#lo ^ fnv1a(key, 0x050c5d1f)) >>> 0;
  }

  /** `count:hex64`, small enough to send every round. */
  toString(): string {
    const hex = (n: number) => n.toString(16).padStart(8, "0");
    return `${this.#count}:${hex(this.#hi)}${hex(this.#lo)}`;
  }
}
