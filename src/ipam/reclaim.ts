/**
 * Reclaim, as pure functions of the ring: which entries are orphans (their owner's generation
 * was removed), who inherits each (the owner of the nearest live entry before it), and whether
 * every live peer has acknowledged a removal so that the heir may claim. Only the heir writes
 * its claim; docs/ipam.md argues why that gives every orphan exactly one new owner.
 */
import {
  compare,
  deedOf,
  isDead,
  livePeers,
  type PeerRecord,
  type RingEntry,
  type RingState,
} from "./ring.ts";
import { nextDeed } from "./ring_writes.ts";
import { cidrToRange, parseCidr } from "../net/cidr.ts";

/**
 * Orphans are entries whose owner was removed. Each goes to a deterministic heir: the owner of
 * the nearest live entry before it (cyclically). Only the heir itself writes the claim, and
 * only once every live peer has reported seeing the tombstone, so every donation the removed
 * peer made that any survivor accepted is already in this state (see docs/ipam.md).
 * Returns the new state, or the same object when `me` has nothing to claim.
 */
export function claimOrphans(
  state: RingState,
  me: { name: string; gen: number },
  options: { adopt?: boolean } = {},
): RingState {
  const live = livePeers(state);
  if (!live.some((p) => p.name === me.name && p.gen === me.gen)) return state;
  if (!state.entries.some((e) => isDead(state, e.owner, e.gen))) return state;
  // No live owner at all (everyone who owned space is gone): nothing anchors an heir the way
  // the previous entry's owner does, and two peers cut off from each other would each pick
  // themselves. So only a peer told to adopt (an operator, on one node) claims, and only when
  // every live peer it knows publishes the same set of live peers.
  const adopt = options.adopt && disagreeing(live).length === 0 && hasNoLiveOwner(state);
  let changed = false;
  const entries = state.entries.map((entry, i) => {
    if (!isDead(state, entry.owner, entry.gen)) return entry;
    if (!reclaimAcknowledged(state, entry.owner, live, entry.gen)) return entry;
    const walk = adopt ? undefined : heirWalk(state, i, live);
    if (!adopt && walk?.witness.owner !== me.name) return entry;
    changed = true;
    const claim = nextDeed(entry, {
      owner: me.name,
      gen: me.gen,
      writer: me,
      kind: adopt ? "adopt" : "claim",
    });
    // The claim carries why we are the heir, for peers that check it later (authority.ts).
    if (!walk) return claim;
    const bare = (d: RingEntry) => {
      const { evidence: _, ...rest } = deedOf(d);
      return rest;
    };
    return { ...claim, evidence: { witness: bare(walk.witness), walk: walk.walk.map(bare) } };
  });
  return changed ? { ...state, entries } : state;
}

/**
 * Who inherits the orphan at `index`: the owner of the nearest live entry before it, or
 * undefined while that cannot be known yet (or when no entry is live). The walk passes dead
 * entries only while their removal is acknowledged too: the gives of a removed peer whose
 * removal is not acknowledged yet may still be unknown here (it may have given the entry
 * before ours to a live peer), so two peers could see different nearest live entries. The
 * long property run found this (docs/ipam.md, step 5).
 */
export function heirOf(
  state: RingState,
  index: number,
  live: readonly PeerRecord[] = livePeers(state),
): string | undefined {
  return heirWalk(state, index, live)?.witness.owner;
}

/** The walk behind heirOf: the heir's entry, and the dead entries from it to the orphan. */
function heirWalk(
  state: RingState,
  index: number,
  live: readonly PeerRecord[],
): { witness: RingEntry; walk: RingEntry[] } | undefined {
  const entries = state.entries;
  const { start, end } = cidrToRange(parseCidr(state.range));
  const walk: RingEntry[] = [];
  let next = entries[index];
  for (let k = 1; k < entries.length; k++) {
    const entry = entries[(index - k + entries.length) % entries.length];
    // A part of the ring we do not know (a gap) could hold anyone's entry: no heir yet.
    if (entry.end !== next.token && !(entry.end === end && next.token === start)) return undefined;
    if (!isDead(state, entry.owner, entry.gen)) return { witness: entry, walk: walk.reverse() };
    if (!reclaimAcknowledged(state, entry.owner, live, entry.gen)) return undefined;
    walk.push(entry);
    next = entry;
  }
  return undefined;
}

function hasNoLiveOwner(state: RingState): boolean {
  return state.entries.every((e) => isDead(state, e.owner, e.gen));
}

export type AdoptionBlocker = {
  reason: "no-ring" | "owned" | "not-live" | "unacknowledged" | "disagreement";
  message: string;
};

/**
 * Why `me` may not adopt the ring's space now (see claimOrphans), or undefined when it may:
 * there must be a ring, no live owner, every removal acknowledged, and every live peer must
 * publish the same set of live peers.
 */
export function adoptionBlocker(
  state: RingState,
  me: { name: string; gen: number },
): AdoptionBlocker | undefined {
  if (state.ringId === "" || state.entries.length === 0) {
    return { reason: "no-ring", message: "there is no ring yet: the first split was never made" };
  }
  const owners = [
    ...new Set(state.entries.filter((e) => !isDead(state, e.owner, e.gen)).map((e) => e.owner)),
  ];
  if (owners.length > 0) {
    return {
      reason: "owned",
      message: `live peers own space (${owners.join(", ")}); a removed peer's space goes to ` +
        `its heir by itself once the removal is acknowledged`,
    };
  }
  const live = livePeers(state);
  if (!live.some((p) => p.name === me.name && p.gen === me.gen)) {
    return { reason: "not-live", message: `this peer is not a live member of the ring` };
  }
  const unacknowledged = [...new Set(state.entries.map((e) => e.owner))]
    .filter((name) =>
      state.entries.some((e) => e.owner === name && !reclaimAcknowledged(state, name, live, e.gen))
    )
    .map((name) => `${name} (waiting for ${reclaimWaitingOn(state, name).join(", ")})`);
  if (unacknowledged.length > 0) {
    return {
      reason: "unacknowledged",
      message: `the removal of ${unacknowledged.join(", ")} is not acknowledged by every live ` +
        `peer yet`,
    };
  }
  const differing = disagreeing(live);
  if (differing.length > 0) {
    return {
      reason: "disagreement",
      message: `the live peers do not agree yet on who is live (this peer sees ` +
        `${incarnations(live).join(", ")}; ${
          differing.map((p) => `${p.name} lists ${(p.known ?? []).join(", ") || "nobody"}`)
            .join("; ")
        })`,
    };
  }
  return undefined;
}

function incarnations(live: readonly PeerRecord[]): string[] {
  return live.map((p) => `${p.name}@${p.gen}`).sort(compare);
}

/** Live peers whose published list of live peers differs from `live`. */
function disagreeing(live: readonly PeerRecord[]): PeerRecord[] {
  const names = incarnations(live);
  return live.filter((p) =>
    p.known === undefined || p.known.length !== names.length ||
    !p.known.every((name, i) => name === names[i])
  );
}

/**
 * True when every live peer has acknowledged the removal of `name` (up to generation `gen`, by
 * default the highest removed). An entry of an older generation needs only that generation's
 * removal acknowledged: a later removal of a newer generation does not make it less dead.
 */
export function reclaimAcknowledged(
  state: RingState,
  name: string,
  live: readonly PeerRecord[] = livePeers(state),
  gen: number | undefined = state.tombstones[name],
): boolean {
  if (gen === undefined || (state.tombstones[name] ?? -1) < gen) return false;
  return live.every((p) => (p.seen[name] ?? -1) >= gen);
}

/** Live peers that have not yet acknowledged the tombstone of `name`. */
export function reclaimWaitingOn(state: RingState, name: string): string[] {
  const tomb = state.tombstones[name] ?? -1;
  return livePeers(state).filter((p) => (p.seen[name] ?? -1) < tomb).map((p) => p.name);
}
