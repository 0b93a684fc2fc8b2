/**
 * Moving space between peers, the choices only (weave's ChoosePeersToAskForSpace and
 * space.Donate): whom a peer short of space asks, and in what order; whether a donor may give
 * to a requester; which range it gives. Pure functions of the ring and of what the caller tells
 * them about its own allocations; ClusterIpam sends the messages and writes the ring.
 */
import { type AddressRange, cidrToRange, intersectRanges, parseCidr } from "../net/cidr.ts";
import { normalizeRanges } from "./book.ts";
import { entryRanges, isDead, livePeers, peerRecord, type RingState } from "./ring.ts";

/**
 * The peers to ask for space in `scope`, best first: reachable live peers that own part of it
 * (the ring tells us who). Published free counts lag and cover the whole range, so they order
 * the candidates but exclude none. For a subnet, the space owned inside it orders them.
 */
export function donorsInOrder(
  state: RingState,
  options: { me: string; reachable: ReadonlySet<string>; scope: AddressRange; subnet: boolean },
): string[] {
  const { me, reachable, scope, subnet } = options;
  const inScope = new Map<string, number>();
  for (const { entry, range } of entryRanges(state)) {
    const overlap = intersectRanges(range, scope);
    if (overlap && !isDead(state, entry.owner, entry.gen)) {
      inScope.set(entry.owner, (inScope.get(entry.owner) ?? 0) + overlap.end - overlap.start);
    }
  }
  return livePeers(state)
    .filter((p) => p.name !== me && reachable.has(p.name) && inScope.has(p.name))
    .sort((a, b) =>
      (subnet ? 0 : b.free - a.free) || inScope.get(b.name)! - inScope.get(a.name)! ||
      (a.name < b.name ? -1 : 1)
    )
    .map((p) => p.name);
}

/**
 * Why a donor must not give to `requester` at generation `gen`, or undefined when it may.
 * A donor gives only to an incarnation that every live peer already lists as live: if the donor
 * is removed later, its heir then waits for the recipient's acknowledgement, whose state carries
 * this give (docs/ipam.md, argument step 5).
 */
export function refuseDonation(
  state: RingState,
  options: { me: string; requester: string; gen: number },
): string | undefined {
  const { me, requester, gen } = options;
  const record = peerRecord(state, requester);
  const incarnation = `${requester}@${gen}`;
  if (!record || record.left || record.gen !== gen) return `does not know ${incarnation} yet`;
  const unaware = livePeers(state)
    .filter((p) => p.name !== me && p.name !== requester && !(p.known ?? []).includes(incarnation))
    .map((p) => p.name);
  if (unaware.length > 0) return `${incarnation} not yet known to ${unaware.join(", ")}`;
  return undefined;
}

/**
 * The largest run of free addresses inside `owned` and `scope`: `used` are the addresses held,
 * and `usable` counts the addresses of a run a pod may hold (a run of only reserved addresses
 * is worth nothing).
 */
export function largestFreeRun(
  owned: readonly AddressRange[],
  options: {
    scope: AddressRange;
    used: readonly number[];
    usable: (range: AddressRange) => number;
  },
): AddressRange | undefined {
  const { scope, used, usable } = options;
  const pieces = normalizeRanges(
    owned.map((r) => intersectRanges(r, scope)).filter((r) => r !== undefined),
  );
  let best: AddressRange | undefined;
  for (const piece of pieces) {
    let start = piece.start;
    const inside = used.filter((a) => a >= piece.start && a < piece.end).sort((a, b) => a - b);
    for (const address of [...inside, piece.end]) {
      const run = { start, end: address };
      if (run.end > run.start && usable(run) > 0) {
        if (!best || run.end - run.start > best.end - best.start) best = run;
      }
      start = address + 1;
    }
  }
  return best;
}

/** What a donor gives out of a free run: its upper half (all of it when it is one address). */
export function donationOf(run: AddressRange): AddressRange {
  const size = run.end - run.start;
  return size >= 2 ? { start: run.start + Math.floor(size / 2), end: run.end } : run;
}

/**
 * A donor's answer to a space request: the range to give, or why it gives nothing (in words
 * the requester puts in its NoSpaceError). `scope` is the requested subnet (or the cluster
 * range) as text from the wire; a bad one is answered like no space.
 */
export function chooseDonation(
  state: RingState,
  options: {
    me: string;
    requester: { name: string; gen: number };
    ready: boolean;
    owned: readonly AddressRange[];
    scope: string;
    used: readonly number[];
    usable: (range: AddressRange) => number;
  },
): { give: AddressRange } | { why: string } {
  const { me, requester, owned, used, usable } = options;
  let scope: AddressRange | undefined;
  try {
    scope = cidrToRange(parseCidr(options.scope));
  } catch {
    return { why: "no free space there" };
  }
  const why = options.ready
    ? refuseDonation(state, { me, requester: requester.name, gen: requester.gen })
    : "not ready";
  if (why !== undefined) return { why };
  const run = largestFreeRun(owned, { scope, used, usable });
  return run ? { give: donationOf(run) } : { why: "no free space there" };
}

/** Whom a leaving peer hands everything to: the reachable live peer with the least free space. */
export function leaveRecipient(
  state: RingState,
  options: { me: string; reachable: ReadonlySet<string> },
): { name: string; gen: number } | undefined {
  const recipient = livePeers(state)
    .filter((p) => p.name !== options.me && options.reachable.has(p.name))
    .sort((a, b) => a.free - b.free || (a.name < b.name ? -1 : 1))[0];
  return recipient && { name: recipient.name, gen: recipient.gen };
}
