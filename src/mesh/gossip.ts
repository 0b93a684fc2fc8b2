/**
 * Spreading records: pushes along the broadcast tree, batched; anti-entropy by digest and
 * summary. The topology it keeps is the mesh's view of everyone. It knows nothing of
 * connections beyond the neighbour sessions the mesh hands it, nor of routes beyond the table
 * the mesh last computed, so it can be read (and changed) apart from dialling and routing.
 * Only news is checked (`authentic`): a signature is verified once per new version, never for
 * the copies and echoes that make up most of the traffic.
 */
import type { Clock, TimerId } from "./clock.ts";
import { type DigestFrame, encodeGossip, type GossipFrame, type SummaryFrame } from "./protocol.ts";
import { compareRecords, type PeerRecord } from "./record.ts";
import type { RouteTable } from "./routes.ts";
import type { Session } from "./session.ts";
import { type SummaryEntry, Topology } from "./topology.ts";

export interface GossipOptions {
  /** This peer's name: records of it go to `ownRecord` instead of the topology. */
  name: string;
  clock: Clock;
  batchMs: number;
  gossipIntervalMs: number;
  maxFrameBytes: number;
  /** Connected peers and their sessions. */
  neighbours(): ReadonlyMap<string, Session>;
  /** The routes last computed (not refreshed: a push goes out on the view it has). */
  routes(): RouteTable;
  /** Set once the mesh stops: no new timers. */
  stopped(): boolean;
  /** The graph may have changed (a new record, or one with other connections). */
  graphChanged(): void;
  /** A newer copy of a known peer's record was stored. */
  recordChanged(record: PeerRecord): void;
  /** A copy of this peer's own record arrived from neighbour `from`. */
  ownRecord(record: PeerRecord, from: string): void;
  /** Whether a newer record may be stored: signed by the key bound to its name. */
  authentic(record: PeerRecord, from: string): boolean;
}

export class Gossip {
  readonly topology = new Topology();
  #options: GossipOptions;
  /** Record names to push, each with the neighbours known to hold it already (not echoed). */
  #outbox = new Map<string, Set<string>>();
  #flushTimer?: TimerId;
  #lastSummary = new WeakMap<Session, number>();
  /** A neighbour's digest differed from ours since the last round. */
  #disagreed = false;
  #lastRoundDigest = "";

  constructor(options: GossipOptions) {
    this.#options = options;
  }

  stop(): void {
    if (this.#flushTimer !== undefined) this.#options.clock.clearTimeout(this.#flushTimer);
  }

  /** Installs a record (already known to be newer) and queues it for pushing. */
  store(record: PeerRecord, from: string | undefined): void {
    const { clock, batchMs } = this.#options;
    const previous = this.topology.store(record, { now: clock.now() });
    if (!previous || !sameConnections(previous, record)) this.#options.graphChanged();
    this.#outbox.set(record.name, new Set(from === undefined ? [] : [from]));
    if (this.#flushTimer === undefined && !this.#options.stopped()) {
      this.#flushTimer = clock.setTimeout(() => this.#flush(), batchMs);
    }
    if (previous && record.name !== this.#options.name) this.#options.recordChanged(record);
  }

  receiveGossip(session: Session, frame: GossipFrame): void {
    const from = session.remote!.name;
    for (const record of frame.r) this.#merge(record, from);
  }

  /**
   * How long until the next anti-entropy round, jittered +-25%. While the topology is still
   * changing here, or a neighbour disagreed, rounds come five times as often, so a gap left by
   * views that disagreed is repaired in about a second; a quiet mesh stays slow.
   */
  nextRoundDelay(random: () => number): number {
    const digest = this.topology.digest();
    const busy = digest !== this.#lastRoundDigest || this.#disagreed;
    this.#lastRoundDigest = digest;
    this.#disagreed = false;
    const period = this.#options.gossipIntervalMs / (busy ? 5 : 1);
    return Math.round(period * (0.75 + 0.5 * random()));
  }

  /** Opens anti-entropy on a link: our digest, answered with a summary if theirs differs. */
  sendDigest(session: Session): void {
    session.send({ t: "digest", h: this.topology.digest() });
  }

  receiveDigest(session: Session, frame: DigestFrame): void {
    if (frame.h === this.topology.digest()) return;
    this.#disagreed = true;
    this.#sendSummary(session, false);
  }

  receiveSummary(session: Session, frame: SummaryFrame): void {
    const theirs = new Map<string, [string, number]>();
    for (const [name, incarnation, version] of frame.e) theirs.set(name, [incarnation, version]);
    const { push, theyHaveNewer } = this.topology.compare(theirs);
    for (const text of this.#frames(push)) session.sendText(text);
    if (theyHaveNewer && !frame.reply) this.#sendSummary(session, true);
  }

  #merge(record: PeerRecord, from: string): void {
    if (record.name === this.#options.name) {
      this.#options.ownRecord(record, from);
      return;
    }
    if (!this.topology.isNews(record)) {
      // The same news from a second neighbour while it waits to go out: spare that one the echo.
      const current = this.topology.get(record.name);
      if (current && compareRecords(record, current) === 0) {
        this.#outbox.get(record.name)?.add(from);
      }
      return;
    }
    if (this.#options.authentic(record, from)) this.store(record, from);
  }

  #sendSummary(session: Session, reply: boolean): void {
    // At most one unsolicited summary per link per fast round: digests cross in flight.
    const now = this.#options.clock.now();
    const last = this.#lastSummary.get(session);
    if (!reply && last !== undefined && now - last < this.#options.gossipIntervalMs / 10) return;
    this.#lastSummary.set(session, now);
    const entries: SummaryEntry[] = this.topology.summary();
    session.send({ t: "summary", reply, e: entries });
  }

  /**
   * Pushes queued records along this peer's view of the broadcast tree, plus to neighbours the
   * view does not place yet (a link so new that the other end's record has not arrived). Views
   * that disagree can leave a gap; the digest exchange repairs it within a round.
   */
  #flush(): void {
    this.#flushTimer = undefined;
    if (this.#outbox.size === 0) return;
    const { treeNeighbors: tree, reachable } = this.#options.routes();
    const names = [...this.#outbox.keys()];
    // Most neighbours get the same subset: encode each distinct subset once.
    const frames = new Map<string, string[]>();
    for (const [peer, session] of this.#options.neighbours()) {
      const picked: number[] = [];
      if (!tree.has(peer) && reachable.has(peer)) continue;
      names.forEach((name, i) => {
        if (!this.#outbox.get(name)!.has(peer)) picked.push(i);
      });
      if (picked.length === 0) continue;
      const key = picked.length === names.length ? "all" : picked.join(",");
      let list = frames.get(key);
      if (!list) {
        const encoded = picked.map((i) => this.topology.meta(names[i])?.encoded)
          .filter((e): e is string => e !== undefined);
        frames.set(key, list = this.#frames(encoded));
      }
      for (const frame of list) session.sendText(frame);
    }
    this.#outbox.clear();
  }

  /** Encodes records into gossip frames that stay well under the frame limit. */
  #frames(encoded: string[]): string[] {
    const limit = Math.max(1024, this.#options.maxFrameBytes >> 1);
    const frames: string[] = [];
    let batch: string[] = [];
    let size = 0;
    for (const e of encoded) {
      if (batch.length > 0 && size + e.length > limit) {
        frames.push(encodeGossip(batch));
        batch = [];
        size = 0;
      }
      batch.push(e);
      size += e.length + 1;
    }
    if (batch.length > 0) frames.push(encodeGossip(batch));
    return frames;
  }
}

function sameConnections(a: PeerRecord, b: PeerRecord): boolean {
  if (a.connections.length !== b.connections.length) return false;
  return a.connections.every((c, i) => c.peer === b.connections[i].peer);
}
