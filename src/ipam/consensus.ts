/**
 * The first split of the range, as weave's paxos.go decides it, but without rounds: each
 * consensus peer votes once, for the N lowest names it knows, and the lowest name of a vote
 * creates the ring once every member's record carries the same vote. Seeds need no vote: each
 * seed builds the same ring. Pure: a ring state and this peer's configuration in, one step out;
 * ClusterIpam applies it.
 */
import type { IpamInit } from "./cluster_types.ts";
import { livePeers, peerRecord, type RingState } from "./ring.ts";

export type FirstSplitStep =
  /** Nothing to do now: a ring exists, or this peer waits for others. */
  | { kind: "wait" }
  /** Publish this vote in our record (once). */
  | { kind: "vote"; vote: string[] }
  /** Create the ring: an equal split among `members`, named `ringId`. */
  | { kind: "create"; members: Array<{ name: string; gen: number }>; ringId: string };

/** What this peer should do about the first split now. */
export function firstSplitStep(state: RingState, me: string, init: IpamInit): FirstSplitStep {
  if (state.ringId !== "") return { kind: "wait" };
  if (init.mode === "seed") {
    if (!init.seeds.includes(me)) return { kind: "wait" };
    return {
      kind: "create",
      members: init.seeds.map((name) => ({ name, gen: 0 })),
      ringId: `seed:${init.seeds.join(",")}`,
    };
  }
  if (init.mode !== "consensus") return { kind: "wait" };
  const vote = peerRecord(state, me)?.vote;
  if (!vote) {
    const candidates = consensusCandidates(state);
    if (candidates.length < init.peers || !candidates.includes(me)) return { kind: "wait" };
    return { kind: "vote", vote: candidates.slice(0, init.peers) };
  }
  if (vote[0] !== me) return { kind: "wait" };
  const records = vote.map((name) => peerRecord(state, name));
  if (!records.every((r) => r && sameVote(r.vote, vote))) return { kind: "wait" };
  return {
    kind: "create",
    members: records.map((r) => ({ name: r!.name, gen: r!.gen })),
    ringId: `consensus:${vote.join(",")}`,
  };
}

/** Where a consensus start-up stands, for people (status, diagnostics, NotReadyError). */
export interface ConsensusProgress {
  /** The quorum: N of `consensus=N`. */
  quorum: number;
  /** Live consensus peers this peer knows (itself included), sorted. */
  known: string[];
  /** Our vote, once cast. */
  vote: readonly string[] | undefined;
  /** Members of our vote whose records do not (yet) carry the same vote. */
  notAgreed: string[];
}

export function consensusProgress(state: RingState, me: string, quorum: number): ConsensusProgress {
  const vote = peerRecord(state, me)?.vote;
  return {
    quorum,
    known: consensusCandidates(state),
    vote,
    notAgreed: vote ? vote.filter((name) => !sameVote(peerRecord(state, name)?.vote, vote)) : [],
  };
}

/** The same words NotReadyError has always used (the lab tests and operators match on them). */
export function describeConsensus(progress: ConsensusProgress): string {
  const { quorum, known, vote, notAgreed } = progress;
  if (!vote) {
    return `waiting for consensus among ${quorum} peers on the first split: ${known.length} of ` +
      `${quorum} known (${known.join(", ")})`;
  }
  return `waiting for consensus on splitting among ${vote.join(", ")}: no agreement yet from ` +
    notAgreed.join(", ");
}

function consensusCandidates(state: RingState): string[] {
  return livePeers(state).filter((p) => p.mode === "consensus").map((p) => p.name).sort();
}

function sameVote(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((name, i) => name === b[i]);
}
