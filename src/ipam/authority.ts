/**
 * Who may write what in the ring, checked with per-peer signatures (CONTRACTS #2), so that a
 * peer that knows the mesh password still cannot write in another peer's name.
 *
 * - A peer record counts only when its peer signed it; a tombstone only with the signature of
 *   the peer that removed (its proof).
 * - An entry changes only by a deed its writer signed, and a receiver accepts it only if the
 *   writer had the right, step by step from the version the receiver holds: a split or a give
 *   by the owner of the previous version; a claim by the heir of an owner whose removal every
 *   live peer (and this peer itself) acknowledged; an adoption when no live owner is left; the
 *   first split by the creator its ring id names, with the shares it must have. An entry
 *   carries its last few deeds (ring.ts), so a receiver that missed some versions still checks
 *   each one; one that missed more keeps what it has and says so (`unverified`).
 * - A peer without a ring takes the first ring it hears on trust (as the mesh trusts a key on
 *   first use), checking each carried deed's signature and the steps between them; after that,
 *   states of another ring are refused.
 *
 * Pure apart from the signer; ClusterIpam's LocalRing signs what this peer writes (signOwn) and
 * filters what it merges (verifyIncoming). docs/ipam.md argues why this is enough.
 */
import { cidrToRange, parseCidr } from "../net/cidr.ts";
import { encodeDeed, encodeRecord, RING_FORMAT } from "./ring_codec.ts";
import {
  type Deed,
  deedOf,
  entryRanges,
  HISTORY_DEPTH,
  isDead,
  livePeers,
  mergeRings,
  type PeerRecord,
  peerRecord,
  type RingEntry,
  type RingState,
  sameDeed,
  type TombstoneProof,
} from "./ring.ts";
import { initialShares } from "./ring_writes.ts";
import { reclaimAcknowledged } from "./reclaim.ts";

/** CONTRACTS #2: the mesh's identity keys, as the IPAM uses them. */
export interface PeerSigner {
  /** Ed25519 signature by this peer's identity key, base64. */
  sign(data: Uint8Array): string;
  /** True when `signature` over `data` verifies with the key bound to peer `name` (trust on
   *  first use, persisted). False for unknown peers or bad signatures. */
  verify(name: string, data: Uint8Array, signature: string): boolean;
}

const encoder = new TextEncoder();

/** Refusals that time can clear: the deed, parent or acknowledgement has not arrived yet. */
const PENDING = /are missing|is unknown|is not acknowledged/;

function bytes(domain: string, content: unknown): Uint8Array {
  return encoder.encode(`weft-ipam-${domain}-v${RING_FORMAT}\n${JSON.stringify(content)}`);
}

/** What a deed's signature covers: every field but the signature and the claim's evidence. */
export function deedBytes(state: { range: string; ringId: string }, d: Deed): Uint8Array {
  return bytes("deed", [state.range, state.ringId, ...encodeDeed(d).slice(0, 9)]);
}

export function recordBytes(range: string, record: PeerRecord): Uint8Array {
  return bytes("record", [range, encodeRecord(record)]);
}

export function tombstoneBytes(
  range: string,
  tombstone: { name: string; gen: number; by: string },
): Uint8Array {
  return bytes("tombstone", [range, tombstone.name, tombstone.gen, tombstone.by]);
}

/** Signs what `me` wrote and has not signed yet: its deeds, its record, its tombstones. */
export function signOwn(state: RingState, me: string, signer: PeerSigner): RingState {
  let changed = false;
  const sign = (d: Deed): Deed => {
    // (a claim's evidence may hold a deed of ours from the same change: signed alike)
    const evidence = d.evidence &&
      { witness: sign(d.evidence.witness), walk: d.evidence.walk.map(sign) };
    const moved = evidence !== undefined &&
      (evidence.witness !== d.evidence!.witness ||
        evidence.walk.some((w, i) => w !== d.evidence!.walk[i]));
    if ((d.sig !== "" || d.writer !== me) && !moved) return d;
    changed = true;
    const sig = d.sig !== "" || d.writer !== me ? d.sig : signer.sign(deedBytes(state, d));
    return { ...d, ...(evidence ? { evidence } : {}), sig };
  };
  // (a pre-scan: nearly always nothing is unsigned, and most states are large)
  const unsigned = (d: Deed): boolean =>
    (d.sig === "" && d.writer === me) ||
    (d.evidence !== undefined && (unsigned(d.evidence.witness) || d.evidence.walk.some(unsigned)));
  const entries = state.entries.map((e) => {
    if (!unsigned(e) && !e.history.some(unsigned)) return e;
    const history = e.history.map(sign);
    const current = sign(deedOf(e));
    return current === deedOf(e) && history.every((h, i) => h === e.history[i])
      ? e
      : { ...current, history };
  });
  const peers = state.peers.map((p) => {
    if (p.name !== me || p.sig) return p;
    changed = true;
    return { ...p, sig: signer.sign(recordBytes(state.range, p)) };
  });
  const proofs: Record<string, TombstoneProof> = { ...state.proofs };
  for (const [name, proof] of Object.entries(state.proofs)) {
    if (proof.by !== me || proof.sig !== "") continue;
    changed = true;
    const gen = state.tombstones[name];
    proofs[name] = { by: me, sig: signer.sign(tombstoneBytes(state.range, { name, gen, by: me })) };
  }
  return changed ? { ...state, entries, peers, proofs } : state;
}

export interface VerifyContext {
  signer: PeerSigner;
  me: string;
  /** Signatures already found good (a cache: gossip brings the same ones again and again). */
  verified: Set<string>;
}

export interface Verified {
  /** What of the incoming state may be merged (the rest replaced by what we hold). */
  accepted: RingState;
  /** What was refused, in words for the log. */
  refused: string[];
  /**
   * The refusals that are not a matter of time (a missing version, a parent or a claim's
   * acknowledgements still on their way): forged or unauthorised writes.
   */
  suspicious: string[];
  /** Tokens whose newer deeds could not be checked from what we hold (too many missed). */
  unverified: number[];
  /** Tokens for which a writer signed two different deeds of one version. */
  conflicts: number[];
}

/**
 * The part of `incoming` whose every change is signed and allowed (see the module notes), as
 * a state to merge into `local`. A state of another ring is refused whole.
 */
export function verifyIncoming(
  local: RingState,
  incoming: RingState,
  ctx: VerifyContext,
): Verified | { foreignRing: string } {
  if (local.ringId !== "" && incoming.ringId !== "" && incoming.ringId !== local.ringId) {
    return { foreignRing: incoming.ringId };
  }
  const refused: string[] = [];
  const ok = (name: string, data: Uint8Array, sig: string) => {
    const key = `${name}\u0000${sig}`;
    if (sig === "") return false;
    if (ctx.verified.has(key)) return true;
    if (!ctx.signer.verify(name, data, sig)) return false;
    if (ctx.verified.size > 100_000) ctx.verified.clear();
    ctx.verified.add(key);
    return true;
  };
  // Records and tombstones first: claims are checked against them.
  const peers = incoming.peers.filter((p) => {
    const have = peerRecord(local, p.name);
    // Only a newer record can change anything (one that is not is the sender's stale copy).
    if (have && !(p.gen > have.gen || (p.gen === have.gen && p.version > have.version))) {
      return false;
    }
    if (ok(p.name, recordBytes(incoming.range, p), p.sig ?? "")) return true;
    refused.push(`record of "${p.name}" (gen ${p.gen} v${p.version}): not signed by it`);
    return false;
  });
  const tombstones: Record<string, number> = {};
  const proofs: Record<string, TombstoneProof> = {};
  for (const [name, gen] of Object.entries(incoming.tombstones)) {
    const proof = incoming.proofs[name];
    const have = local.tombstones[name];
    // Two peers removing the same generation at once sign different proofs: both are taken in
    // and the merge keeps one, the same everywhere.
    if (
      have !== undefined && (gen < have || (gen === have && proof?.sig === local.proofs[name]?.sig))
    ) {
      continue;
    }
    if (
      proof && ok(proof.by, tombstoneBytes(incoming.range, { name, gen, by: proof.by }), proof.sig)
    ) {
      tombstones[name] = gen;
      proofs[name] = proof;
    } else refused.push(`removal of "${name}" (gen ${gen}): not signed by whoever issued it`);
  }
  const checked: RingState = {
    ...incoming,
    ringId: incoming.ringId || local.ringId,
    entries: [],
    peers,
    tombstones,
    proofs,
  };
  const tofu = local.ringId === "" && incoming.ringId !== "";
  const result = new Map<number, RingEntry>();
  const unverified = new Set<number>();
  const conflicts = new Set<number>();
  const localByToken = new Map(local.entries.map((e) => [e.token, e]));
  /** The deed of `token` at `version` we hold or took (checked). */
  const known = (token: number, version: number): Deed | undefined => {
    const e = result.get(token) ?? localByToken.get(token);
    if (!e) return undefined;
    return [...e.history, deedOf(e)].find((d) => d.version === version);
  };
  const received = new Map(incoming.entries.map((e) => [e.token, e]));
  const oldest = (token: number) => {
    const e = received.get(token);
    return e && (e.history[0] ?? e).version;
  };
  const localRanges = entryRanges(local).map(({ range }) => range);
  /** No entry we hold covers any of `d`'s range. */
  const unknownPart = (d: Deed) => localRanges.every((r) => r.end <= d.token || r.start >= d.end);
  const carried = (token: number, version: number) => {
    const e = received.get(token);
    return e && [...e.history, deedOf(e)].find((d) => d.version === version);
  };
  /**
   * What to take of `entry`: all of it, the deeds up to the first that cannot be checked yet
   * (with why the rest waits), nothing new ("same"), or why none can be taken.
   */
  const check = (
    entry: RingEntry,
    view: () => RingState,
  ): { take: RingEntry; rest?: string } | "same" | string => {
    const mine = result.get(entry.token) ?? localByToken.get(entry.token);
    if (mine && entry.version <= mine.version) {
      if (sameDeed(entry, mine)) return "same";
      const same = known(entry.token, entry.version);
      if (same && !sameDeed(same, entry)) conflicts.add(entry.token);
      return "same";
    }
    const chain = [...entry.history, deedOf(entry)].filter((d) => d.version > (mine?.version ?? 0));
    // Taken on trust, as the ring at first: a token new to us whose first deeds are forgotten,
    // in a part of the ring we know nothing of (we took the ring from a peer that had not
    // taken it either). Not a jump over versions we missed: anyone can sign a long history of
    // gives to itself, and only the versions we hold tell it from the real one.
    const first = chain[0];
    const anchor = tofu || (!mine && first !== undefined && unknownPart(first));
    if (!anchor && chain[0]?.version !== (mine?.version ?? 0) + 1) {
      unverified.add(entry.token);
      return `versions ${(mine?.version ?? 0) + 1}-${chain[0]?.version - 1} are missing`;
    }
    let prev: Deed | undefined = anchor && first.version !== (mine?.version ?? 0) + 1
      ? undefined
      : mine && deedOf(mine);
    const taken: Deed[] = [];
    let why: string | undefined;
    for (const d of chain) {
      if (!ok(d.writer, deedBytes(checked, d), d.sig)) why = "not signed by its writer";
      else if (prev && d.version !== prev.version + 1) why = "versions are not consecutive";
      else if (!prev && (!anchor || d.kind === "init")) {
        why = creation(d, { state: checked, known });
      } else if (prev) {
        why = allowed(prev, d, {
          view: view(),
          local,
          me: ctx.me,
          ok,
          known,
          oldest,
          carried,
          tofu,
        });
      }
      // (on trust, the oldest deed carried needs only its signature)
      if (why) break;
      taken.push(d);
      prev = d;
    }
    if (taken.length === 0) return why!;
    const history = [...(mine ? [...mine.history, deedOf(mine)] : []), ...taken.slice(0, -1)]
      .slice(-HISTORY_DEPTH);
    return { take: { ...taken[taken.length - 1], history }, rest: why };
  };
  // A cut-off needs its parent's cut, a claim the deeds of its evidence: check until nothing
  // more can be taken, each round against what the rounds before took (a chain may be taken
  // in parts: its later deeds can need deeds of other tokens that come after its earlier ones).
  let pending = [...incoming.entries];
  const failures = new Map<number, string>();
  for (let progress = true; progress && pending.length > 0;) {
    progress = false;
    // (what the rounds before took; merged only if a deed needs it)
    const taken = [...result.values()];
    let merged: RingState | undefined;
    const view = () => merged ??= mergeRings(local, { ...checked, entries: taken });
    pending = pending.filter((entry) => {
      const outcome = check(entry, view);
      if (outcome === "same") return false;
      if (typeof outcome === "string") {
        failures.set(entry.token, outcome);
        return true;
      }
      result.set(entry.token, outcome.take);
      progress = true;
      if (outcome.rest === undefined) return false;
      failures.set(entry.token, outcome.rest);
      return true;
    });
  }
  for (const entry of pending) {
    // What only waits (a deed, parent or acknowledgement on its way) also holds back our own
    // claims meanwhile: an orphan whose claim we cannot check yet is not ours to claim.
    if (PENDING.test(failures.get(entry.token) ?? "")) unverified.add(entry.token);
    refused.push(
      `entry ${entry.token} v${entry.version} by "${entry.writer}": ${failures.get(entry.token)}`,
    );
  }
  return {
    accepted: { ...checked, entries: [...result.values()].sort((a, b) => a.token - b.token) },
    refused,
    suspicious: refused.filter((why) => !PENDING.test(why)),
    unverified: [...unverified],
    conflicts: [...conflicts],
  };
}

/**
 * Whether a claim proves its writer was the heir of `prev`'s entry: the deeds it carries, each
 * signed, show an entry of the writer followed, end to start, by entries of removed peers
 * (acknowledged by every live peer) up to the orphan. Deeds of the past, so the proof holds
 * however the ring changed since; what an insider can still do with its own old deeds is in
 * docs/ipam.md.
 */
function heirEvidence(claim: Deed, prev: Deed, ctx: StepContext): string | undefined {
  const { view, ok, known } = ctx;
  if (!claim.evidence) return "a claim without evidence of its writer's right";
  const { witness, walk } = claim.evidence;
  if (witness.owner !== claim.writer || witness.gen !== claim.writerGen) {
    return `"${claim.writer}" is not the heir (its evidence is not its entry)`;
  }
  const { start, end } = cidrToRange(parseCidr(view.range));
  const steps = [witness, ...walk, prev];
  for (let i = 0; i + 1 < steps.length; i++) {
    const [a, b] = [steps[i], steps[i + 1]];
    if (a.end !== b.token && !(a.end === end && b.token === start)) {
      return `"${claim.writer}" is not the heir (its evidence has a gap)`;
    }
  }
  for (const d of [witness, ...walk]) {
    // Signed is not enough (anyone signs what it writes): the ring must have held the deed.
    // A peer taking the ring on trust takes it from the state it trusts, and a deed older
    // than any that state carries on its signature alone (anyone could write such a deed, so
    // only where everything is on trust anyway).
    const held = known(d.token, d.version) ??
      (ctx.tofu ? ctx.carried(d.token, d.version) : undefined);
    const trusted = ctx.tofu && held === undefined && (ctx.oldest(d.token) ?? 0) > d.version;
    if ((!trusted && held?.sig !== d.sig) || !ok(d.writer, deedBytes(view, d), d.sig)) {
      return `its evidence (${d.token} v${d.version}) is unknown`;
    }
  }
  const live = livePeers(view);
  for (const d of walk) {
    if (!isDead(view, d.owner, d.gen) || !reclaimAcknowledged(view, d.owner, live, d.gen)) {
      return `the removal of "${d.owner}" (between the heir and the orphan) is not acknowledged`;
    }
  }
  return undefined;
}

/** A token's first deed: the first split (checked against the ring id) or a split's cut-off. */
function creation(
  d: Deed,
  ctx: {
    state: RingState;
    known: (token: number, version: number) => Deed | undefined;
  },
): string | undefined {
  if (d.version !== 1) return "not a first version";
  if (d.kind === "init") {
    // ("consensus:a,b" or "seed:a,b"; peer names may hold colons themselves)
    const colon = ctx.state.ringId.indexOf(":");
    const mode = ctx.state.ringId.slice(0, colon);
    const members = ctx.state.ringId.slice(colon + 1).split(",");
    const creatorOk = mode === "consensus"
      ? d.writer === members[0]
      : mode === "seed" && members.includes(d.writer);
    if (!creatorOk) return `"${d.writer}" did not create ring ${ctx.state.ringId}`;
    const share = initialShares(ctx.state.range, members.length)
      .find(([token, end, i]) => token === d.token && end === d.end && members[i] === d.owner);
    return share ? undefined : `not a share of ring ${ctx.state.ringId}`;
  }
  if (d.kind !== "split" || !d.parent) return `a ${d.kind} cannot create a token`;
  // The entry it was cut from: that entry's split deed (the cut) and the one before it (what
  // the writer owned, and where it ended).
  const cut = ctx.known(d.parent.token, d.parent.version);
  const before = ctx.known(d.parent.token, d.parent.version - 1);
  if (!cut || !before) return `its parent ${d.parent.token} v${d.parent.version} is unknown`;
  const fits = cut.kind === "split" && cut.end === d.token && cut.writer === d.writer &&
    before.owner === d.writer && before.gen === d.writerGen && before.end === d.end &&
    d.owner === before.owner && d.gen === before.gen && d.parent.token < d.token;
  return fits ? undefined : "not cut from an entry its writer owned";
}

/** Whether deed `d` may follow `prev` (the same token's previous version). */
/** What checking one step needs to know. */
interface StepContext {
  /** Our state with what this state brought that was taken so far. */
  view: RingState;
  local: RingState;
  me: string;
  /** Whether `sig` over `data` is `name`'s (cached). */
  ok: (name: string, data: Uint8Array, sig: string) => boolean;
  /** The deed of `token` at `version` we hold or took (checked). */
  known: (token: number, version: number) => Deed | undefined;
  /** The oldest version carried of `token`, as received (nothing older can be checked). */
  oldest: (token: number) => number | undefined;
  /** The deed of `token` at `version` as received (on trust only). */
  carried: (token: number, version: number) => Deed | undefined;
  tofu: boolean;
}

function allowed(prev: Deed, d: Deed, ctx: StepContext): string | undefined {
  const byOwner = d.writer === prev.owner && d.writerGen === prev.gen;
  switch (d.kind) {
    case "split":
      return byOwner && d.owner === prev.owner && d.gen === prev.gen && d.end < prev.end &&
          d.end > d.token
        ? undefined
        : "a split not by the owner";
    case "give":
      return byOwner && d.end === prev.end
        ? undefined
        : `a give not by the owner ("${prev.owner}")`;
    case "claim":
    case "adopt": {
      const { view } = ctx;
      if (d.writer !== d.owner || d.writerGen !== d.gen || d.end !== prev.end) {
        return "a claim must be written by the claimer";
      }
      if (!isDead(view, prev.owner, prev.gen)) return `"${prev.owner}" was not removed`;
      // Every live peer but us: our own acknowledgement says nothing about a claim made before.
      const live = livePeers(view).filter((p) => p.name !== ctx.me);
      if (!reclaimAcknowledged(view, prev.owner, live, prev.gen)) {
        return `the removal of "${prev.owner}" is not acknowledged by every live peer`;
      }
      if (d.kind === "adopt") {
        // (entries the adopter has handed on since still show it in their deeds)
        const adopted = (e: RingEntry) =>
          [...e.history, e].some((x) => x.owner === d.writer && x.gen === d.writerGen);
        return view.entries.every((e) => isDead(view, e.owner, e.gen) || adopted(e))
          ? undefined
          : "an adoption while live peers own space";
      }
      return heirEvidence(d, prev, ctx);
    }
    default:
      return `a ${d.kind} of an existing entry`;
  }
}
