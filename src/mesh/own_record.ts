/**
 * This peer's own record: the only record it writes. Changes (a blob set by another module, a
 * connection up or down) are coalesced for `batchMs` and published as one new version. A newer
 * copy of it arriving from elsewhere means a previous life of this peer (or a clock that
 * stepped back) wrote it; it is overruled by publishing above it. A previous life writes nothing
 * new, so being overruled in turn means another live peer has our name: after the second
 * overrule the record is `contested` and left alone, so two such peers do not flap forever.
 */
import type { Clock, TimerId } from "./clock.ts";
import { newIncarnation } from "./identity.ts";
import { compareRecords, type ConnectionInfo, type PeerRecord } from "./record.ts";

export interface OwnRecordOptions {
  name: string;
  nickname: string;
  incarnation: string;
  clock: Clock;
  batchMs: number;
  /** This peer's connections as they are now. */
  connections(): ConnectionInfo[];
  /** Signs a new version with this peer's key. */
  sign(record: Omit<PeerRecord, "key" | "sig">): PeerRecord;
  /** Installs and spreads a new version. */
  publish(record: PeerRecord): void;
  /** The copy of our record currently held. */
  current(): PeerRecord | undefined;
  stopped(): boolean;
  log(message: string): void;
  /** Another live peer keeps publishing under our name (see the design notes). */
  contested(record: PeerRecord): void;
}

/** Overrules per life: the first for a previous life, the second already means a twin. */
const MAX_OVERRULES = 2;

export class OwnRecord {
  #options: OwnRecordOptions;
  #incarnation: string;
  #version = 0;
  #data: Record<string, string> = {};
  #dirty = false;
  #timer?: TimerId;
  #overrules = 0;

  constructor(options: OwnRecordOptions) {
    this.#options = options;
    this.#incarnation = options.incarnation;
  }

  get incarnation(): string {
    return this.#incarnation;
  }

  stop(): void {
    if (this.#timer !== undefined) this.#options.clock.clearTimeout(this.#timer);
  }

  setData(key: string, blob: string): void {
    if (this.#data[key] === blob) return;
    this.#data = { ...this.#data, [key]: blob };
    this.markDirty();
  }

  deleteData(key: string): void {
    if (!(key in this.#data)) return;
    const { [key]: _, ...rest } = this.#data;
    this.#data = rest;
    this.markDirty();
  }

  /** Publishes a new version after `batchMs`, together with whatever else changes meanwhile. */
  markDirty(): void {
    if (this.#dirty || this.#options.stopped()) return;
    this.#dirty = true;
    this.#timer = this.#options.clock.setTimeout(() => {
      this.#dirty = false;
      this.publish();
    }, this.#options.batchMs);
  }

  publish(): void {
    const connections = this.#options.connections()
      .sort((a, b) => (a.peer < b.peer ? -1 : 1));
    this.#version++;
    this.#options.publish(this.#options.sign({
      name: this.#options.name,
      nickname: this.#options.nickname,
      incarnation: this.#incarnation,
      version: this.#version,
      connections,
      data: this.#data,
    }));
  }

  /** A copy of our record from elsewhere: if it is newer, publish above it. */
  received(record: PeerRecord): void {
    const current = this.#options.current();
    if (current && compareRecords(record, current) <= 0) return;
    if (this.#overrules >= MAX_OVERRULES) {
      this.#options.contested(record);
      return;
    }
    if (++this.#overrules === MAX_OVERRULES) this.#options.contested(record);
    this.#options.log(
      `overruling a newer record of our own name (${record.incarnation}/${record.version})`,
    );
    if (record.incarnation > this.#incarnation) {
      this.#incarnation = newIncarnation(this.#options.clock.now(), { after: record.incarnation });
    } else {
      this.#version = record.version;
    }
    this.publish();
  }
}
