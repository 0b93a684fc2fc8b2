/**
 * What this peer knows of everyone: the newest record of each peer, its encoding (kept so a
 * record is serialised once however many neighbours it goes to), local bookkeeping (reachability,
 * when last seen), tombstones of peers aged out, and the running digest. No I/O and no clock of
 * its own: the mesh passes `now` in, and tests drive it directly.
 */
import { compareRecords, Digest, type PeerRecord } from "./record.ts";
import type { PeerStatus } from "./types.ts";

export interface PeerMeta {
  lastSeen: number;
  reachable: boolean;
  unreachableSince?: number;
  encoded: string;
}

/** `(name, incarnation, version)`: what anti-entropy summaries list. */
export type SummaryEntry = [string, string, number];

export class Topology {
  #records = new Map<string, PeerRecord>();
  #meta = new Map<string, PeerMeta>();
  #tombstones = new Map<string, { record: PeerRecord; until: number }>();
  #digest = new Digest();

  get records(): ReadonlyMap<string, PeerRecord> {
    return this.#records;
  }

  get(name: string): PeerRecord | undefined {
    return this.#records.get(name);
  }

  meta(name: string): PeerMeta | undefined {
    return this.#meta.get(name);
  }

  metas(): IterableIterator<[string, PeerMeta]> {
    return this.#meta.entries();
  }

  digest(): string {
    return this.#digest.toString();
  }

  /** A record with what this peer knows of it, as the status API shows it. */
  status(record: PeerRecord, options: { self: string; now: number }): PeerStatus {
    const meta = this.#meta.get(record.name);
    const self = record.name === options.self;
    return {
      name: record.name,
      nickname: record.nickname,
      incarnation: record.incarnation,
      version: record.version,
      self,
      reachable: self || (meta?.reachable ?? false),
      lastSeen: self ? options.now : meta?.lastSeen ?? 0,
      connections: [...record.connections],
      data: { ...record.data },
    };
  }

  /** Whether a copy is newer than both what is held and any tombstone of that peer. */
  isNews(record: PeerRecord): boolean {
    const current = this.#records.get(record.name);
    if (current && compareRecords(record, current) <= 0) return false;
    const tomb = this.#tombstones.get(record.name);
    return !tomb || compareRecords(record, tomb.record) > 0;
  }

  /** Installs a record (the caller checked it is news); returns the one it replaced. */
  store(record: PeerRecord, options: { now: number }): PeerRecord | undefined {
    const previous = this.#records.get(record.name);
    if (previous) this.#digest.remove(previous);
    this.#records.set(record.name, record);
    this.#digest.add(record);
    this.#tombstones.delete(record.name);
    const encoded = JSON.stringify(record);
    const meta = this.#meta.get(record.name);
    if (meta) {
      meta.lastSeen = options.now;
      meta.encoded = encoded;
    } else {
      // Unreachable until routes say otherwise, so a peer never reached still ages out.
      const now = options.now;
      this.#meta.set(record.name, {
        lastSeen: now,
        reachable: false,
        unreachableSince: now,
        encoded,
      });
    }
    return previous;
  }

  /** Forgets a peer, keeping a tombstone until `until` so stale copies do not resurrect it. */
  remove(name: string, options: { until: number }): PeerRecord | undefined {
    const record = this.#records.get(name);
    if (!record) return undefined;
    this.#records.delete(name);
    this.#meta.delete(name);
    this.#digest.remove(record);
    this.#tombstones.set(name, { record, until: options.until });
    return record;
  }

  /**
   * Removes (and tombstones) peers unreachable for `ageOutMs`, except `self` and peers still
   * `connected`; returns their last records. Expired tombstones go too.
   */
  ageOut(
    now: number,
    options: { self: string; ageOutMs: number; connected(peer: string): boolean },
  ): PeerRecord[] {
    this.expireTombstones(now);
    const removed: PeerRecord[] = [];
    for (const [name, meta] of [...this.#meta]) {
      if (name === options.self || meta.reachable || options.connected(name)) continue;
      if (now - (meta.unreachableSince ?? now) < options.ageOutMs) continue;
      removed.push(this.remove(name, { until: now + options.ageOutMs })!);
    }
    return removed;
  }

  expireTombstones(now: number): void {
    for (const [name, tomb] of this.#tombstones) {
      if (tomb.until <= now) this.#tombstones.delete(name);
    }
  }

  summary(): SummaryEntry[] {
    const entries: SummaryEntry[] = [];
    for (const r of this.#records.values()) entries.push([r.name, r.incarnation, r.version]);
    return entries;
  }

  /**
   * Compares a neighbour's summary with what is held: the encodings of records it lacks or holds
   * older, and whether it holds anything newer (then it should be sent our summary in turn).
   */
  compare(theirs: ReadonlyMap<string, [string, number]>): {
    push: string[];
    theyHaveNewer: boolean;
  } {
    const push: string[] = [];
    let theyHaveNewer = false;
    for (const record of this.#records.values()) {
      const other = theirs.get(record.name);
      const order = other === undefined
        ? 1
        : compareRecords(record, { ...record, incarnation: other[0], version: other[1] });
      if (order > 0) push.push(this.#meta.get(record.name)!.encoded);
      else if (order < 0) theyHaveNewer = true;
    }
    for (const [name, [incarnation, version]] of theirs) {
      if (this.#records.has(name)) continue;
      const tomb = this.#tombstones.get(name);
      if (!tomb || compareRecords({ ...tomb.record, incarnation, version }, tomb.record) > 0) {
        theyHaveNewer = true;
      }
    }
    return { push, theyHaveNewer };
  }
}
