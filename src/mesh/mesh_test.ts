/**
 * The mesh over the in-memory network in simulated time: convergence under loss and reordering,
 * routing and unicast, partitions, restarts, duplicates, forget, ageing out, auth, limits.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { InsiderClient, SimCluster as Cluster } from "./testing.ts";
import type { PeerStatus } from "./types.ts";

Deno.test("a line of peers converges under loss, delay and reordering and routes hop by hop", async () => {
  const cluster = new Cluster({ drop: 0.2, latencyMs: 5, jitterMs: 40 });
  try {
    for (let i = 0; i < 6; i++) await cluster.add(`p${i}`, { peers: i ? [`p${i - 1}`] : [] });
    cluster.converge(6, 60_000);
    assert.equal(cluster.get("p0").nextHop("p5"), "p1");
    assert.deepEqual(cluster.get("p5").routes(), {
      p0: "p4",
      p1: "p4",
      p2: "p4",
      p3: "p4",
      p4: "p4",
    });
    const received: string[] = [];
    cluster.get("p5").onMessage("ipam", (payload, from) => received.push(`${from}:${payload}`));
    cluster.network.setFaults({ drop: 0 });
    assert.ok(cluster.get("p0").send("p5", "ipam", "need-space"));
    assert.equal(cluster.get("p0").send("nobody", "ipam", "x"), false);
    cluster.clock.advance(1000);
    assert.deepEqual(received, ["p0:need-space"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a data change reaches every peer and is versioned by its owner", async () => {
  const cluster = new Cluster({ latencyMs: 2, jitterMs: 5 });
  try {
    for (let i = 0; i < 8; i++) {
      await cluster.add(`p${i}`, { peers: i ? [`p${Math.floor((i - 1) / 2)}`] : [] });
    }
    cluster.converge(8);
    const changed: string[] = [];
    cluster.get("p7").on("peer-changed", (p) => changed.push(`${p.name}:${p.data.datapath}`));
    const before = cluster.get("p7").peer("p3")!.version;
    cluster.get("p3").setLocalData("datapath", "vtep=10.0.0.4");
    cluster.clock.advance(2000);
    for (const mesh of cluster.meshes.values()) {
      const p3 = mesh.peer("p3")!;
      assert.equal(p3.data.datapath, "vtep=10.0.0.4");
      assert.equal(p3.version, before + 1);
    }
    assert.deepEqual(changed, ["p3:vtep=10.0.0.4"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a partition is noticed within the heartbeat bound and heals", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  const names = ["p0", "p1", "p2", "p3"];
  try {
    for (const [i, name] of names.entries()) {
      await cluster.add(name, {
        peers: names.slice(0, i),
        heartbeatMs: 500,
        deadAfterMs: 2000,
        retryMinMs: 200,
        retryMaxMs: 1000,
      });
    }
    cluster.converge(4);
    const down: string[] = [];
    cluster.get("p0").on("peer-down", (p) => down.push(p.name));
    const cutAt = cluster.clock.now();
    cluster.network.partition(["10.0.0.1", "10.0.0.2"], ["10.0.0.3", "10.0.0.4"]);
    while (down.length < 2) {
      cluster.clock.advance(100);
      assert.ok(cluster.clock.now() - cutAt <= 3500, `peers not marked down: ${down}`);
    }
    assert.deepEqual(down.sort(), ["p2", "p3"]);
    assert.equal(cluster.get("p0").peer("p2")!.reachable, false);
    assert.equal(cluster.get("p0").nextHop("p2"), undefined);
    cluster.network.heal();
    cluster.converge(4);
    assert.equal(cluster.get("p0").peer("p3")!.reachable, true);
    assert.ok(cluster.get("p0").metrics().terminations >= 2);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a restarted peer is marked down, then accepted back with a new incarnation", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  const options = { heartbeatMs: 500, deadAfterMs: 2000, retryMinMs: 200, retryMaxMs: 1000 };
  try {
    await cluster.add("p0", options);
    await cluster.add("p1", { ...options, peers: ["p0"] });
    await cluster.add("p2", { ...options, peers: ["p0", "p1"] });
    cluster.converge(3);
    const old = cluster.get("p2").incarnation;
    const events: string[] = [];
    cluster.get("p0").on("peer-down", (p) => events.push(`down:${p.name}`));
    cluster.get("p0").on("peer-up", (p) => events.push(`up:${p.name}`));
    // A crash: the process vanishes without closing its links.
    cluster.network.partition(["10.0.0.3"], ["10.0.0.1", "10.0.0.2"]);
    await cluster.get("p2").stop();
    cluster.clock.advance(3000);
    assert.deepEqual(events, ["down:p2"]);
    cluster.network.heal();
    cluster.clock.advance(10);
    const restarted = await cluster.add("p2", { ...options, peers: ["p0", "p1"] });
    assert.ok(restarted.incarnation > old);
    cluster.converge(3);
    assert.deepEqual(events, ["down:p2", "up:p2"]);
    for (const name of ["p0", "p1"]) {
      assert.equal(cluster.get(name).peer("p2")!.incarnation, restarted.incarnation);
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("simultaneous dials leave one connection, the one the lower name initiated", async () => {
  const cluster = new Cluster({ latencyMs: 3 });
  try {
    await cluster.add("p0", { peers: ["p1"] });
    await cluster.add("p1", { peers: ["p0"] });
    cluster.clock.advance(3000);
    for (const name of ["p0", "p1"]) {
      const open = cluster.network.listeners.get(Cluster.address(name))!.links.size;
      assert.equal(open, 1, `${name} keeps exactly one link`);
      assert.equal(cluster.get(name).metrics().connections.established, 1);
    }
    const [p0] = cluster.get("p0").connections().filter((c) => c.state === "established");
    const [p1] = cluster.get("p1").connections().filter((c) => c.state === "established");
    assert.deepEqual([p0.direction, p0.peer], ["outbound", "p1"]);
    assert.deepEqual([p1.direction, p1.peer], ["inbound", "p0"]);
    // Both targets count as satisfied: nobody keeps redialling.
    cluster.clock.advance(10_000);
    assert.equal(cluster.get("p1").metrics().connections.failed, 0);
    assert.equal(cluster.get("p1").metrics().connections.retrying, 0);
    assert.ok(cluster.get("p0").sessionKey("p1") === undefined, "no password, no key");
  } finally {
    await cluster.stop();
  }
});

Deno.test("forget stops reconnection; connect brings it back", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  const options = { heartbeatMs: 500, deadAfterMs: 2000, retryMinMs: 200, retryMaxMs: 400 };
  try {
    await cluster.add("p1", options);
    const p0 = await cluster.add("p0", { ...options, peers: ["p1"] });
    cluster.converge(2);
    assert.deepEqual(p0.targets(), ["10.0.0.2:6783"]);
    p0.forget("10.0.0.2");
    assert.deepEqual(p0.targets(), []);
    await cluster.get("p1").stop();
    cluster.meshes.delete("p1");
    cluster.clock.advance(500);
    await cluster.add("p1", options);
    cluster.clock.advance(10_000);
    assert.equal(cluster.get("p1").connections().length, 0, "the forgotten peer is not redialled");
    p0.connect("10.0.0.2");
    cluster.converge(2);
  } finally {
    await cluster.stop();
  }
});

Deno.test("peers that left are aged out everywhere and not resurrected", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  const options = {
    heartbeatMs: 500,
    deadAfterMs: 2000,
    ageOutMs: 5000,
    gossipIntervalMs: 1000,
    retryMaxMs: 1000,
  };
  try {
    await cluster.add("p0", options);
    await cluster.add("p1", { ...options, peers: ["p0"] });
    await cluster.add("p2", { ...options, peers: ["p1"] });
    cluster.converge(3);
    const removed: PeerStatus[] = [];
    cluster.get("p0").on("peer-removed", (p) => removed.push(p));
    await cluster.get("p2").stop();
    cluster.meshes.delete("p2");
    cluster.clock.advance(20_000);
    assert.deepEqual(removed.map((p) => p.name), ["p2"]);
    for (const mesh of cluster.meshes.values()) {
      assert.deepEqual(mesh.peers().map((p) => p.name), ["p0", "p1"]);
    }
    assert.equal(cluster.get("p0").digest(), cluster.get("p1").digest());
  } finally {
    await cluster.stop();
  }
});

Deno.test("a peer with the wrong password or none is refused and learns nothing", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  try {
    await cluster.add("p0", { password: "right" });
    await cluster.add("p1", { password: "right", peers: ["p0"] });
    cluster.converge(2);
    const wrong = await cluster.add("p2", { password: "wrong", peers: ["p0", "p1"] });
    const none = await cluster.add("p3", { peers: ["p0"] });
    cluster.clock.advance(5000);
    for (const outsider of [wrong, none]) {
      assert.deepEqual(outsider.peers().map((p) => p.name), [outsider.name]);
      const status = outsider.connections()[0];
      assert.notEqual(status.state, "established");
      assert.match(status.lastError ?? "", /password/);
    }
    assert.deepEqual(cluster.get("p0").peers().map((p) => p.name), ["p0", "p1"]);
    const key0 = cluster.get("p0").sessionKey("p1"), key1 = cluster.get("p1").sessionKey("p0");
    assert.equal(key0?.length, 32);
    assert.deepEqual(key0, key1);
  } finally {
    await cluster.stop();
  }
});

Deno.test("the connection limit refuses extra peers and discovery fills the mesh", async () => {
  const cluster = new Cluster({ latencyMs: 2 });
  try {
    await cluster.add("p0", { connLimit: 2 });
    await cluster.add("p1", { peers: ["p0"], discovery: true, gossipIntervalMs: 500 });
    await cluster.add("p2", { peers: ["p0"], discovery: true, gossipIntervalMs: 500 });
    cluster.clock.advance(1000);
    await cluster.add("p3", { peers: ["p0", "p1"], discovery: true, gossipIntervalMs: 500 });
    cluster.clock.advance(5000);
    const p0 = cluster.get("p0");
    assert.equal(p0.metrics().connections.established, 2);
    assert.ok(!p0.connections().some((c) => c.peer === "p3"), "p3 is over p0's limit");
    cluster.converge(4);
    // p2 was only given p0, yet learnt p1 and p3 through gossip and dialled them.
    const p2 = cluster.get("p2").connections().filter((c) => c.state === "established");
    assert.ok(p2.length >= 2, "discovery dialled peers learnt through gossip");
  } finally {
    await cluster.stop();
  }
});

Deno.test("arbitrary frames from an insider never break the mesh, at worst that link", async () => {
  const frameArb = fc.oneof(
    fc.record({
      t: fc.constantFrom(
        "gossip",
        "digest",
        "summary",
        "msg",
        "bcast",
        "hello",
        "auth",
        "ping",
        "zzz",
      ),
      id: fc.string(),
      r: fc.anything(),
      e: fc.oneof(fc.anything(), fc.array(fc.tuple(fc.string(), fc.string(), fc.anything()))),
      h: fc.anything(),
      src: fc.string(),
      dst: fc.constantFrom("p0", "p1", "nobody"),
      ch: fc.string(),
      p: fc.anything(),
      ttl: fc.oneof(fc.integer(), fc.double()),
    }, { requiredKeys: ["t"] }),
    fc.anything(),
  );
  const cluster = new Cluster({ latencyMs: 1 });
  try {
    await cluster.add("p0");
    await cluster.add("p1", { peers: ["p0"] });
    cluster.converge(2);
    const digest = cluster.get("p0").digest();
    let port = 1;
    const insiders: InsiderClient[] = [];
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 5 }), (frames) => {
        const insider = new InsiderClient(
          cluster.network.transport(`10.0.1.${port++ % 250}:6783`),
          Cluster.address("p0"),
          { name: `fuzzer${port}` },
        );
        // Sealed, so they get past the integrity check and reach the decoder and the mesh.
        for (const frame of frames) insider.send(frame ?? null);
        insiders.push(insider);
        cluster.clock.advance(200);
        insider.close();
        cluster.clock.advance(50);
        return Promise.resolve();
      }),
      { numRuns: 150 },
    );
    assert.ok(insiders.every((i) => i.ready), "every fuzzer got through the handshake");
    cluster.clock.advance(5000);
    assert.equal(cluster.get("p0").metrics().connections.established, 1);
    assert.equal(cluster.get("p0").nextHop("p1"), "p1");
    cluster.get("p0").setLocalData("x", "y");
    cluster.clock.advance(1000);
    assert.equal(cluster.get("p1").peer("p0")!.data.x, "y");
    assert.notEqual(cluster.get("p0").digest(), digest);
  } finally {
    await cluster.stop();
  }
});

Deno.test("broadcast reaches every peer once, one frame per tree link", async () => {
  const cluster = new Cluster({ latencyMs: 2, jitterMs: 3 });
  const names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"];
  try {
    // A full mesh: without the tree each peer would hear it from everyone.
    for (const [i, name] of names.entries()) await cluster.add(name, { peers: names.slice(0, i) });
    cluster.converge(names.length);
    const heard: string[] = [];
    for (const name of names) {
      cluster.get(name).onMessage(
        "ipam-state",
        (payload, from) => heard.push(`${name}<-${from}:${payload}`),
      );
    }
    let frames = 0;
    const deliver = cluster.network.deliver.bind(cluster.network);
    cluster.network.deliver = (from, frame) => {
      if (typeof frame === "string" && frame.includes(':{"t":"bcast"')) frames++;
      deliver(from, frame);
    };
    cluster.get("p4").broadcast("ipam-state", "ring-v7");
    cluster.clock.advance(1000);
    assert.deepEqual(
      heard.sort(),
      names.filter((n) => n !== "p4").map((n) => `${n}<-p4:ring-v7`).sort(),
    );
    assert.equal(frames, names.length - 1);
  } finally {
    await cluster.stop();
  }
});

Deno.test("a broadcast while views still disagree is delivered at most once per peer", async () => {
  const cluster = new Cluster({ latencyMs: 2, jitterMs: 5 });
  const names = ["p0", "p1", "p2", "p3", "p4", "p5"];
  try {
    for (const [i, name] of names.entries()) await cluster.add(name, { peers: names.slice(0, i) });
    const heard: string[] = [];
    for (const name of names) {
      cluster.get(name).onMessage(
        "c",
        (payload, from) => heard.push(`${name}<-${from}#${payload}`),
      );
    }
    for (let step = 0; step < 20; step++) {
      cluster.clock.advance(7);
      cluster.get(names[step % names.length]).broadcast("c", String(step));
    }
    cluster.clock.advance(1000);
    assert.ok(heard.length > 0);
    assert.equal(new Set(heard).size, heard.length, `duplicates in ${heard}`);
    assert.ok(heard.every((h) => !h.startsWith(`${h.split("<-")[1].split("#")[0]}<-`)));
  } finally {
    await cluster.stop();
  }
});
