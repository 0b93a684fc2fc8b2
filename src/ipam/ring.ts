/**
 * The ring: who owns which part of the cluster range, as a value every peer holds a copy of.
 *
 * A state is a set of entries, one per token; entry i covers [token_i, token_i+1). Each entry is
 * the latest *deed* for its token: a signed write saying who owns [token, end) at this version,
 * who wrote it and why (the first split, a split, a give, a claim, an adoption), with the few
 * deeds before it, so that a peer that missed some versions can still check each step (see
 * authority.ts). Only the current owner of an entry changes it (bumping its version), so for
 * any token the versions form one chain and "higher version wins" is a correct merge. Peer
 * records (free/used, votes, what tombstones a peer has seen) are written and signed only by
 * their peer. Tombstones (`name -> highest removed generation`, signed by whoever removed it)
 * only grow. All three merge as a join, so merge is commutative, associative and idempotent,
 * and the encoding (ring_codec.ts) is canonical: peers with the same knowledge hold
 * byte-identical states. Everything here is pure; deeds this peer writes start unsigned and
 * LocalRing signs them.
 */
import { type AddressRange, type Cidr, cidrToRange, formatCidr, parseCidr } from "../net/cidr.ts";

export type IpamMode = "consensus" | "seed" | "observer";

export type DeedKind = "init" | "split" | "give" | "claim" | "adopt";

/** One write of one entry: who owns [token, end) from this version on, and who said so. */
export interface Deed {
  readonly token: number;
  /** Where the entry ends when written; a split shrinks it, nothing else changes it. */
  readonly end: number;
  readonly owner: string;
  /** The owner's generation when it got the entry; a tombstone for that generation orphans it. */
  readonly gen: number;
  readonly version: number;
  readonly writer: string;
  readonly writerGen: number;
  readonly kind: DeedKind;
  /** A token created by a split (version 1): the token it was cut from, at this version. */
  readonly parent?: { readonly token: number; readonly version: number };
  /**
   * A claim: why its writer was the heir, as the deeds the writer saw when it claimed (each
   * signed by its own writer): the writer's entry (`witness`) and the dead entries between it
   * and the orphan (`walk`), which end where the next begins.
   */
  readonly evidence?: { readonly witness: Deed; readonly walk: readonly Deed[] };
  /** The writer's signature (base64), "" until LocalRing signs its own writes. */
  readonly sig: string;
}

/** The current deed of a token, with the deeds before it (at most HISTORY_DEPTH, oldest first). */
export interface RingEntry extends Deed {
  readonly history: readonly Deed[];
}

/**
 * How many earlier deeds an entry carries: how many versions of one entry a peer may miss
 * (while away) and still check. Entries change hands rarely (a donation, a leave, a reclaim);
 * one that changed more often while a peer was away stays old for that peer (ring-unverified).
 */
export const HISTORY_DEPTH = 16;

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
  /** The tombstones this peer has acknowledged: reclaim waits until every live peer has. */
  readonly seen: Readonly<Record<string, number>>;
  /**
   * The live peers this peer knows, as "name@gen". A donor gives only to an incarnation every
   * live peer lists, and adopting ownerless space needs all live peers to list the same set.
   */
  readonly known?: readonly string[];
  /** Left cleanly: owns nothing and takes part in nothing until it returns with a new gen. */
  readonly left?: boolean;
  /** The peer's signature over the rest (base64), "" until LocalRing signs it. */
  readonly sig?: string;
}

/** Who removed a peer's generation (the highest tombstone), and their signature. */
export interface TombstoneProof {
  readonly by: string;
  readonly sig: string;
}

export interface RingState {
  /** The cluster range, as text; states for different ranges never merge. */
  readonly range: string;
  /** Names the initial split; "" before there is one. */
  readonly ringId: string;
  readonly entries: readonly RingEntry[];
  readonly peers: readonly PeerRecord[];
  readonly tombstones: Readonly<Record<string, number>>;
  /** For each tombstone, who issued its current generation. */
  readonly proofs: Readonly<Record<string, TombstoneProof>>;
}

export class RingError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RingError";
  }
}

export function emptyRing(range: Cidr): RingState {
  return {
    range: formatCidr(range),
    ringId: "",
    entries: [],
    peers: [],
    tombstones: {},
    proofs: {},
  };
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The deed without its history (what is signed and compared). */
export function deedOf(entry: Deed): Deed {
  const { token, end, owner, gen, version, writer, writerGen, kind, parent, evidence, sig } = entry;
  return {
    token,
    end,
    owner,
    gen,
    version,
    writer,
    writerGen,
    kind,
    ...(parent ? { parent } : {}),
    ...(evidence ? { evidence } : {}),
    sig,
  };
}

/** A stable text of a deed: equal deeds, equal keys (ties broken alike everywhere). */
export function deedKey(deed: Deed): string {
  return JSON.stringify(deedOf(deed));
}

/** Equal deeds (the history apart); as `deedKey(a) === deedKey(b)`, without building texts. */
export function sameDeed(a: Deed, b: Deed): boolean {
  return a === b || (a.token === b.token && a.version === b.version && a.sig === b.sig &&
    a.end === b.end && a.owner === b.owner && a.gen === b.gen && a.writer === b.writer &&
    a.writerGen === b.writerGen && a.kind === b.kind &&
    a.parent?.token === b.parent?.token && a.parent?.version === b.parent?.version &&
    (a.evidence === b.evidence || deedKey(a) === deedKey(b)));
}

function deedBeats(a: Deed, b: Deed): boolean {
  if (a.version !== b.version) return a.version > b.version;
  if (sameDeed(a, b)) return false;
  // Equal versions with different content come only from a writer that signed two successors
  // (an insider, or a reclaim race the protocol rules out): pick alike everywhere.
  return compare(deedKey(a), deedKey(b)) < 0;
}

function recordBeats(a: PeerRecord, b: PeerRecord): boolean {
  if (a === b) return false;
  if (a.gen !== b.gen) return a.gen > b.gen;
  if (a.version !== b.version) return a.version > b.version;
  return compare(JSON.stringify(a), JSON.stringify(b)) < 0;
}

/** The deeds of one token known to either side: the winner, and up to HISTORY_DEPTH before it. */
function mergeEntry(a: RingEntry, b: RingEntry): RingEntry {
  // (most merges meet the same entry on both sides)
  if (
    sameDeed(a, b) && a.history.length === b.history.length &&
    a.history.every((h, i) => sameDeed(h, b.history[i]))
  ) {
    return a;
  }
  const winner = deedBeats(a, b) ? a : b;
  const byVersion = new Map<number, Deed>();
  for (const deed of [...a.history, ...b.history, deedOf(a), deedOf(b)]) {
    if (deed.version >= winner.version) continue;
    const have = byVersion.get(deed.version);
    if (!have || deedBeats(deed, have)) byVersion.set(deed.version, deed);
  }
  const history = [...byVersion.values()].sort((x, y) => x.version - y.version)
    .slice(-HISTORY_DEPTH);
  return { ...deedOf(winner), history };
}

/** Joins two states. Pure, commutative, associative, idempotent. */
export function mergeRings(a: RingState, b: RingState): RingState {
  if (a.range !== b.range) {
    throw new RingError(`Cannot merge ring for range ${b.range} into ring for ${a.range}`);
  }
  // Two different initial splits cannot both be right; the lower id wins here, and a peer only
  // ever merges states of its own ring (LocalRing refuses the others).
  let entries: RingEntry[];
  let ringId: string;
  if (a.ringId === b.ringId) {
    ringId = a.ringId;
    const byToken = new Map<number, RingEntry>();
    for (const e of [...a.entries, ...b.entries]) {
      const have = byToken.get(e.token);
      byToken.set(e.token, have ? mergeEntry(have, e) : e);
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
  let tombstones = { ...a.tombstones };
  let proofs = { ...a.proofs };
  for (const [name, gen] of Object.entries(b.tombstones)) {
    const have = tombstones[name];
    const proof = b.proofs[name];
    if (have === undefined || gen > have) {
      tombstones[name] = gen;
      if (proof) proofs[name] = proof;
      else delete proofs[name];
    } else if (gen === have && proof && (!proofs[name] || proofBeats(proof, proofs[name]))) {
      proofs[name] = proof;
    }
  }
  tombstones = sortKeys(tombstones);
  proofs = sortKeys(proofs);
  const merged = {
    range: a.range,
    ringId,
    entries,
    peers: [...peers.values()].sort((x, y) => compare(x.name, y.name)),
    tombstones,
    proofs,
  };
  // `a` itself when `b` brought nothing: callers tell news by identity.
  return sameParts(merged, a) ? a : merged;
}

function sameParts(x: RingState, y: RingState): boolean {
  const same = <T>(p: readonly T[], q: readonly T[]) =>
    p.length === q.length && p.every((v, i) => v === q[i]);
  const sameKeys = <T>(p: Record<string, T>, q: Record<string, T>, eq: (v: T, w: T) => boolean) =>
    same(Object.keys(p), Object.keys(q)) && Object.keys(p).every((k) => eq(p[k], q[k]));
  return x.ringId === y.ringId && same(x.entries, y.entries) && same(x.peers, y.peers) &&
    sameKeys(x.tombstones, y.tombstones, (v, w) => v === w) &&
    sameKeys(x.proofs, y.proofs, (v, w) => v.by === w.by && v.sig === w.sig);
}

function proofBeats(a: TombstoneProof, b: TombstoneProof): boolean {
  return compare(`${a.by}\u0000${a.sig}`, `${b.by}\u0000${b.sig}`) < 0;
}

export function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([x], [y]) => compare(x, y)));
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

/** The range each entry covers, in token order (up to the next token, or its deed's end). */
export function entryRanges(state: RingState): Array<{ entry: RingEntry; range: AddressRange }> {
  const end = cidrToRange(parseCidr(state.range)).end;
  return state.entries.map((entry, i) => ({
    entry,
    range: { start: entry.token, end: Math.min(state.entries[i + 1]?.token ?? end, entry.end) },
  }));
}

/**
 * Ranges owned by (name, gen), merged where adjacent. `ignoreTombstone`: a peer contesting its
 * own removal (see LocalRing) still counts what it owns.
 */
export function ownedBy(
  state: RingState,
  name: string,
  gen: number,
  options: { ignoreTombstone?: boolean } = {},
): AddressRange[] {
  if (!options.ignoreTombstone && isDead(state, name, gen)) return [];
  const out: AddressRange[] = [];
  for (const { entry, range } of entryRanges(state)) {
    if (entry.owner !== name || entry.gen !== gen || range.end <= range.start) continue;
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

export function withPeer(state: RingState, record: PeerRecord): RingState {
  const peers = state.peers.filter((p) => p.name !== record.name).concat([record])
    .sort((x, y) => compare(x.name, y.name));
  return { ...state, peers };
}

/**
 * Tombstones generation `gen` of `name`, issued by `by` (unsigned until LocalRing signs it). A
 * tombstone only grows: a lower generation than the one held changes nothing.
 */
export function withTombstone(
  state: RingState,
  name: string,
  options: { gen: number; by: string },
): RingState {
  const have = state.tombstones[name];
  if (have !== undefined && have >= options.gen) return state;
  return {
    ...state,
    tombstones: sortKeys({ ...state.tombstones, [name]: options.gen }),
    proofs: sortKeys({ ...state.proofs, [name]: { by: options.by, sig: "" } }),
  };
}
