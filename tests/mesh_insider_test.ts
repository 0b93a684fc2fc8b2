/**
 * An insider who knows the password (and has an identity key of its own) attacks a mesh of three
 * honest peers, speaking the protocol with its own code (InsiderClient). It forges records and
 * messages in other peers' names, replays old ones, tampers with frames, and presents another
 * key under a known name. Nothing forged is accepted, and the honest peers keep serving.
 * In-memory network and simulated time: no kernel objects, no root.
 */
import assert from "node:assert/strict";
import { recordSigningBytes } from "../src/mesh/record.ts";
import { messageSigningBytes } from "../src/mesh/protocol.ts";
import type { PeerRecord } from "../src/mesh/record.ts";
import { InsiderClient, SimCluster } from "../src/mesh/testing.ts";

const PASSWORD = "cluster-secret";
const INSIDER = "10.0.9.9:6783";

async function honestCluster(): Promise<SimCluster> {
  const cluster = new SimCluster({ latencyMs: 2 });
  const options = { password: PASSWORD, retryMinMs: 200, retryMaxMs: 1000 };
  await cluster.add("p0", options);
  await cluster.add("p1", { ...options, peers: ["p0"] });
  await cluster.add("p2", { ...options, peers: ["p1"] });
  cluster.get("p1").setLocalData("ipam", "p1-ranges");
  cluster.converge(3);
  return cluster;
}

function insider(cluster: SimCluster, options: { name?: string; at?: string } = {}) {
  const client = new InsiderClient(
    cluster.network.transport(options.at ?? INSIDER),
    SimCluster.address("p0"),
    { name: options.name ?? "mallory", password: PASSWORD },
  );
  cluster.clock.advance(50);
  return client;
}

/** The records the insider has been sent, newest copy per name. */
function recordsSeen(client: InsiderClient): Map<string, PeerRecord> {
  const records = new Map<string, PeerRecord>();
  for (const frame of client.received) {
    if (frame.t === "gossip") { for (const r of frame.r) records.set(r.name, r); }
  }
  return records;
}

function assertHonestViewOfP1(cluster: SimCluster, expected: { version: number }): void {
  for (const name of ["p0", "p1", "p2"]) {
    const p1 = cluster.get(name).peer("p1")!;
    assert.equal(p1.data.ipam, "p1-ranges", `${name} holds a forged record of p1`);
    assert.equal(p1.version, expected.version, `${name}: p1's version moved`);
  }
}

function assertStillServing(cluster: SimCluster): void {
  cluster.get("p2").setLocalData("datapath", "after-attack");
  cluster.clock.advance(2000);
  assert.equal(cluster.get("p0").peer("p2")!.data.datapath, "after-attack");
  assert.equal(cluster.get("p0").nextHop("p2"), "p1");
  assert.ok(
    cluster.get("p0").connections().some((c) => c.peer === "p1" && c.state === "established"),
  );
}

Deno.test("records forged in another peer's name are refused everywhere", async () => {
  await using cluster = await honestCluster();
  const mallory = insider(cluster);
  assert.ok(mallory.ready, `the insider knows the password: ${mallory.closed}`);
  mallory.send({ t: "summary", reply: false, e: [] });
  cluster.clock.advance(50);
  const real = recordsSeen(mallory).get("p1")!;
  const newer = { ...real, version: real.version + 10, data: { ipam: "stolen" } };
  // 1. signed by the insider's own key, which it claims is p1's
  const ownKey = { ...newer, key: mallory.key.publicKey };
  const forgedOwnKey = { ...ownKey, sig: mallory.key.sign(recordSigningBytes(ownKey)) };
  // 2. p1's real key, the insider's signature
  const forgedSig = { ...newer, sig: mallory.key.sign(recordSigningBytes(newer)) };
  // 3. p1's real signature over other contents
  const reused = { ...newer, sig: real.sig };
  mallory.send({ t: "gossip", r: [forgedOwnKey, forgedSig, reused] });
  cluster.clock.advance(5000);
  assertHonestViewOfP1(cluster, { version: real.version });
  const mismatch = cluster.get("p0").diagnostics().find((d) => d.code === "key-mismatch");
  assert.match(mismatch?.message ?? "", /"p1".*relayed by mallory/);
  assertStillServing(cluster);
});

Deno.test("a replayed record or frame changes nothing", async () => {
  await using cluster = await honestCluster();
  const mallory = insider(cluster);
  mallory.send({ t: "summary", reply: false, e: [] });
  cluster.clock.advance(50);
  const old = recordsSeen(mallory).get("p1")!;
  cluster.get("p1").setLocalData("ipam", "p1-ranges-2");
  cluster.clock.advance(2000);
  const current = cluster.get("p0").peer("p1")!.version;
  assert.ok(current > old.version);
  // The old record is validly signed by p1, but older than what everyone holds.
  mallory.send({ t: "gossip", r: [old] });
  cluster.clock.advance(2000);
  for (const name of ["p0", "p2"]) {
    assert.equal(cluster.get(name).peer("p1")!.data.ipam, "p1-ranges-2");
    assert.equal(cluster.get(name).peer("p1")!.version, current);
  }
  // A sealed frame sent twice is acted on once: one summary asked for, one answer.
  const answers = () => mallory.received.filter((f) => f.t === "gossip").length;
  const before = answers();
  const sealed = mallory.seal({ t: "summary", reply: false, e: [] });
  mallory.sendRaw(sealed);
  mallory.sendRaw(sealed);
  cluster.clock.advance(50);
  assert.equal(answers() - before, 1);
  assert.equal(mallory.closed, undefined, "a replay is dropped, not fatal");
  assertStillServing(cluster);
});

Deno.test("a tampered frame closes that connection only, from an insider or on the wire", async () => {
  await using cluster = await honestCluster();
  const mallory = insider(cluster);
  const sealed = mallory.seal({ t: "digest", h: "1:0000000000000000" });
  mallory.sendRaw(sealed.replace("1:0000", "1:0001"));
  cluster.clock.advance(50);
  assert.match(mallory.closed ?? "", /closed by peer|Integrity/);
  // On the wire between p1 and p0: a middlebox rewrites p1's data path blob in flight.
  const deliver = cluster.network.deliver.bind(cluster.network);
  let tampered = 0;
  cluster.network.deliver = (from, frame) => {
    if (typeof frame === "string" && frame.includes("vtep=10.0.0.2")) {
      tampered++;
      frame = frame.replace("vtep=10.0.0.2", "vtep=10.6.6.6");
    }
    deliver(from, frame);
  };
  const p0 = cluster.get("p0");
  const closedBefore = p0.metrics().terminations;
  cluster.get("p1").setLocalData("datapath", "vtep=10.0.0.2");
  cluster.clock.advance(3000);
  assert.ok(tampered > 0);
  assert.ok(p0.metrics().terminations > closedBefore, "the tampered connection was closed");
  for (const name of ["p0", "p2"]) {
    assert.notEqual(cluster.get(name).peer("p1")?.data.datapath, "vtep=10.6.6.6");
  }
  cluster.network.deliver = deliver;
  cluster.clock.advance(5000);
  assert.equal(p0.peer("p1")!.data.datapath, "vtep=10.0.0.2");
  assertStillServing(cluster);
});

Deno.test("another key under a known name is refused; the real peer stays", async () => {
  await using cluster = await honestCluster();
  const p0 = cluster.get("p0");
  const before = p0.peer("p1")!;
  const impostor = insider(cluster, { name: "p1" });
  cluster.clock.advance(2000);
  assert.match(impostor.closed ?? "", /closed/);
  const mismatch = p0.diagnostics().find((d) => d.code === "key-mismatch");
  assert.match(mismatch?.message ?? "", /"p1" presented identity key SHA256:.*at 10\.0\.9\.9/);
  assert.equal(p0.peer("p1")!.incarnation, before.incarnation);
  assert.equal(p0.nextHop("p1"), "p1");
  assertStillServing(cluster);
});

Deno.test("messages in another peer's name are not delivered; the insider's own are", async () => {
  await using cluster = await honestCluster();
  const heard: string[] = [];
  for (const name of ["p0", "p1", "p2"]) {
    cluster.get(name).onMessage(
      "ipam",
      (payload, from) => heard.push(`${name}<-${from}:${payload}`),
    );
  }
  const mallory = insider(cluster);
  const unicast = { src: "p1", dst: "p0", id: "00000001aaaa.1", ch: "ipam", p: "donate" };
  mallory.send({
    t: "msg",
    ...unicast,
    ttl: 4,
    sig: mallory.key.sign(messageSigningBytes(unicast)),
  });
  const bcast = { src: "p2", id: "00000001aaaa.2", ch: "ipam", p: "ring" };
  mallory.send({ t: "bcast", ...bcast, sig: mallory.key.sign(messageSigningBytes(bcast)) });
  const own = { src: "mallory", dst: "p0", id: "00000001aaaaaaaa.3", ch: "ipam", p: "hello" };
  mallory.send({ t: "msg", ...own, ttl: 4, sig: mallory.key.sign(messageSigningBytes(own)) });
  cluster.clock.advance(2000);
  assert.deepEqual(heard, ["p0<-mallory:hello"]);
  // A signed message replayed is delivered once.
  mallory.send({ t: "msg", ...own, ttl: 4, sig: mallory.key.sign(messageSigningBytes(own)) });
  cluster.clock.advance(500);
  assert.deepEqual(heard, ["p0<-mallory:hello"]);
  assertStillServing(cluster);
});
