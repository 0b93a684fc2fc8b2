/**
 * The ring's text: canonical (equal states, equal strings; what gossip carries and the store
 * keeps) and decoded strictly, since a state may come from a hostile peer: every field is
 * checked for type and bounds before any of it is used, and anything else is a RingError.
 */
import { cidrToRange, parseCidr } from "../net/cidr.ts";
import {
  compare,
  type Deed,
  type DeedKind,
  HISTORY_DEPTH,
  type IpamMode,
  type PeerRecord,
  type RingEntry,
  RingError,
  type RingState,
  sortKeys,
  type TombstoneProof,
} from "./ring.ts";

/** The encoding's version; states of other versions are refused (a ring from before signing). */
export const RING_FORMAT = 2;

/** A deed as 11 fields (the signature 10th, the evidence last); an entry adds its history. */
export function encodeDeed(d: Deed): unknown[] {
  const evidence = d.evidence
    ? [encodeDeed(d.evidence.witness), d.evidence.walk.map(encodeDeed)]
    : 0;
  return [
    d.token,
    d.end,
    d.owner,
    d.gen,
    d.version,
    d.writer,
    d.writerGen,
    d.kind,
    d.parent ? [d.parent.token, d.parent.version] : 0,
    d.sig,
    evidence,
  ];
}

/** The signed content of a record: everything but its signature, in a fixed order. */
export function encodeRecord(p: PeerRecord): Record<string, unknown> {
  return {
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
  };
}

/** Canonical text: equal states encode to equal strings. */
export function encodeRing(state: RingState): string {
  return JSON.stringify({
    v: RING_FORMAT,
    range: state.range,
    ringId: state.ringId,
    entries: state.entries.map((e) => [...encodeDeed(e), e.history.map(encodeDeed)]),
    peers: state.peers.map((p) => ({ ...encodeRecord(p), sig: p.sig ?? "" })),
    tombstones: sortKeys({ ...state.tombstones }),
    proofs: sortKeys({ ...state.proofs }),
  });
}

const KINDS = new Set<string>(["init", "split", "give", "claim", "adopt"]);
const MODES = new Set<string>(["consensus", "seed", "observer"]);
const MAX_ITEMS = 100_000;
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * `raw` is the encoding of `d` (a deed without evidence): checked field by field, so that a
 * state that mostly repeats what we hold is not decoded and validated again.
 */
function encodes(raw: unknown, d: Deed): boolean {
  if (!Array.isArray(raw) || raw.length < 11 || raw[10] !== 0 || d.evidence) return false;
  const parent = raw[8];
  return raw[0] === d.token && raw[4] === d.version && raw[9] === d.sig && raw[1] === d.end &&
    raw[2] === d.owner && raw[3] === d.gen && raw[5] === d.writer && raw[6] === d.writerGen &&
    raw[7] === d.kind &&
    (d.parent
      ? Array.isArray(parent) && parent.length === 2 && parent[0] === d.parent.token &&
        parent[1] === d.parent.version
      : parent === 0);
}

/**
 * The state `text` encodes, validated. Entries equal to one of `reuse` (the state we hold)
 * are taken from it as they are.
 */
export function decodeRing(text: string, reuse?: RingState): RingState {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new RingError(`Cannot decode IPAM ring state: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("not an object");
  if (raw.v !== RING_FORMAT) {
    fail(
      `format ${JSON.stringify(raw.v)}, expected ${RING_FORMAT} (a state from an older weft, ` +
        `before the ring was signed: run "weft reset" on that node)`,
    );
  }
  const range = str(raw.range, "range");
  let bounds: { start: number; end: number };
  try {
    bounds = cidrToRange(parseCidr(range));
  } catch {
    fail(`range ${JSON.stringify(range).slice(0, 40)}`);
  }
  const ringId = str(raw.ringId, "ringId", 65536);
  const token = (v: unknown, what: string, field: string) => {
    const n = int(v, what, field);
    if (n < bounds.start || n > bounds.end) fail(what, `${field} ${n} outside ${range}`);
    return n;
  };
  const deed = (v: unknown, what: string, depth = 0): Deed => {
    if (!Array.isArray(v) || v.length < 11) fail(what);
    const [t, end, owner, gen, version, writer, writerGen, kind, parent, sig, evidence] = v;
    let proof: Deed["evidence"];
    if (evidence !== 0) {
      if (depth > 0 || !Array.isArray(evidence) || evidence.length !== 2) fail(`${what} evidence`);
      const walk = list(evidence[1], `${what} walk`);
      if (walk.length > 1024) fail(`${what} walk is too long`);
      proof = {
        witness: deed(evidence[0], `${what} witness`, 1),
        walk: walk.map((w, i) => deed(w, `${what} walk ${i}`, 1)),
      };
    }
    if (!KINDS.has(kind)) fail(`${what} kind`);
    let parentRef: Deed["parent"];
    if (parent !== 0) {
      if (!Array.isArray(parent) || parent.length !== 2) fail(`${what} parent`);
      parentRef = { token: token(parent[0], what, "parent"), version: int(parent[1], what) };
    }
    const d: Deed = {
      token: token(t, what, "token"),
      end: token(end, what, "end"),
      owner: name(owner, what, "owner"),
      gen: int(gen, what, "gen"),
      version: int(version, what, "version"),
      writer: name(writer, what, "writer"),
      writerGen: int(writerGen, what, "writerGen"),
      kind: kind as DeedKind,
      ...(parentRef ? { parent: parentRef } : {}),
      ...(proof ? { evidence: proof } : {}),
      sig: str(sig, what, 512, "sig"),
    };
    if (d.end <= d.token || d.version < 1) fail(`${what} is empty or has version 0`);
    return d;
  };
  const held = new Map(reuse?.range === range ? reuse.entries.map((e) => [e.token, e]) : []);
  const entries: RingEntry[] = list(raw.entries, "entries").map((v, i) => {
    const mine = Array.isArray(v) ? held.get(v[0]) : undefined;
    const carried: unknown = mine && (v as unknown[])[11];
    if (
      mine && Array.isArray(carried) && encodes(v, mine) &&
      carried.length === mine.history.length &&
      carried.every((h: unknown, k: number) => encodes(h, mine.history[k]))
    ) {
      return mine;
    }
    const d = deed(v, `entry ${i}`);
    const history = list((v as unknown[])[11], `entry ${i} history`).map((h, k) =>
      deed(h, `entry ${i} history ${k}`)
    );
    if (history.length > HISTORY_DEPTH) fail(`entry ${i} history is too long`);
    if (history.some((h, k) => h.token !== d.token || h.version >= (history[k + 1] ?? d).version)) {
      fail(`entry ${i} history is not one token's earlier versions, in order`);
    }
    return { ...d, history };
  }).sort((x, y) => x.token - y.token);
  if (new Set(entries.map((e) => e.token)).size !== entries.length) fail("a token twice");
  const peers: PeerRecord[] = list(raw.peers, "peers").map((v, i) => record(v, `peer ${i}`))
    .sort((x, y) => compare(x.name, y.name));
  if (new Set(peers.map((p) => p.name)).size !== peers.length) fail("a peer twice");
  const tombstones = gens(raw.tombstones, "tombstones");
  const proofs: Record<string, TombstoneProof> = {};
  for (const [peer, v] of Object.entries(obj(raw.proofs, "proofs"))) {
    const p = obj(v, `proof of ${peer}`);
    proofs[name(peer, "proof name")] = {
      by: name(p.by, `proof of ${peer}`),
      sig: str(p.sig, `proof of ${peer}`, 512),
    };
  }
  return {
    range,
    ringId,
    entries,
    peers,
    tombstones: sortKeys(tombstones),
    proofs: sortKeys(proofs),
  };
}

function record(v: unknown, what: string): PeerRecord {
  const p = obj(v, what);
  if (!MODES.has(p.mode as string)) fail(`${what} mode`);
  const names = (x: unknown, field: string) =>
    list(x, `${what} ${field}`).map((n) => str(n, `${what} ${field}`, 300));
  return {
    name: name(p.name, what, "name"),
    gen: int(p.gen, what, "gen"),
    version: int(p.version, what, "version"),
    mode: p.mode as IpamMode,
    free: int(p.free, what, "free"),
    used: int(p.used, what, "used"),
    ...(p.vote === undefined ? {} : { vote: names(p.vote, "vote") }),
    seen: gens(p.seen, `${what} seen`),
    ...(p.known === undefined ? {} : { known: names(p.known, "known") }),
    ...(p.left === true ? { left: true } : {}),
    sig: str(p.sig ?? "", what, 512, "sig"),
  };
}

function gens(v: unknown, what: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [peer, gen] of Object.entries(obj(v, what))) out[name(peer, what)] = int(gen, what);
  return out;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what);
  if (Object.keys(v).length > MAX_ITEMS) fail(`${what} is too large`);
  return v as Record<string, unknown>;
}

function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v) || v.length > MAX_ITEMS) fail(what);
  return v;
}

function str(v: unknown, what: string, max = 300, field = ""): string {
  if (typeof v !== "string" || v.length > max) fail(what, field);
  return v;
}

/** A peer name: 1-253 characters, none of them a control character. */
function name(v: unknown, what: string, field = ""): string {
  const printable = typeof v === "string" && v.length > 0 && v.length <= 253 &&
    !CONTROL.test(v);
  if (!printable) fail(what, `${field} ${JSON.stringify(v)?.slice(0, 40)}`.trim());
  return v as string;
}

function int(v: unknown, what: string, field = ""): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) fail(what, field);
  return v;
}

/** (`field` apart from `what`, so that the message is built only when something is wrong) */
function fail(what: string, field = ""): never {
  throw new RingError(`Cannot decode IPAM ring state: bad ${field ? `${what} ${field}` : what}`);
}
