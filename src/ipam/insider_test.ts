/**
 * An insider: a peer that knows the mesh password and has its own identity key ("x"), and
 * writes whatever it likes into the states it sends, also under another sender's name (as a
 * relaying peer could make the mesh report). Each forgery is refused by every honest peer,
 * shows as a diagnostic, and afterwards no address is handed out twice.
 */
import assert from "node:assert/strict";
import { deedBytes, recordBytes, signOwn, tombstoneBytes } from "./authority.ts";
import {
  type Deed,
  deedOf,
  isDead,
  peerRecord,
  type RingEntry,
  type RingState,
  withPeer,
} from "./ring.ts";
import { decodeRing, encodeRing } from "./ring_codec.ts";
import { giveRange, nextDeed } from "./ring_writes.ts";
import { Simulation } from "./testing.ts";

const consensus3 = { mode: "consensus", peers: 3 } as const;
const HONEST = ["a", "b", "c"];

async function withInsider(): Promise<Simulation> {
  const sim = await Simulation.withPeers(HONEST, consensus3);
  await sim.start("x", { mode: "observer" });
  sim.settle();
  return sim;
}

function ring(sim: Simulation, name: string): RingState {
  return decodeRing(sim.peer(name).ringState());
}

/** Sends `state` to every peer as "x", and once more as if each honest peer had sent it. */
function spread(sim: Simulation, state: RingState): void {
  for (const from of ["x", ...HONEST]) {
    sim.network.forge({ from, kind: "state", body: encodeRing(state) });
  }
  sim.settle();
}

function entryOf(state: RingState, owner: string): RingEntry {
  const entry = state.entries.find((e) => e.owner === owner);
  assert.ok(entry, `${owner} owns an entry`);
  return entry;
}

/** Signs `deed` with x's key, whatever writer it names. */
function signedByX(sim: Simulation, state: RingState, deed: Deed): RingEntry {
  const sig = sim.signers.for("x").sign(deedBytes(state, { ...deed, sig: "" }));
  return { ...deedOf(deed), sig, history: [] };
}

/** `state` with each of `entries` claimed by x (a claim without evidence, signed by x). */
function claimedByX(sim: Simulation, state: RingState, entries: readonly RingEntry[]): RingState {
  let claimed = state;
  for (const entry of entries) {
    const deed = nextDeed(entry, {
      owner: "x",
      gen: 0,
      writer: { name: "x", gen: 0 },
      kind: "claim",
    });
    claimed = replaceEntry(claimed, signedByX(sim, state, deed));
  }
  return claimed;
}

function replaceEntry(state: RingState, entry: RingEntry): RingState {
  return { ...state, entries: state.entries.map((e) => e.token === entry.token ? entry : e) };
}

/** Every honest peer refused: each says so, and no address can be handed out twice. */
async function assertNothingForged(sim: Simulation, before: Map<string, string>) {
  for (const name of HONEST) {
    const state = ring(sim, name);
    const was = decodeRing(before.get(name)!);
    assert.deepEqual(
      state.entries.map((e) => [e.token, e.owner, e.version]),
      was.entries.map((e) => [e.token, e.owner, e.version]),
      `${name}'s ring is as it was`,
    );
    assert.ok(
      sim.peer(name).diagnostics().some((d) => d.code === "ring-forgery"),
      `${name} reports the forgery: ${JSON.stringify(sim.peer(name).diagnostics())}`,
    );
  }
  for (let round = 0, progress = true; progress && round < 300; round++) {
    progress = false;
    for (const name of [...HONEST, "x"]) {
      try {
        await sim.drive(sim.peer(name).allocate(`fill-${round}`));
        progress = true;
      } catch (error) {
        if (!/No free address|not ready/.test(String(error))) throw error;
      }
    }
  }
  const held = [...HONEST, "x"].flatMap((name) => sim.peer(name).list().map((a) => a.address));
  assert.equal(new Set(held).size, held.length, "no address is held twice");
  assert.equal(held.length, 254, "the whole range is handed out");
}

function snapshot(sim: Simulation): Map<string, string> {
  return new Map(HONEST.map((n) => [n, sim.peer(n).ringState()]));
}

Deno.test("insider: a record in another peer's name is refused", async () => {
  using sim = await withInsider();
  const before = snapshot(sim);
  let state = ring(sim, "b");
  const a = peerRecord(state, "a")!;
  // "a left" (so donors skip it and its space looks free), signed by x, and unsigned.
  const lie = { ...a, version: a.version + 5, left: true, free: 0 };
  const sig = sim.signers.for("x").sign(recordBytes(state.range, lie));
  state = withPeer(state, { ...lie, sig });
  spread(sim, state);
  spread(sim, withPeer(state, { ...lie, sig: "" }));
  for (const name of HONEST) assert.equal(peerRecord(ring(sim, name), "a")?.left, undefined);
  await assertNothingForged(sim, before);
});

Deno.test("insider: a live peer's range handed to itself or to another peer is refused", async () => {
  using sim = await withInsider();
  const before = snapshot(sim);
  const state = ring(sim, "a");
  const b = entryOf(state, "b");
  const forgeries: RingState[] = [
    // b "gives" its entry to x: b named as writer, x's signature
    replaceEntry(
      state,
      signedByX(
        sim,
        state,
        nextDeed(b, { owner: "x", gen: 0, writer: { name: "b", gen: 0 }, kind: "give" }),
      ),
    ),
    // x gives b's entry to itself, signed honestly as x: x is not the owner
    replaceEntry(
      state,
      signedByX(
        sim,
        state,
        nextDeed(b, { owner: "x", gen: 0, writer: { name: "x", gen: 0 }, kind: "give" }),
      ),
    ),
    // the same, to another honest peer (c), higher up the version chain
    replaceEntry(
      state,
      signedByX(sim, state, {
        ...nextDeed(b, { owner: "c", gen: 0, writer: { name: "x", gen: 0 }, kind: "give" }),
        version: b.version + 7,
      }),
    ),
    // a cut of b's range that x "owns", as if split off b's entry by x
    signOwn(
      giveRange(state, { start: b.token + 4, end: b.token + 8 }, {
        from: { name: "b", gen: 0 },
        to: { name: "x", gen: 0 },
      }),
      "b",
      sim.signers.for("x"),
    ),
  ];
  for (const forged of forgeries) spread(sim, forged);
  assert.equal(sim.peer("x").status().size, 0, "not even the insider's own IPAM believes it");
  await assertNothingForged(sim, before);
});

Deno.test("insider: a replayed old state changes nothing", async () => {
  using sim = await withInsider();
  const old = sim.peer("a").ringState();
  // a gives part of its range to x; then the old state of a comes back, as x and as a.
  await sim.drive(sim.peer("x").allocate("pod"));
  sim.settle();
  const owned = sim.peer("x").status().size;
  assert.ok(owned > 0);
  const now = snapshot(sim);
  for (const from of ["x", "a", "b"]) sim.network.forge({ from, kind: "state", body: old });
  sim.settle();
  for (const name of HONEST) assert.equal(sim.peer(name).ringState(), now.get(name));
  assert.equal(sim.peer("x").status().size, owned, "the give stands");
});

Deno.test("insider: removing a live peer and claiming its space is refused; it keeps serving", async () => {
  using sim = await withInsider();
  const before = snapshot(sim);
  const pod = await sim.peer("c").allocate("pod-on-c");
  let state = ring(sim, "a");
  // x removes c (a valid signature: x may issue removals), acknowledges it itself, and claims.
  const removal = { name: "c", gen: 0, by: "x" };
  const proof = { by: "x", sig: sim.signers.for("x").sign(tombstoneBytes(state.range, removal)) };
  state = {
    ...state,
    tombstones: { ...state.tombstones, c: 0 },
    proofs: { ...state.proofs, c: proof },
  };
  const x = peerRecord(state, "x")!;
  const acked = { ...x, version: x.version + 1, seen: { ...x.seen, c: 0 } };
  state = withPeer(state, {
    ...acked,
    sig: sim.signers.for("x").sign(recordBytes(state.range, acked)),
  });
  state = claimedByX(sim, state, state.entries.filter((e) => e.owner === "c"));
  // and a removal of a in a's own name, signed by x
  state = {
    ...state,
    tombstones: { ...state.tombstones, a: 0 },
    proofs: {
      ...state.proofs,
      a: {
        by: "a",
        sig: sim.signers.for("x").sign(tombstoneBytes(state.range, { name: "a", gen: 0, by: "a" })),
      },
    },
  };
  spread(sim, state);
  for (let i = 0; i < 10; i++) sim.step();
  sim.settle();
  for (const name of HONEST) {
    const seen = ring(sim, name);
    assert.ok(isDead(seen, "c", 0), "x's removal of c is a signed, accepted tombstone");
    assert.ok(!isDead(seen, "a", 0), "a removal in a's name, signed by x, is not");
    assert.ok(seen.entries.filter((e) => e.owner === "c").length > 0, `${name}: c keeps its range`);
  }
  const c = sim.peer("c");
  assert.equal(c.status().gen, 0, "c did not start clean");
  assert.deepEqual(c.lookup("pod-on-c"), [pod]);
  const contest = c.diagnostics().find((d) => d.code === "removal-contested");
  assert.ok(contest, JSON.stringify(c.diagnostics()));
  assert.match(contest.message, /Peer "x" removed this peer/);
  const waiting = sim.peer("a").diagnostics().find((d) => d.code === "reclaim-waiting");
  assert.match(waiting?.message ?? "", /removed peer "c".*waiting for a, b/);
  // c still hands out addresses from its own range, and they are c's alone.
  assert.ok((await c.allocate("pod-2")).address > 0);
  await assertNothingForged(sim, before);
});

Deno.test("insider: a claim of a removed peer's orphan by another than its heir never wins", async () => {
  using sim = await withInsider();
  sim.crash("c");
  sim.peer("a").rmpeer("c");
  const state = ring(sim, "a");
  const orphans = state.entries.filter((e) => e.owner === "c");
  const forged = claimedByX(sim, state, orphans);
  // x keeps sending its claim, before and after every live peer acknowledged c's removal.
  for (let i = 0; i < 10; i++) {
    sim.network.forge({ from: "x", kind: "state", body: encodeRing(forged) });
    sim.network.deliver();
    sim.step();
  }
  sim.settle();
  // the heirs (a and b) claimed, x did not get any of it
  const after = ring(sim, "a");
  for (const entry of orphans) {
    const now = after.entries.find((e) => e.token === entry.token)!;
    assert.ok(["a", "b"].includes(now.owner), `${entry.token} went to ${now.owner}`);
  }
  assert.ok(
    sim.events.some((e) => e.kind === "ignored" && /not the heir|not acknowledged/.test(e.message)),
  );
  assert.equal(sim.peer("x").status().size, 0);
});
