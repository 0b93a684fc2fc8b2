import assert from "node:assert/strict";
import type { PeerRecord } from "./record.ts";
import { Topology } from "./topology.ts";

function record(name: string, version: number, incarnation = "00000001aaaa"): PeerRecord {
  return {
    name,
    nickname: name,
    incarnation,
    version,
    connections: [],
    data: {},
    key: "",
    sig: "",
  };
}

Deno.test("summaries tell each side what to push and whether to ask back", () => {
  const ours = new Topology();
  for (const r of [record("a", 2), record("b", 1), record("c", 1)]) ours.store(r, { now: 0 });
  const theirs = new Map<string, [string, number]>([
    ["a", ["00000001aaaa", 1]], // older there: push
    ["b", ["00000001aaaa", 3]], // newer there: ask back
    ["d", ["00000001aaaa", 1]], // unknown here: ask back
  ]);
  const { push, theyHaveNewer } = ours.compare(theirs);
  assert.deepEqual(push.map((e) => JSON.parse(e).name).sort(), ["a", "c"]);
  assert.equal(theyHaveNewer, true);
  assert.equal(
    ours.compare(new Map(ours.summary().map(([n, i, v]) => [n, [i, v]]))).push.length,
    0,
  );
});

Deno.test("a tombstone blocks stale copies but not a newer life", () => {
  const topology = new Topology();
  topology.store(record("a", 5), { now: 0 });
  const empty = new Topology().digest();
  topology.remove("a", { until: 1000 });
  assert.equal(topology.digest(), empty);
  assert.equal(topology.isNews(record("a", 5)), false);
  assert.equal(topology.isNews(record("a", 6)), true);
  assert.equal(topology.isNews(record("a", 1, "00000002bbbb")), true);
  const { theyHaveNewer } = topology.compare(new Map([["a", ["00000001aaaa", 5]]]));
  assert.equal(theyHaveNewer, false, "a neighbour still holding the dead copy is not news");
  topology.expireTombstones(1000);
  assert.equal(topology.isNews(record("a", 5)), true);
});

Deno.test("the digest follows stores and is the same for the same records in any order", () => {
  const x = new Topology(), y = new Topology();
  x.store(record("a", 1), { now: 0 });
  x.store(record("b", 1), { now: 0 });
  x.store(record("a", 2), { now: 0 });
  y.store(record("b", 1), { now: 0 });
  y.store(record("a", 2), { now: 0 });
  assert.equal(x.digest(), y.digest());
  assert.match(x.digest(), /^2:[0-9a-f]{16}$/);
});
