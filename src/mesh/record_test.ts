import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Digest,
  mergeInto,
  mergeRecord,
  parseRecord,
  type PeerRecord,
  recordSigningBytes,
} from "./record.ts";
import { IdentityKey, verifySignature } from "./keys.ts";
import { MalformedFrameError } from "./errors.ts";

const KEY = "A".repeat(43) + "=";
const SIG = "B".repeat(86) + "==";

/** Records of a few names, where equal (name, incarnation, version) always means equal content. */
const recordArb = fc.record({
  name: fc.constantFrom("a", "b", "c"),
  incarnation: fc.constantFrom("00000001aaaa", "00000002bbbb"),
  version: fc.integer({ min: 1, max: 4 }),
}).map(({ name, incarnation, version }): PeerRecord => ({
  name,
  nickname: `nick-${name}`,
  incarnation,
  version,
  connections: [{ peer: `${name}x${version}`, address: `10.0.0.${version}:6783` }],
  data: { ipam: `${incarnation}/${version}` },
  key: KEY,
  sig: SIG,
}));

function mergeAll(records: PeerRecord[]): Map<string, PeerRecord> {
  const map = new Map<string, PeerRecord>();
  mergeInto(map, records);
  return map;
}

Deno.test("mergeRecord is commutative, associative and idempotent", () => {
  fc.assert(fc.property(recordArb, recordArb, recordArb, (a, b, c) => {
    if (a.name !== b.name || b.name !== c.name) return;
    assert.deepEqual(mergeRecord(a, b), mergeRecord(b, a));
    assert.deepEqual(mergeRecord(a, a), a);
    assert.deepEqual(mergeRecord(mergeRecord(a, b), c), mergeRecord(a, mergeRecord(b, c)));
  }));
});

Deno.test("merging a batch gives the same map in any order and when repeated", () => {
  fc.assert(fc.property(fc.array(recordArb, { maxLength: 20 }), fc.integer(), (records, seed) => {
    const shuffled = [...records].sort((x, y) =>
      ((x.version * 31 + seed) % 7) - ((y.version * 31 + seed) % 7)
    );
    const once = mergeAll(records);
    assert.deepEqual(mergeAll(shuffled), once);
    assert.deepEqual(mergeAll([...records, ...records]), once);
  }));
});

Deno.test("a newer incarnation wins over any version of an older one", () => {
  const old: PeerRecord = {
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 99,
    connections: [],
    data: {},
    key: KEY,
    sig: SIG,
  };
  const restarted = { ...old, incarnation: "00000002bbbb", version: 1 };
  assert.equal(mergeRecord(old, restarted), restarted);
});

Deno.test("mergeInto reports only the names whose record changed", () => {
  const map = new Map<string, PeerRecord>();
  const a1: PeerRecord = {
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 1,
    connections: [],
    data: {},
    key: KEY,
    sig: SIG,
  };
  assert.deepEqual(mergeInto(map, [a1]), ["a"]);
  assert.deepEqual(mergeInto(map, [a1]), []);
  assert.deepEqual(mergeInto(map, [{ ...a1, version: 2 }]), ["a"]);
});

Deno.test("Digest depends on the set of records, not the order they were added", () => {
  fc.assert(fc.property(fc.array(recordArb, { maxLength: 10 }), (records) => {
    const unique = [...mergeAll(records).values()];
    const forward = new Digest(), backward = new Digest();
    unique.forEach((r) => forward.add(r));
    [...unique].reverse().forEach((r) => backward.add(r));
    assert.equal(forward.toString(), backward.toString());
  }));
  const digest = new Digest();
  const empty = digest.toString();
  const record = parseRecord({
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 1,
    connections: [],
    data: {},
    key: KEY,
    sig: SIG,
  });
  digest.add(record);
  assert.notEqual(digest.toString(), empty);
  digest.remove(record);
  assert.equal(digest.toString(), empty);
});

Deno.test("parseRecord rejects malformed records naming the bad field", () => {
  const good = {
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 1,
    connections: [{ peer: "b", address: "10.0.0.2:6783" }],
    data: { ipam: "x" },
    key: KEY,
    sig: SIG,
  };
  assert.deepEqual(parseRecord(good), good);
  const bad: Array<[unknown, RegExp]> = [
    [null, /not an object/],
    [{ ...good, name: "../etc" }, /bad name/],
    [{ ...good, version: -1 }, /bad version/],
    [{ ...good, version: "1" }, /bad version/],
    [{ ...good, incarnation: "XYZ" }, /bad incarnation/],
    [{ ...good, connections: [{ peer: 5 }] }, /bad connection peer/],
    [{ ...good, data: { ipam: 5 } }, /bad data\["ipam"\]/],
    [{ ...good, key: undefined }, /bad key/],
    [{ ...good, sig: "AAAA" }, /bad signature/],
  ];
  for (const [value, message] of bad) {
    assert.throws(() => parseRecord(value), (e: Error) => {
      return e instanceof MalformedFrameError && message.test(e.message);
    });
  }
});

Deno.test("parseRecord drops fields it does not know, so they are not gossiped on", () => {
  const record = parseRecord({
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 1,
    connections: [{ peer: "b", address: "10.0.0.2:6783", junk: "x".repeat(100) }],
    data: {},
    key: KEY,
    sig: SIG,
    padding: "x".repeat(1000),
  });
  assert.equal(JSON.stringify(record).includes("x"), false);
});

Deno.test("a record's signature covers every field but itself, data in any key order", () => {
  const key = IdentityKey.generate();
  const unsigned = {
    name: "a",
    nickname: "a",
    incarnation: "00000001aaaa",
    version: 3,
    connections: [{ peer: "b", address: "10.0.0.2:6783" }],
    data: { ipam: "x", datapath: "y" },
    key: key.publicKey,
  };
  const sig = key.sign(recordSigningBytes(unsigned));
  const checks = (r: Omit<PeerRecord, "sig">) =>
    verifySignature(key.publicKey, recordSigningBytes(r), sig);
  assert.ok(checks(unsigned));
  assert.ok(checks({ ...unsigned, data: { datapath: "y", ipam: "x" } }));
  for (
    const changed of [
      { name: "b" },
      { nickname: "z" },
      { incarnation: "00000002aaaa" },
      { version: 4 },
      { connections: [] },
      { data: { ipam: "stolen", datapath: "y" } },
      { key: IdentityKey.generate().publicKey },
    ]
  ) {
    assert.ok(!checks({ ...unsigned, ...changed }), JSON.stringify(changed));
  }
});
