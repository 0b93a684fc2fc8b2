/**
 * The writes a peer makes to the ring, as pure functions that return new deeds (unsigned; the
 * writer's LocalRing signs them): the first split, giving a range away (which first splits the
 * entries at its edges), and claiming an orphan. Each new deed names its writer and kind, so
 * every receiver can check that the writer had the right to make it (authority.ts).
 */
import { type AddressRange, cidrToRange, parseCidr } from "../net/cidr.ts";
import {
  compare,
  type DeedKind,
  deedOf,
  entryRanges,
  HISTORY_DEPTH,
  type RingEntry,
  RingError,
  type RingState,
} from "./ring.ts";

type Writer = { readonly name: string; readonly gen: number };

/** The next deed of `entry`, written by `writer`: version + 1, its history carried along. */
export function nextDeed(
  entry: RingEntry,
  change: { owner: string; gen: number; writer: Writer; kind: DeedKind; end?: number },
): RingEntry {
  const { owner, gen, writer, kind } = change;
  return {
    token: entry.token,
    end: change.end ?? entry.end,
    owner,
    gen,
    version: entry.version + 1,
    writer: writer.name,
    writerGen: writer.gen,
    kind,
    sig: "",
    history: [...entry.history, deedOf(entry)].slice(-HISTORY_DEPTH),
  };
}

/**
 * The members' equal shares of the range, in name order: [token, end, member index] for each
 * share that is not empty. Receivers recompute it to check a first split (authority.ts).
 */
export function initialShares(range: string, memberCount: number): Array<[number, number, number]> {
  const { start, end } = cidrToRange(parseCidr(range));
  const tokens = Array.from(
    { length: memberCount },
    (_, i) => start + Math.floor((i * (end - start)) / memberCount),
  );
  const shares: Array<[number, number, number]> = [];
  tokens.forEach((token, i) => {
    // Tiny ranges with many members give some members nothing rather than empty entries.
    const next = tokens.slice(i + 1).find((t) => t > token) ?? end;
    if (tokens[i + 1] === token) return;
    shares.push([token, next, i]);
  });
  return shares;
}

/** Splits the range into equal parts, one per member in name order, written by `creator`. */
export function initialRing(
  state: RingState,
  options: { members: ReadonlyArray<Writer>; ringId: string; creator: Writer },
): RingState {
  const sorted = [...options.members].sort((a, b) => compare(a.name, b.name));
  const entries = initialShares(state.range, sorted.length).map(([token, end, i]) => ({
    token,
    end,
    owner: sorted[i].name,
    gen: sorted[i].gen,
    version: 1,
    writer: options.creator.name,
    writerGen: options.creator.gen,
    kind: "init" as const,
    sig: "",
    history: [],
  }));
  return { ...state, ringId: options.ringId, entries };
}

/**
 * Hands `range` from `from` to `to`. Only the owner may call it, and only for a range it owns
 * entirely. An entry that the range's edge cuts is split first: its deed shrinks to the cut
 * (a "split", same owner) and the cut-off part becomes a new token whose first deed names the
 * entry it came from; then every entry inside gets the new owner (a "give").
 */
export function giveRange(
  state: RingState,
  range: AddressRange,
  options: { from: Writer; to: Writer },
): RingState {
  const { from, to } = options;
  const clusterEnd = cidrToRange(parseCidr(state.range)).end;
  let entries = [...state.entries];
  for (const cut of [range.start, range.end]) {
    if (cut >= clusterEnd || entries.some((e) => e.token === cut)) continue;
    const i = entries.findLastIndex((e) => e.token < cut);
    const holder = entries[i];
    // (an entry may end where no token starts: a part this peer could not check is missing)
    if (holder?.end === cut) continue;
    if (!holder || holder.end < cut) {
      throw new RingError(`Cannot split the ring at ${cut}: no entry covers it`);
    }
    checkOwner(holder, from, { start: holder.token, end: holder.end });
    const shrunk = nextDeed(holder, {
      owner: holder.owner,
      gen: holder.gen,
      writer: from,
      kind: "split",
      end: cut,
    });
    const cutOff: RingEntry = {
      token: cut,
      end: holder.end,
      owner: holder.owner,
      gen: holder.gen,
      version: 1,
      writer: from.name,
      writerGen: from.gen,
      kind: "split",
      parent: { token: holder.token, version: shrunk.version },
      sig: "",
      history: [],
    };
    entries[i] = shrunk;
    entries = [...entries, cutOff].sort((x, y) => x.token - y.token);
  }
  const next: RingState = { ...state, entries };
  const result = entryRanges(next).map(({ entry, range: r }) => {
    if (r.start < range.start || r.start >= range.end) return entry;
    checkOwner(entry, from, r);
    return nextDeed(entry, { owner: to.name, gen: to.gen, writer: from, kind: "give" });
  });
  return { ...state, entries: result };
}

function checkOwner(entry: RingEntry, from: Writer, r: AddressRange): void {
  if (entry.owner !== from.name || entry.gen !== from.gen) {
    throw new RingError(
      `Peer "${from.name}" cannot give away ${r.start}-${r.end - 1}: owned by "${entry.owner}"`,
    );
  }
}
