/**
 * This peer's copy of the ring, and the only code that changes it. Every change, whether merged
 * from a peer or written by us, runs the same steps (start clean if we were removed; vote and
 * create the first split; claim what we inherit; publish our record) and is persisted before
 * ClusterIpam tells anyone about it. A change is one transition: if the store cannot write it
 * (a full disk), the state, the generation and the allocations are as before and the error
 * propagates; its events are told only once it is on disk.
 *
 * What this peer writes it signs (authority.ts: signOwn, as the last step of a transition);
 * what it merges it checks first (verifyIncoming), keeping what it could not check apart for
 * the diagnostics. A removal of this peer by another peer takes effect only once every other
 * live peer acknowledged it; until then this peer contests it and keeps serving (standing.ts).
 */
import { type AddressRange, type Cidr, cidrToRange, formatRange, parseCidr } from "../net/cidr.ts";
import type { AllocationBook } from "./book.ts";
import type { IpamEvent, IpamInit } from "./cluster_types.ts";
import { firstSplitStep } from "./consensus.ts";
import { CannotAdoptError } from "./errors.ts";
import { type PeerSigner, signOwn, verifyIncoming } from "./authority.ts";
import { adoptionBlocker, claimOrphans } from "./reclaim.ts";
import {
  emptyRing,
  entryRanges,
  isDead,
  livePeers,
  mergeRings,
  ownedBy,
  ownedSize,
  type PeerRecord,
  peerRecord,
  type RingState,
  withPeer,
  withTombstone,
} from "./ring.ts";
import { decodeRing, encodeRing } from "./ring_codec.ts";
import { giveRange, initialRing } from "./ring_writes.ts";
import { ownRecord, refreshedRecord, removal, startCleanReason, startedClean } from "./standing.ts";
import type { Store } from "./store.ts";

const KEY_RING = "ring";
const KEY_GEN = "gen";

/**
 * What became of a received state: merged (`changed`: the steps after the merge changed it
 * further, ours to gossip), or refused because its sender is a removed peer that does not know
 * it (`removedSender`; it should be told). Refusals of parts are logged here.
 */
export type Received = { changed: boolean; removedSender?: boolean };

export interface LocalRingOptions {
  store: Store;
  /** This peer's allocations: counted in our record, dropped when we start clean. */
  book: AllocationBook;
  cluster: Cidr;
  me: string;
  init: IpamInit;
  onEvent: (event: IpamEvent) => void;
  signer: PeerSigner;
  now: () => number;
  /** Whether peer `name` has been out of reach long enough to acknowledge its removal. */
  canAcknowledge: (name: string) => boolean;
}

/** What this peer could not take in from others: for the diagnostics. */
export interface Integrity {
  /** A peer sent a state of another ring (a second first split). */
  foreignRing?: { ringId: string; from: string };
  /** Tokens with newer deeds we could not check (we missed too many versions), and from whom. */
  unverified: Map<number, { version: number; from: string }>;
  /** Tokens for which one writer signed two different deeds of one version. */
  conflicts: Map<number, string>;
  /** Writes refused as forged or not allowed: how many, the last in words, and when. */
  suspicious: { count: number; last: string; at: number } | undefined;
}

export class LocalRing {
  #store: Store;
  #signer: PeerSigner;
  #now: () => number;
  #canAcknowledge: (name: string) => boolean;
  /** Signatures found good already. */
  #verified = new Set<string>();
  #integrity: Integrity = { unverified: new Map(), conflicts: new Map(), suspicious: undefined };
  #book: AllocationBook;
  #me: string;
  #init: IpamInit;
  #onEvent: (event: IpamEvent) => void;
  #state: RingState;
  #gen: number;
  /** The ring we allocate from; another one replacing it makes us start clean. */
  #ringId: string;
  /** Set when our copy may be stale (a restart, a seed ring we made ourselves). */
  #mustHear: boolean;
  /** Set during adopt(): claim space that no live peer owns. */
  #adopt = false;
  /** The transition running now: what it will tell and whether it drops our allocations. */
  #pending: { events: IpamEvent[]; dropAllocations: boolean } | undefined;
  /** What the store holds (the ring and generation as written), to skip writes of no news. */
  #persisted: { state: RingState; gen: number; ring: string };

  private constructor(options: LocalRingOptions, state: RingState, gen: number) {
    this.#store = options.store;
    this.#signer = options.signer;
    this.#now = options.now;
    this.#canAcknowledge = options.canAcknowledge;
    this.#book = options.book;
    this.#me = options.me;
    this.#init = options.init;
    this.#onEvent = options.onEvent;
    this.#state = state;
    this.#gen = gen;
    this.#ringId = state.ringId;
    // A restart with a ring that has other live members must hear from one of them before
    // allocating: we may have been removed while away.
    this.#mustHear = state.ringId !== "" && livePeers(state).some((p) => p.name !== options.me);
    this.#persisted = { state: this.#state, gen: this.#gen, ring: encodeRing(this.#state) };
  }

  /** The ring and generation the store holds (an empty ring the first time). */
  static load(options: LocalRingOptions): LocalRing {
    const stored = options.store.getValue(KEY_RING);
    const state = stored === undefined || stored === "null"
      ? emptyRing(options.cluster)
      : decodeRing(stored);
    const gen = Number(options.store.getValue(KEY_GEN) ?? "0");
    return new LocalRing(options, state, gen);
  }

  get state(): RingState {
    return this.#state;
  }

  get gen(): number {
    return this.#gen;
  }

  get mustHear(): boolean {
    return this.#mustHear;
  }

  /** Another peer removed this peer, and not every live peer has acknowledged it yet. */
  get contested(): boolean {
    return removal(this.#state, { me: this.#me, gen: this.#gen }) === "contested";
  }

  get integrity(): Integrity {
    return this.#integrity;
  }

  /** The ranges this peer owns at its current generation (also while it contests a removal). */
  owned(): AddressRange[] {
    return ownedBy(this.#state, this.#me, this.#gen, { ignoreTombstone: this.contested });
  }

  ownRecord(): PeerRecord {
    return ownRecord(this.#state, { me: this.#me, gen: this.#gen, mode: this.#init.mode });
  }

  /**
   * Takes in a state gossiped by `from`: bad input is refused with the reason, as is the state
   * of a removed peer that does not know it was removed (it may carry donations made after the
   * reclaim started; a peer that left knows, and is accepted). Otherwise merges it; `changed`
   * says whether the steps that follow changed the merged state further (ours to gossip).
   */
  receive(from: string, text: string): Received {
    let incoming: RingState;
    try {
      incoming = decodeRing(text, this.#state);
      if (incoming.range !== this.#state.range) {
        throw new Error(`its range ${incoming.range} is not ours (${this.#state.range})`);
      }
    } catch (error) {
      this.#event("ignored", `Ignored IPAM state from "${from}": ${(error as Error).message}`);
      return { changed: false };
    }
    const sender = peerRecord(incoming, from);
    if (sender && isDead(this.#state, from, sender.gen) && !isDead(incoming, from, sender.gen)) {
      this.#event("ignored", `Ignored IPAM state from removed peer "${from}" (gen ${sender.gen})`);
      return { changed: false, removedSender: true };
    }
    const checked = verifyIncoming(this.#state, incoming, {
      signer: this.#signer,
      me: this.#me,
      verified: this.#verified,
    });
    const integrity = this.#integrity;
    if ("foreignRing" in checked) {
      integrity.foreignRing = { ringId: checked.foreignRing, from };
      this.#event(
        "ignored",
        `Ignored IPAM state from "${from}": another ring, ${checked.foreignRing}`,
      );
      return { changed: false };
    }
    const { refused, suspicious } = checked;
    if (suspicious.length > 0) {
      integrity.suspicious = {
        count: (integrity.suspicious?.count ?? 0) + suspicious.length,
        last: `from "${from}": ${suspicious[0]}`,
        at: this.#now(),
      };
    }
    if (refused.length > 0) {
      const more = refused.length > 1 ? ` (and ${refused.length - 1} more)` : "";
      this.#event("ignored", `Refused from "${from}": ${refused[0]}${more}`);
    }
    for (const token of checked.conflicts) integrity.conflicts.set(token, from);
    // What this state says about a token replaces what an earlier one said: a deed we could
    // not check then may be taken, or refused for good, now.
    for (const entry of incoming.entries) integrity.unverified.delete(entry.token);
    for (const token of checked.unverified) {
      const version = incoming.entries.find((e) => e.token === token)?.version ?? 0;
      integrity.unverified.set(token, { version, from });
    }
    const changed = this.#transition(() => this.#merge(checked.accepted));
    for (const [token, { version }] of integrity.unverified) {
      const have = this.#state.entries.find((e) => e.token === token);
      if (have && have.version >= version) integrity.unverified.delete(token);
    }
    return { changed };
  }

  /**
   * Removes peer `name` for good (rmpeer): a tombstone for its highest generation, so that the
   * result is the same whoever runs it. RangeError for ourselves or a peer the ring never had.
   */
  remove(name: string): { gen: number; addresses: number } {
    if (name === this.#me) {
      throw new RangeError(`Cannot rmpeer "${name}": it is this peer; use leave() instead`);
    }
    const record = peerRecord(this.#state, name);
    const gens = this.#state.entries.filter((e) => e.owner === name).map((e) => e.gen);
    if (!record && gens.length === 0) {
      throw new RangeError(`Cannot rmpeer "${name}": no such peer in the IPAM ring`);
    }
    const gen = Math.max(record?.gen ?? -1, ...gens);
    const addresses = ownedSize(this.#state, name);
    this.write((state) => withTombstone(state, name, { gen, by: this.#me }));
    this.#event("reclaim", `Removed peer "${name}" (gen ${gen}) owning ${addresses} addresses`);
    return { gen, addresses };
  }

  /** Writes the ring as it is again: a probe of whether the store works again. */
  flush(): void {
    this.#transition(() => this.#persist(true));
  }

  #merge(incoming: RingState): boolean {
    const before = peerRecord(this.#state, this.#me);
    this.#state = mergeRings(this.#state, incoming);
    const after = peerRecord(this.#state, this.#me);
    // Only we write our record, so a newer version of it at our generation was written by an
    // earlier incarnation of us whose disk was wiped: whatever it owned is not ours to use.
    const impostor = after !== undefined && after.gen === this.#gen &&
      after.version > (before?.version ?? 0) && after !== before;
    this.#mustHear = false;
    return this.settle(impostor);
  }

  /** Applies a write of our own (a tombstone, a give), then settles and persists. */
  write(change: (state: RingState, me: { name: string; gen: number }) => RingState): void {
    this.#transition(() => {
      this.#state = change(this.#state, { name: this.#me, gen: this.#gen });
      this.settle();
    });
  }

  /**
   * Leaves the ring: every owned range to `recipient` (when there is one), allocations
   * forgotten, our record marked left and our generation tombstoned. Returns the addresses given.
   */
  leave(recipient: { name: string; gen: number } | undefined): number {
    return this.#transition(() => {
      const owned = this.owned();
      if (recipient) {
        const from = { name: this.#me, gen: this.#gen };
        for (const range of owned) {
          this.#state = giveRange(this.#state, range, { from, to: recipient });
        }
      }
      this.#pending!.dropAllocations = true;
      const mine = this.ownRecord();
      this.#state = withPeer(this.#state, {
        ...mine,
        version: mine.version + 1,
        left: true,
        sig: "",
      });
      this.#state = withTombstone(this.#state, this.#me, { gen: this.#gen, by: this.#me });
      const addresses = owned.reduce((sum, r) => sum + r.end - r.start, 0);
      const to = recipient?.name ?? "nobody";
      this.#event("left", `Left the ring, ${addresses} addresses to ${to}`);
      return addresses;
    });
  }

  /**
   * Claims the space no live peer owns (an operator action, ClusterIpam.adoptOrphans) at once,
   * or throws CannotAdoptError saying why it may not.
   */
  adopt(): { orphaned: number } {
    const blocker = adoptionBlocker(this.#state, { name: this.#me, gen: this.#gen });
    if (blocker) {
      throw new CannotAdoptError(
        `Cannot adopt the IPAM space on peer "${this.#me}": ${blocker.message}`,
        blocker.reason,
      );
    }
    this.#adopt = true;
    try {
      this.settle();
    } finally {
      this.#adopt = false;
    }
    const range = cidrToRange(parseCidr(this.#state.range));
    return { orphaned: range.end - range.start };
  }

  /**
   * Runs `change` as one transition: persisted at the end (in one store transaction, with the
   * allocations dropped when it started us clean), or undone in memory when that fails.
   * Nested calls join the running transition.
   */
  #transition<T>(change: () => T): T {
    if (this.#pending) return change();
    const saved = {
      state: this.#state,
      gen: this.#gen,
      ringId: this.#ringId,
      mustHear: this.#mustHear,
    };
    const pending = { events: [] as IpamEvent[], dropAllocations: false };
    this.#pending = pending;
    let result: T;
    try {
      result = change();
      if (this.#state !== saved.state) this.#state = signOwn(this.#state, this.#me, this.#signer);
      this.#persist(false);
    } catch (error) {
      this.#state = saved.state;
      this.#gen = saved.gen;
      this.#ringId = saved.ringId;
      this.#mustHear = saved.mustHear;
      throw error;
    } finally {
      this.#pending = undefined;
    }
    if (pending.dropAllocations) this.#book.reload();
    for (const event of pending.events) this.#onEvent(event);
    return result;
  }

  /**
   * Everything that follows a change of the state: self-checks, protocol steps, persistence.
   * Returns whether these steps changed the state.
   */
  settle(impostor = false): boolean {
    return this.#transition(() => {
      const start = this.#state;
      this.#checkSelf(impostor);
      this.#startRing();
      this.#claim();
      this.#publishRecord();
      // A claim or a ring creation may depend on the record we just published.
      this.#startRing();
      this.#claim();
      return this.#state !== start;
    });
  }

  #claim(): void {
    // Entries we could not check may hide who the heir is: claim nothing until they are.
    if (this.#integrity.unverified.size > 0) return;
    const before = this.#state;
    this.#state = claimOrphans(this.#state, { name: this.#me, gen: this.#gen }, {
      adopt: this.#adopt,
    });
    if (this.#state === before) return;
    const previous = new Map(before.entries.map((e) => [e.token, e]));
    const claimed = entryRanges(this.#state).filter(({ entry }) => {
      const was = previous.get(entry.token);
      return entry.owner === this.#me && entry.gen === this.#gen &&
        (was?.owner !== entry.owner || was.gen !== entry.gen);
    }).map(({ entry, range }) => {
      const was = previous.get(entry.token);
      return `${formatRange(range)} of ${was?.owner}@${was?.gen}`;
    });
    this.#event("reclaim", `Claimed ${claimed.join(", ")}`);
  }

  /** Starts clean when the cluster removed us or replaced the ring we allocated from. */
  #checkSelf(impostor: boolean): void {
    const restart = startCleanReason(this.#state, {
      me: this.#me,
      gen: this.#gen,
      ringId: this.#ringId,
      impostor,
    });
    this.#ringId = this.#state.ringId;
    if (!restart) return;
    const released = this.#book.list();
    this.#pending!.dropAllocations = true;
    this.#gen = restart.gen;
    this.#state = startedClean(this.#state, {
      me: this.#me,
      gen: this.#gen,
      mode: this.#init.mode,
    });
    this.#mustHear = false;
    this.#event(
      "reset",
      `Starting clean as generation ${this.#gen}: ${restart.why}; dropped ${released.length} ` +
        `allocations`,
    );
  }

  /** consensus and seed modes: vote, and create the first split when it is agreed. */
  #startRing(): void {
    let step = firstSplitStep(this.#state, this.#me, this.#init);
    if (step.kind === "vote") {
      const mine = this.ownRecord();
      this.#state = withPeer(this.#state, {
        ...mine,
        version: mine.version + 1,
        vote: step.vote,
        sig: "",
      });
      step = firstSplitStep(this.#state, this.#me, this.#init);
    }
    if (step.kind !== "create") return;
    this.#state = initialRing(this.#state, {
      members: step.members,
      ringId: step.ringId,
      creator: { name: this.#me, gen: this.#gen },
    });
    this.#ringId = this.#state.ringId;
    const names = step.members.map((m) => m.name).join(", ");
    if (this.#init.mode === "seed") {
      // Our own copy of the seed ring may be older than the cluster's (a wiped disk).
      this.#mustHear = step.members.length > 1;
      this.#event("ring-created", `Created the seed ring among ${names}`);
    } else this.#event("ring-created", `Consensus reached: split the range among ${names}`);
  }

  /** Publishes our free/used and the tombstones we have seen, when they changed. */
  refreshRecord(): void {
    this.#transition(() => this.#publishRecord());
  }

  #publishRecord(): void {
    let size = 0;
    let used = 0;
    for (const range of this.owned()) {
      size += this.#book.usableIn(range);
      used += this.#book.usedIn(range);
    }
    const next = refreshedRecord(this.#state, {
      me: this.#me,
      gen: this.#gen,
      mode: this.#init.mode,
      free: size - used,
      used,
      canAcknowledge: this.#canAcknowledge,
    });
    if (next) this.#state = withPeer(this.#state, next);
  }

  /** Writes the ring and generation when they changed (or when `force`d), in one transaction. */
  #persist(force: boolean): void {
    const drop = this.#pending?.dropAllocations ?? false;
    const written = this.#persisted;
    if (!force && !drop && written.state === this.#state && written.gen === this.#gen) return;
    const ring = encodeRing(this.#state);
    if (!force && !drop && ring === written.ring && written.gen === this.#gen) {
      this.#persisted = { ...written, state: this.#state };
      return;
    }
    this.#store.transaction(() => {
      this.#store.setValue(KEY_RING, ring);
      this.#store.setValue(KEY_GEN, String(this.#gen));
      if (drop) this.#store.clearAllocations();
    });
    this.#persisted = { state: this.#state, gen: this.#gen, ring };
  }

  #event(kind: IpamEvent["kind"], message: string): void {
    if (this.#pending) this.#pending.events.push({ kind, message });
    else this.#onEvent({ kind, message });
  }
}
