/**
 * Reclaim, as pure functions of the ring: which entries are orphans (their owner's generation
 * was removed), who inherits each (the owner of the nearest live entry before it), and whether
 * every live peer has acknowledged a removal so that the heir may claim. Only the heir writes
 * its claim; docs/ipam.md argues why that gives every orphan exactly one new owner.
 */
import { compare, isDead, livePeers, type PeerRecord, type RingState } from "./ring.ts";

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
  const entries = state.entries;
  const dead = entries.map((e) => isDead(state, e.owner, e.gen));
  if (!dead.some(Boolean)) return state;
  const anyLive = dead.some((d) => !d);
  // No live owner at all (everyone who owned space is gone): nothing anchors an heir the way
  // the previous entry's owner does, and two peers cut off from each other would each pick
  // themselves. So only a peer told to adopt (an operator, on one node) claims, and only when
  // every live peer it knows publishes the same set of live peers.
  const liveNames = live.map((p) => `${p.name}@${p.gen}`).sort(compare);
  const agreed = live.every((p) =>
    p.known !== undefined && p.known.length === liveNames.length &&
    p.known.every((name, i) => name === liveNames[i])
  );
  const fallback = agreed && options.adopt ? me.name : undefined;
  let changed = false;
  const result = entries.map((entry, i) => {
    if (!dead[i]) return entry;
    if (!reclaimAcknowledged(state, entry.owner, live)) return entry;
    let heir = fallback;
    if (anyLive) {
      for (let k = 1; k <= entries.length; k++) {
        const j = (i - k + entries.length) % entries.length;
        if (!dead[j]) {
          heir = entries[j].owner;
          break;
        }
      }
    }
    if (heir !== me.name) return entry;
    changed = true;
    return { token: entry.token, owner: me.name, gen: me.gen, version: entry.version + 1 };
  });
  return changed ? { ...state, entries: result } : state;
}

/** True when every live peer has published that it merged the tombstone of `name`. */
export function reclaimAcknowledged(
  state: RingState,
  name: string,
  live: PeerRecord[] = livePeers(state),
): boolean {
  const tomb = state.tombstones[name];
  if (tomb === undefined) return false;
  return live.every((p) => (p.seen[name] ?? -1) >= tomb);
}

/** Live peers that have not yet acknowledged the tombstone of `name`. */
export function reclaimWaitingOn(state: RingState, name: string): string[] {
  const tomb = state.tombstones[name] ?? -1;
  return livePeers(state).filter((p) => (p.seen[name] ?? -1) < tomb).map((p) => p.name);
}
