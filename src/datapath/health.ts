/**
 * Per-peer path choice from heartbeat evidence. Pure: the clock is passed in, so the switching
 * rules (fast path first, sleeve within seconds of the fast path going quiet, back only after
 * the fast path has answered steadily for a while) are tested without sleeping.
 */
import type { DatapathMode, PathKind } from "./types.ts";

export interface HealthTimings {
  /** A path with no answer for this long is down. */
  deadAfterMs: number;
  /** A path must answer for this long after being down before traffic moves back to it. */
  settleMs: number;
}

export const DEFAULT_TIMINGS: HealthTimings = { deadAfterMs: 2500, settleMs: 1500 };

/** Answers on one path: when the current unbroken run of answers started, and the last one. */
export class PathHealth {
  #lastAnswer = -Infinity;
  #streakStart = -Infinity;
  #timings: HealthTimings;

  constructor(timings: HealthTimings = DEFAULT_TIMINGS) {
    this.#timings = timings;
  }

  #streaks = 0;

  answered(now: number): void {
    if (now - this.#lastAnswer >= this.#timings.deadAfterMs) {
      this.#streakStart = now;
      this.#streaks++;
    }
    this.#lastAnswer = now;
  }

  /** True when the path answered before, went silent, and answers again. */
  recovering(): boolean {
    return this.#streaks > 1;
  }

  /** True once the path has answered at all. */
  everAnswered(): boolean {
    return this.#streaks > 0;
  }

  alive(now: number): boolean {
    return now - this.#lastAnswer < this.#timings.deadAfterMs;
  }

  /** Alive and has been for at least `settleMs`. */
  settled(now: number): boolean {
    return this.alive(now) && now - this.#streakStart >= this.#timings.settleMs;
  }

  /** Milliseconds since the last answer (Infinity when never answered). */
  silentFor(now: number): number {
    return now - this.#lastAnswer;
  }
}

export interface PathInputs {
  mode: DatapathMode;
  /** The pair must be encrypted (a session key exists, or the node requires encryption). */
  mustEncrypt: boolean;
  /** A session key exists for the direct hop. */
  hasKey: boolean;
  /** The path currently in use, for hysteresis. */
  current: PathKind;
  fastdp: PathHealth;
  sleeve: PathHealth;
  relay: PathHealth;
  /** The mesh's next hop when it is not the peer itself. */
  relayVia?: string;
  /**
   * Until then, a peer that is down and whose fast path has never answered waits for it rather
   * than taking the sleeve: both are probed at once, the sleeve's answer often comes first, and
   * a node whose peers all end up on VXLAN should not start the userspace path's threads for a
   * moment's detour.
   */
  fastdpGraceUntil?: number;
}

export interface PathChoice {
  path: PathKind;
  encrypted: boolean;
  healthy: boolean;
  reason: string;
}

function seconds(ms: number): string {
  return Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)}s` : "ever";
}

/** Picks the path for one peer at time `now`. */
export function choosePath(now: number, inputs: PathInputs): PathChoice {
  const { mode, mustEncrypt, hasKey, fastdp, sleeve, relay, relayVia } = inputs;
  const fastdpAllowed = mode !== "sleeve" && !mustEncrypt;
  const sleeveAllowed = mode !== "fastdp" && (!mustEncrypt || hasKey);
  const relayAllowed = mode !== "fastdp" && relayVia !== undefined;
  // Staying on (or starting with) the fast path needs only liveness; moving traffic back to it
  // after it failed needs a settled streak, so a flapping port does not flap the traffic.
  const fromOtherPath = inputs.current === "sleeve" || inputs.current === "relay";
  const fastdpUsable = fastdpAllowed &&
    (fromOtherPath && fastdp.recovering() ? fastdp.settled(now) : fastdp.alive(now));
  if (fastdpUsable) {
    return {
      path: "fastdp",
      encrypted: false,
      healthy: true,
      reason: "fastdp heartbeats answered",
    };
  }
  if (
    fastdpAllowed && inputs.current === "down" && !fastdp.everAnswered() &&
    now < (inputs.fastdpGraceUntil ?? -Infinity)
  ) {
    return {
      path: "down",
      encrypted: false,
      healthy: false,
      reason: "waiting for the first fastdp answer",
    };
  }
  let why: string;
  if (mode === "sleeve") why = "sleeve forced by mode";
  else if (mustEncrypt) why = "encryption required and VXLAN is not encrypted";
  else if (fastdp.alive(now)) why = "fastdp answering again, waiting for it to settle";
  else why = `fastdp silent for ${seconds(fastdp.silentFor(now))}`;
  if (mustEncrypt && !hasKey) why += "; no session key for a direct encrypted hop";
  if (sleeveAllowed && sleeve.alive(now)) {
    return { path: "sleeve", encrypted: mustEncrypt, healthy: true, reason: why };
  }
  if (mode !== "fastdp" && sleeveAllowed) {
    why += `; sleeve silent for ${seconds(sleeve.silentFor(now))}`;
  }
  if (relayAllowed && relay.alive(now)) {
    return {
      path: "relay",
      encrypted: mustEncrypt,
      healthy: true,
      reason: `${why}; relayed via ${relayVia}`,
    };
  }
  if (relayAllowed) why += `; relay via ${relayVia} silent`;
  return { path: "down", encrypted: mustEncrypt, healthy: false, reason: why };
}
