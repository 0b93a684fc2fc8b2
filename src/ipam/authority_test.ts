/** Who may write what: verifyIncoming on hand-made states, one rule at a time. */
import assert from "node:assert/strict";
import { parseCidr } from "../net/cidr.ts";
import {
  deedBytes,
  type PeerSigner,
  recordBytes,
  signOwn,
  type Verified,
  verifyIncoming,
} from "./authority.ts";
import {
  deedOf,
  emptyRing,
  HISTORY_DEPTH,
  type PeerRecord,
  type RingEntry,
  type RingState,
  withPeer,
  withTombstone,
} from "./ring.ts";
import { giveRange, initialRing, nextDeed } from "./ring_writes.ts";
import { claimOrphans } from "./reclaim.ts";
import { MemorySigners } from "./testing.ts";

const signers = new MemorySigners();
const signer = (name: string): PeerSigner => signers.for(name);

function record(name: string, seen: Record<string, number> = {}, version = 1): PeerRecord {
  return { name, gen: 0, version, mode: "consensus", free: 0, used: 0, seen, sig: "" };
}

/** A ring split among a, b and c (made by a), with x as a fourth peer; everything signed. */
function base(): RingState {
  let state = initialRing(emptyRing(parseCidr("10.32.0.0/24")), {
    members: ["a", "b", "c"].map((name) => ({ name, gen: 0 })),
    ringId: "consensus:a,b,c",
    creator: { name: "a", gen: 0 },
  });
  for (const name of ["a", "b", "c", "x"]) state = withPeer(state, record(name));
  return signAll(state);
}

function signAll(state: RingState): RingState {
  for (const name of ["a", "b", "c", "x"]) state = signOwn(state, name, signer(name));
  return state;
}

function verify(local: RingState, incoming: RingState, me = "a"): Verified {
  const result = verifyIncoming(local, incoming, { signer: signer(me), me, verified: new Set() });
  assert.ok(!("foreignRing" in result));
  return result;
}

function entry(state: RingState, owner: string): RingEntry {
  return state.entries.find((e) => e.owner === owner)!;
}

function replace(state: RingState, changed: RingEntry): RingState {
  return { ...state, entries: state.entries.map((e) => e.token === changed.token ? changed : e) };
}

/** `deed` with x's signature, whoever it names as writer. */
function forgedByX(state: RingState, deed: RingEntry): RingEntry {
  return { ...deed, sig: signer("x").sign(deedBytes(state, { ...deedOf(deed), sig: "" })) };
}

const accepted = (v: Verified, token: number) => v.accepted.entries.find((e) => e.token === token);

Deno.test("a give by the owner is taken, with the split that cut it", () => {
  const local = base();
  const b = entry(local, "b");
  const gave = signAll(giveRange(local, { start: b.token + 10, end: b.token + 20 }, {
    from: { name: "b", gen: 0 },
    to: { name: "x", gen: 0 },
  }));
  const result = verify(local, gave);
  assert.deepEqual(result.refused, []);
  assert.equal(accepted(result, b.token + 10)?.owner, "x");
  assert.equal(accepted(result, b.token)?.end, b.token + 10, "b's entry shrank");
  assert.equal(accepted(result, b.token + 20)?.owner, "b", "the rest stays b's");
});

Deno.test("a give in the owner's name but another's signature, or by a non-owner, is refused", () => {
  const local = base();
  const b = entry(local, "b");
  const inB = forgedByX(
    local,
    nextDeed(b, { owner: "x", gen: 0, writer: { name: "b", gen: 0 }, kind: "give" }),
  );
  const byX = forgedByX(
    local,
    nextDeed(b, { owner: "x", gen: 0, writer: { name: "x", gen: 0 }, kind: "give" }),
  );
  assert.match(verify(local, replace(local, inB)).suspicious[0], /not signed by its writer/);
  assert.match(verify(local, replace(local, byX)).suspicious[0], /a give not by the owner \("b"\)/);
  assert.equal(accepted(verify(local, replace(local, byX)), b.token), undefined);
});

Deno.test("a split of someone else's entry cannot create a token", () => {
  const local = base();
  const b = entry(local, "b");
  // x "cuts" b's entry and owns the cut-off: signed by x, named as written by x
  const cut = giveRange(local, { start: b.token + 10, end: b.end }, {
    from: { name: "b", gen: 0 },
    to: { name: "x", gen: 0 },
  });
  const asX = {
    ...cut,
    entries: cut.entries.map((e) => e.sig === "" ? forgedByX(cut, { ...e, writer: "x" }) : e),
  };
  const result = verify(local, asX);
  assert.ok(result.suspicious.length > 0, JSON.stringify(result.refused));
  assert.equal(accepted(result, b.token + 10), undefined);
});

/** c removed by a, acknowledged (or not) by the live peers listed in `ackers`. */
function cRemoved(ackers: string[]): RingState {
  let state = withTombstone(base(), "c", { gen: 0, by: "a" });
  for (const name of ackers) state = withPeer(state, record(name, { c: 0 }, 2));
  return signAll(state);
}

Deno.test("a claim is taken only from the heir, and only once every live peer acknowledged", () => {
  const local = cRemoved(["a", "b", "x"]);
  const orphan = entry(local, "c");
  // b owns the entry before c's, so b is the heir: its claim carries b's entry as evidence.
  const byB = signAll(claimOrphans(local, { name: "b", gen: 0 }));
  const claimB = byB.entries.find((e) => e.token === orphan.token)!;
  assert.equal(claimB.owner, "b");
  assert.equal(accepted(verify(local, byB), orphan.token)?.owner, "b");
  // x presents b's evidence as its own, or its (made-up) entry: refused either way.
  const asX = (evidence: RingEntry["evidence"]) => {
    const deed = {
      ...nextDeed(orphan, { owner: "x", gen: 0, writer: { name: "x", gen: 0 }, kind: "claim" }),
      evidence,
    };
    return replace(local, {
      ...deed,
      sig: signer("x").sign(deedBytes(local, { ...deedOf(deed), sig: "" })),
    });
  };
  assert.match(verify(local, asX(claimB.evidence)).suspicious[0], /"x" is not the heir/);
  // A deed x made up for the evidence (signed by x, an entry of x before c's) was never held.
  const made = forgedByX(local, { ...entry(local, "b"), owner: "x", writer: "x" });
  assert.match(
    verify(local, asX({ witness: deedOf(made), walk: [] })).refused[0],
    /its evidence \(\d+ v1\) is unknown/,
  );
  assert.match(verify(local, asX(undefined)).suspicious[0], /a claim without evidence/);
  // With x's acknowledgement missing, nobody may claim yet (not even the heir).
  const early = cRemoved(["a", "b"]);
  assert.match(
    verify(early, { ...byB, peers: early.peers }).refused[0],
    /not acknowledged by every live peer/,
  );
});

Deno.test("records and removals count only with the right signature", () => {
  const local = base();
  const lie = { ...record("b", {}, 5), left: true };
  const forgedRecord = withPeer(local, {
    ...lie,
    sig: signer("x").sign(recordBytes(local.range, lie)),
  });
  assert.match(verify(local, forgedRecord).suspicious[0], /record of "b".*not signed by it/);
  const removal = withTombstone(local, "b", { gen: 0, by: "b" });
  const forgedRemoval = signOwn(removal, "x", signer("x")); // signs nothing: the proof names b
  assert.match(verify(local, forgedRemoval).suspicious[0], /removal of "b".*not signed/);
  const byX = signOwn(withTombstone(local, "b", { gen: 0, by: "x" }), "x", signer("x"));
  assert.deepEqual(
    verify(local, byX).refused,
    [],
    "x may remove b; acknowledging is another matter",
  );
});

Deno.test("a peer that missed too many versions keeps what it has and says so", () => {
  let ahead = base();
  const b0 = entry(ahead, "b");
  for (let i = 0; i < HISTORY_DEPTH + 4; i++) {
    const from = i % 2 === 0 ? "b" : "x";
    const to = i % 2 === 0 ? "x" : "b";
    ahead = signAll(giveRange(ahead, { start: b0.token, end: b0.end }, {
      from: { name: from, gen: 0 },
      to: { name: to, gen: 0 },
    }));
  }
  const result = verify(base(), ahead);
  assert.deepEqual(result.unverified, [b0.token]);
  assert.match(result.refused[0], /versions 2-\d+ are missing/);
  assert.deepEqual(result.suspicious, []);
  assert.equal(accepted(result, b0.token), undefined);
});

Deno.test("a first split by someone else than its ring id names is refused, even on first contact", () => {
  const ring = base();
  const fake = {
    ...ring,
    entries: ring.entries.map((e) => forgedByX(ring, { ...e, writer: "x" })),
  };
  const result = verify(emptyRing(parseCidr("10.32.0.0/24")), fake);
  assert.equal(result.accepted.entries.length, 0);
  assert.match(result.suspicious[0], /"x" did not create ring consensus:a,b,c/);
  // the real one is taken on first contact, also when peer names hold colons (MAC-like names)
  assert.equal(verify(emptyRing(parseCidr("10.32.0.0/24")), ring).accepted.entries.length, 3);
  const names = ["02:aa:00:00:00:01", "02:aa:00:00:00:02"];
  const macs = signOwn(
    initialRing(emptyRing(parseCidr("10.32.0.0/24")), {
      members: names.map((name) => ({ name, gen: 0 })),
      ringId: `consensus:${names.join(",")}`,
      creator: { name: names[0], gen: 0 },
    }),
    names[0],
    signer(names[0]),
  );
  assert.equal(verify(emptyRing(parseCidr("10.32.0.0/24")), macs).accepted.entries.length, 2);
});

Deno.test("a state of another ring is refused whole", () => {
  const other = signAll(initialRing(emptyRing(parseCidr("10.32.0.0/24")), {
    members: [{ name: "x", gen: 0 }],
    ringId: "consensus:x",
    creator: { name: "x", gen: 0 },
  }));
  const result = verifyIncoming(base(), other, {
    signer: signer("a"),
    me: "a",
    verified: new Set(),
  });
  assert.deepEqual(result, { foreignRing: "consensus:x" });
});

Deno.test("two different deeds of one version by one writer are reported", () => {
  const local = base();
  const b = entry(local, "b");
  const toX = nextDeed(b, { owner: "x", gen: 0, writer: { name: "b", gen: 0 }, kind: "give" });
  const toC = nextDeed(b, { owner: "c", gen: 0, writer: { name: "b", gen: 0 }, kind: "give" });
  const sign = (d: RingEntry) => ({
    ...d,
    sig: signer("b").sign(deedBytes(local, { ...deedOf(d), sig: "" })),
  });
  const mine = replace(local, sign(toX));
  const result = verify(mine, replace(local, sign(toC)));
  assert.deepEqual(result.conflicts, [b.token]);
  assert.equal(accepted(result, b.token), undefined);
});
