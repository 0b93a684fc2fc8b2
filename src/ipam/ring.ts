/**
 * The ring: who owns which part of the cluster range, as a value every peer holds a copy of.
 *
 * A state is a set of entries `token -> (owner, generation, version)`; entry i covers
 * [token_i, token_i+1). Only the current owner of an entry changes it (bumping its version), so
 * for any token the versions form one chain and "higher version wins" is a correct merge. Peer
 * records (free/used, votes, what tombstones a peer has seen) are changed only by that peer.
 * Tombstones (`name -> highest removed generation`) only grow. All three merge as a join, so
 * merge is commutative, associative and idempotent, and encode() is canonical: two peers with
 * the same knowledge produce byte-identical states.
 */
import { type AddressRange, type Cidr, cidrToRange, formatCidr, parseCidr } from "../net/cidr.ts";

export type IpamMode = "consensus" | "seed" | "observer";

export interface RingEntry {
  readonly token: number;
  readonly owner: string;
  /** The owner's generation when it got the entry; a tombstone for that generation orphans it. */
  readonly gen: number;
  readonly version: number;
}

export interface PeerRecord {
  readonly name: string;
  readonly gen: number;
  readonly version: number;
  readonly mode: IpamMode;
  /** Addresses the peer owns but has not handed out, and handed out; published for donors. */
  readonly free: number;
  readonly used: number;
  /** consensus mode: the set of peers this peer agreed to split the range among. */
  readonly vote?: readonly string[];
  /** The tombstones this peer has merged: reclaim waits until every live peer has seen one. */
  readonly seen: Readonly<Record<string, number>>;
  /**
   * The live peers this peer knows, as "name@gen". A donor gives only to an incarnation every
   * live peer lists, and adopting ownerless space needs all live peers to list the same set.
   */
  readonly known?: readonly string[];
  /** Left cleanly: owns nothing and takes part in nothing until it returns with a new gen. */
  readonly left?: boolean;
}

export interface RingState {
  /** The cluster range, as text; states for different ranges never merge. */
  readonly range: string;
  /** Names the initial split; "" before there is one. */
  readonly ringId: string;
  readonly entries: readonly RingEntry[];
  readonly peers: readonly PeerRecord[];
  readonly tombstones: Readonly<Record<string, number>>;
}

export class RingError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RingError";
  }
}

export function emptyRing(range: Cidr): RingState {
  return { range: formatCidr(range), ringId: "", entries: [], peers: [], tombstones: {} };
}

/** Splits the range into equal parts, one per member in name order. */
export function initialRing(
  state: RingState,
  members: ReadonlyArray<{ name: string; gen: number }>,
  ringId: string,
): RingState {
  const { start, end } = cidrToRange(parseCidr(state.range));
  const sorted = [...members].sort((a, b) => compare(a.name, b.name));
  const entries = sorted.map((m, i) => ({
    token: start + Math.floor((i * (end - start)) / sorted.length),
    owner: m.name,
    gen: m.gen,
    version: 1,
  }));
  return { ...state, ringId, entries: dedupeTokens(entries) };
}

function dedupeTokens(entries: RingEntry[]): RingEntry[] {
  // Tiny ranges with many members give some members nothing rather than empty entries.
  const out: RingEntry[] = [];
  for (const e of entries) {
    if (out.length > 0 && out[out.length - 1].token === e.token) out[out.length - 1] = e;
    else out.push(e);
  }
  return out;
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entryBeats(a: RingEntry, b: RingEntry): boolean {
  if (a.version !== b.version) return a.version > b.version;
  // Equal versions with different content only arise from a reclaim race the protocol rules
  // out; pick deterministically so every peer at least agrees.
  return compare(`${a.owner}\u0000${a.gen}`, `${b.owner}\u0000${b.gen}`) < 0;
}

function recordBeats(a: PeerRecord, b: PeerRecord): boolean {
  if (a.gen !== b.gen) return a.gen > b.gen;
  if (a.version !== b.version) return a.version > b.version;
  return compare(JSON.stringify(a), JSON.stringify(b)) < 0;
}

/** Joins two states. Pure, commutative, associative, idempotent. */
export function mergeRings(a: RingState, b: RingState): RingState {
  if (a.range !== b.range) {
    throw new RingError(`Cannot merge ring for range ${b.range} into ring for ${a.range}`);
  }
  // Two different initial splits cannot both be right; the lower id wins everywhere, and a
  // peer whose entries vanish that way starts clean (see ClusterIpam).
  let entries: RingEntry[];
  let ringId: string;
  if (a.ringId === b.ringId) {
    ringId = a.ringId;
    const byToken = new Map<number, RingEntry>();
    for (const e of [...a.entries, ...b.entries]) {
      const have = byToken.get(e.token);
      if (!have || entryBeats(e, have)) byToken.set(e.token, e);
    }
    entries = [...byToken.values()].sort((x, y) => x.token - y.token);
  } else {
    const winner = a.ringId === "" ? b : b.ringId === "" ? a : a.ringId < b.ringId ? a : b;
    ringId = winner.ringId;
    entries = [...winner.entries];
  }
  const peers = new Map<string, PeerRecord>();
  for (const p of [...a.peers, ...b.peers]) {
    const have = peers.get(p.name);
    if (!have || recordBeats(p, have)) peers.set(p.name, p);
  }
  const tombstones: Record<string, number> = { ...a.tombstones };
  for (const [name, gen] of Object.entries(b.tombstones)) {
    tombstones[name] = Math.max(gen, tombstones[name] ?? -1);
  }
  return {
    range: a.range,
    ringId,
    entries,
    peers: [...peers.values()].sort((x, y) => compare(x.name, y.name)),
    tombstones: sortKeys(tombstones),
  };
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([x], [y]) => compare(x, y)));
}

/** Canonical text: equal states encode to equal strings. */
export function encodeRing(state: RingState): string {
  return JSON.stringify({
    v: 1,
    range: state.range,
    ringId: state.ringId,
    entries: state.entries.map((e) => [e.token, e.owner, e.gen, e.version]),
    peers: state.peers.map((p) => ({
      name: p.name,
      gen: p.gen,
      version: p.version,
      mode: p.mode,
      free: p.free,
      used: p.used,
      ...(p.vote ? { vote: [...p.vote] } : {}),
      seen: sortKeys({ ...p.seen }),
      ...(p.known ? { known: [...p.known] } : {}),
      ...(p.left ? { left: true } : {}),
    })),
    tombstones: sortKeys({ ...state.tombstones }),
  });
}

export function decodeRing(text: string): RingState {
  let raw: {
    v?: number;
    range?: string;
    ringId?: string;
    entries?: Array<[number, string, number, number]>;
    peers?: PeerRecord[];
    tombstones?: Record<string, number>;
  };
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new RingError(`Cannot decode IPAM ring state: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (
    raw?.v !== 1 || typeof raw.range !== "string" || typeof raw.ringId !== "string" ||
    !Array.isArray(raw.entries) || !Array.isArray(raw.peers) || typeof raw.tombstones !== "object"
  ) {
    throw new RingError(`Cannot decode IPAM ring state: unexpected shape ${text.slice(0, 80)}`);
  }
  const entries = raw.entries.map(([token, owner, gen, version]) => ({
    token,
    owner,
    gen,
    version,
  }))
    .sort((x, y) => x.token - y.token);
  const peers = raw.peers.map((p) => ({ ...p, seen: p.seen ?? {} }))
    .sort((x, y) => compare(x.name, y.name));
  return { range: raw.range, ringId: raw.ringId, entries, peers, tombstones: raw.tombstones };
}

export function isDead(state: RingState, name: string, gen: number): boolean {
  const tomb = state.tombstones[name];
  return tomb !== undefined && tomb >= gen;
}

export function peerRecord(state: RingState, name: string): PeerRecord | undefined {
  return state.peers.find((p) => p.name === name);
}

/** Peers that take part: not removed, not left. */
export function livePeers(state: RingState): PeerRecord[] {
  return state.peers.filter((p) => !p.left && !isDead(state, p.name, p.gen));
}

/** The range each entry covers, in token order. */
export function entryRanges(state: RingState): Array<{ entry: RingEntry; range: AddressRange }> {
  const end = cidrToRange(parseCidr(state.range)).end;
  return state.entries.map((entry, i) => ({
    entry,
    range: { start: entry.token, end: state.entries[i + 1]?.token ?? end },
  }));
}

/** Ranges owned by (name, gen), merged where adjacent. */
export function ownedBy(state: RingState, name: string, gen: number): AddressRange[] {
  const out: AddressRange[] = [];
  for (const { entry, range } of entryRanges(state)) {
    if (entry.owner !== name || entry.gen !== gen || isDead(state, name, gen)) continue;
    const last = out.at(-1);
    if (last && last.end === range.start) {
      out[out.length - 1] = { start: last.start, end: range.end };
    } else out.push(range);
  }
  return out;
}

/** Every address owned by `name` (whatever generation is current in its record). */
export function ownedSize(state: RingState, name: string): number {
  let size = 0;
  for (const { entry, range } of entryRanges(state)) {
    if (entry.owner === name && !isDead(state, entry.owner, entry.gen)) {
      size += range.end - range.start;
    }
  }
  return size;
}

/**
 * Hands `range` from `from` to `to`. Only the owner may call it, and only for a range it
 * owns entirely: tokens are inserted at the range's edges (new tokens start at version 1,
 * owned by the old owner) and every entry inside gets the new owner and version + 1.
 */
export function giveRange(
  state: RingState,
  range: AddressRange,
  options: { from: { name: string; gen: number }; to: { name: string; gen: number } },
): RingState {
  const { from, to } = options;
  const clusterEnd = cidrToRange(parseCidr(state.range)).end;
  let entries = [...state.entries];
  for (const cut of [range.start, range.end]) {
    if (cut >= clusterEnd || entries.some((e) => e.token === cut)) continue;
    const holder = [...entries].reverse().find((e) => e.token < cut);
    if (!holder) throw new RingError(`Cannot split the ring at ${cut}: no entry covers it`);
    entries.push({ token: cut, owner: holder.owner, gen: holder.gen, version: 1 });
    entries = entries.sort((x, y) => x.token - y.token);
  }
  const next: RingState = { ...state, entries };
  const result = entryRanges(next).map(({ entry, range: r }) => {
    if (r.start < range.start || r.start >= range.end) return entry;
    if (entry.owner !== from.name || entry.gen !== from.gen) {
      throw new RingError(
        `Peer "${from.name}" cannot give away ${r.start}-${r.end - 1}: owned by "${entry.owner}"`,
      );
    }
    return { token: entry.token, owner: to.name, gen: to.gen, version: entry.version + 1 };
  });
  return { ...state, entries: result };
}

export function withPeer(state: RingState, record: PeerRecord): RingState {
  const peers = state.peers.filter((p) => p.name !== record.name).concat([record])
    .sort((x, y) => compare(x.name, y.name));
  return { ...state, peers };
}

export function withTombstone(state: RingState, name: string, gen: number): RingState {
  const tombstones = { ...state.tombstones };
  tombstones[name] = Math.max(gen, tombstones[name] ?? -1);
  return { ...state, tombstones: sortKeys(tombstones) };
}
