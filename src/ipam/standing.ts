/**
 * This peer's standing in the ring, as pure functions: whether it must start clean (it was
 * removed while away, an earlier incarnation wrote its record, or the ring it allocated from was
 * replaced), the record it publishes, and why it may not allocate yet.
 */
import { type Cidr, formatCidr } from "../net/cidr.ts";
import type { IpamInit } from "./cluster_types.ts";
import { consensusProgress, describeConsensus } from "./consensus.ts";
import { reclaimAcknowledged } from "./reclaim.ts";
import {
  type IpamMode,
  livePeers,
  type PeerRecord,
  peerRecord,
  type RingState,
  sortKeys,
  withPeer,
  withTombstone,
} from "./ring.ts";

/**
 * Why this peer must drop its allocations and start again as a new generation, or undefined.
 * `impostor`: the merge just brought a newer version of our own record at our generation, which
 * only an earlier incarnation of us (a wiped disk) can have written.
 */
export function startCleanReason(
  state: RingState,
  options: { me: string; gen: number; ringId: string; impostor: boolean },
): { gen: number; why: string } | undefined {
  const { me, gen, ringId, impostor } = options;
  const tomb = state.tombstones[me];
  const recorded = peerRecord(state, me);
  const removed = removal(state, { me, gen }) === "effective";
  const newer = impostor || (recorded !== undefined && recorded.gen > gen);
  const replaced = ringId !== "" && state.ringId !== ringId;
  if (!removed && !newer && !replaced) return undefined;
  const why = removed
    ? "this peer was removed while away"
    : newer
    ? "another instance of this peer (a wiped disk?) held this generation"
    : "the ring was replaced by another initial split";
  return { gen: Math.max(tomb ?? -1, recorded?.gen ?? -1, gen) + 1, why };
}

/**
 * Whether this peer's current generation is removed: not at all, `effective` (it removed
 * itself, or every other live peer acknowledged it: the others may now reuse its space), or
 * `contested` (another peer removed it, and some live peer has not acknowledged that yet: a
 * peer acknowledges only a removal of a peer it cannot reach, so while this peer is up and
 * reachable the removal never takes effect and it keeps serving from its ranges).
 */
export function removal(
  state: RingState,
  options: { me: string; gen: number },
): "none" | "effective" | "contested" {
  const { me, gen } = options;
  const tomb = state.tombstones[me];
  if (tomb === undefined || tomb < gen) return "none";
  const self = state.proofs[me]?.by === me;
  // Someone claimed our space: the removal took effect where it was claimed, whoever has
  // acknowledged it since (a peer that joined later, and cannot, as it reaches us).
  const claimed = state.entries.some((entry) => {
    const deeds = [...entry.history, entry];
    return deeds.some((d, i) =>
      (d.kind === "claim" || d.kind === "adopt") && deeds[i - 1]?.owner === me &&
      deeds[i - 1]?.gen === gen
    );
  });
  return self || claimed || reclaimAcknowledged(state, me) ? "effective" : "contested";
}

/**
 * The tombstones this peer acknowledges now (its record's `seen`): the ones it acknowledged
 * before, and any whose peer removed itself, moved on to a newer generation, or cannot be
 * reached (`canAcknowledge`: unreachable for the removal grace period). So a peer that is up
 * and reachable is never acknowledged as removed, whoever issued its tombstone.
 */
export function acknowledgedRemovals(
  state: RingState,
  options: {
    me: string;
    previous: Readonly<Record<string, number>>;
    canAcknowledge: (name: string) => boolean;
  },
): Record<string, number> {
  const seen: Record<string, number> = { ...options.previous };
  for (const [name, gen] of Object.entries(state.tombstones)) {
    if ((seen[name] ?? -1) >= gen) continue;
    const record = peerRecord(state, name);
    if (
      name === options.me || state.proofs[name]?.by === name ||
      (record !== undefined && record.gen > gen) || options.canAcknowledge(name)
    ) seen[name] = gen;
  }
  return sortKeys(seen);
}

/**
 * The state after starting clean as generation `gen`: whatever older generations of us still
 * own goes back through the normal reclaim, and our record starts over.
 */
export function startedClean(
  state: RingState,
  options: { me: string; gen: number; mode: IpamMode },
): RingState {
  const { me, gen, mode } = options;
  const tombstoned = withTombstone(state, me, { gen: gen - 1, by: me });
  return withPeer(tombstoned, {
    name: me,
    gen,
    version: 1,
    mode,
    free: 0,
    used: 0,
    seen: { ...tombstoned.tombstones },
    sig: "",
  });
}

/** Our record as the state has it, or the one we would start with (version 0). */
export function ownRecord(
  state: RingState,
  options: { me: string; gen: number; mode: IpamMode },
): PeerRecord {
  return peerRecord(state, options.me) ?? {
    name: options.me,
    gen: options.gen,
    version: 0,
    mode: options.mode,
    free: 0,
    used: 0,
    seen: {},
  };
}

/**
 * The record we should publish now (free/used, the tombstones we have merged, the live peers we
 * know), or undefined when the published one is still true.
 */
export function refreshedRecord(
  state: RingState,
  options: {
    me: string;
    gen: number;
    mode: IpamMode;
    free: number;
    used: number;
    canAcknowledge: (name: string) => boolean;
  },
): PeerRecord | undefined {
  const { gen, mode, free, used } = options;
  const mine = ownRecord(state, options);
  const seen = acknowledgedRemovals(state, {
    me: options.me,
    previous: mine.gen === gen ? mine.seen : {},
    canAcknowledge: options.canAcknowledge,
  });
  const known = livePeers(withPeer(state, { ...mine, gen }))
    .map((p) => `${p.name}@${p.gen}`).sort();
  if (
    mine.version > 0 && mine.gen === gen && mine.free === free && mine.used === used &&
    JSON.stringify(mine.seen) === JSON.stringify(seen) && mine.mode === mode &&
    JSON.stringify(mine.known) === JSON.stringify(known)
  ) return undefined;
  return { ...mine, gen, mode, free, used, seen, known, version: mine.version + 1, sig: "" };
}

/** What this peer knows of itself and the others now: what readiness, status and diagnostics read. */
export interface PeerView {
  state: RingState;
  me: string;
  gen: number;
  init: IpamInit;
  cluster: Cidr;
  /** The peers the mesh reaches now. */
  readonly reachable: ReadonlySet<string>;
  /** A restarted peer must hear from another live peer first. */
  mustHear: boolean;
  /** How long we have been cut off from most peers, when we are. */
  cutOffMs: number | undefined;
  reclaimAfterMs: number | undefined;
}

/** Why allocation cannot proceed, in words for people, or undefined when it can. */
export function notReadyReason(input: PeerView): string | undefined {
  const { state, me, init, cluster, cutOffMs, reclaimAfterMs } = input;
  if (state.ringId === "") {
    if (init.mode === "consensus") {
      return describeConsensus(consensusProgress(state, me, init.peers));
    }
    return `waiting for the initial split of ${formatCidr(cluster)} from other peers ` +
      `(this peer is ${init.mode === "seed" ? "not among the seeds" : "an observer"}); ` +
      `known peers: ${state.peers.map((p) => p.name).join(", ") || "none"}`;
  }
  if (input.mustHear) {
    const others = livePeers(state).filter((p) => p.name !== me).map((p) => p.name);
    return `waiting to hear from another peer (${others.join(", ")}) to check this peer was ` +
      `not removed while it was away`;
  }
  if (cutOffMs !== undefined && reclaimAfterMs !== undefined && cutOffMs >= reclaimAfterMs / 2) {
    return `cut off from most peers for ${Math.round(cutOffMs / 1000)}s while automatic ` +
      `reclaim is on; the others may reclaim this peer's space`;
  }
  return undefined;
}
