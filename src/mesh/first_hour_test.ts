/**
 * The first hour on real machines, in simulated time: the same `--peers` list on every node
 * (this node included), a target that turns out to be this node, two live peers with one name,
 * and targets that cannot be reached, each visible in `diagnostics()`.
 */
import assert from "node:assert/strict";
import { SimCluster } from "./testing.ts";

Deno.test("the same --peers list on every node: each skips itself by address and converges", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const everyone = ["p0", "p1", "p2"];
  const dials: string[] = [];
  for (const name of everyone) {
    const mesh = await cluster.add(name, { peers: everyone });
    const transport = cluster.network.listeners.get(SimCluster.address(name))!;
    const dial = transport.dial.bind(transport);
    transport.dial = (address) => (dials.push(`${name}->${address}`), dial(address));
    assert.ok(mesh);
  }
  cluster.converge(3);
  cluster.clock.advance(120_000);
  for (const name of everyone) {
    const mesh = cluster.get(name);
    const own = mesh.connections().find((c) => c.address === SimCluster.address(name))!;
    assert.equal(own.state, "self", JSON.stringify(own));
    assert.equal(own.lastError, undefined);
    assert.deepEqual(mesh.metrics().connections, {
      connecting: 0,
      established: 2,
      failed: 0,
      retrying: 0,
      self: 1,
    });
    assert.deepEqual(mesh.diagnostics(), []);
    assert.ok(!dials.includes(`${name}->${SimCluster.address(name)}`), "never dialled itself");
  }
});

Deno.test("a target that answers as this very peer is shown as self and never redialled", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const p0 = await cluster.add("p0");
  // Another address of the same machine (think: a host name), unknown to the address check.
  cluster.network.listeners.set("10.9.9.9:6783", cluster.network.listeners.get("10.0.0.1:6783")!);
  let accepted = 0;
  const transport = cluster.network.listeners.get("10.0.0.1:6783")!;
  const onAccept = transport.onAccept!;
  transport.onAccept = (link) => (accepted++, onAccept(link));
  p0.connect("10.9.9.9");
  cluster.clock.advance(600_000);
  assert.equal(accepted, 1, "one connection to itself, then no more attempts");
  const status = p0.connections().find((c) => c.address === "10.9.9.9:6783")!;
  assert.equal(status.state, "self");
  assert.deepEqual(p0.diagnostics(), []);
});

Deno.test("two live peers with one name both report the collision, naming the other", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const options = { retryMinMs: 500, retryMaxMs: 4000 };
  const a = await cluster.add("px", options, { label: "a", address: "10.0.0.1:6783" });
  const b = await cluster.add("px", { ...options, peers: ["10.0.0.1"] }, {
    label: "b",
    address: "10.0.0.2:6783",
  });
  cluster.clock.advance(60_000);
  const [fromA] = a.diagnostics(), [fromB] = b.diagnostics();
  assert.equal(fromA?.code, "name-collision", JSON.stringify(a.diagnostics()));
  assert.equal(fromB?.code, "name-collision", JSON.stringify(b.diagnostics()));
  assert.equal(fromA.severity, "error");
  assert.match(fromA.message, /10\.0\.0\.2:6783/);
  assert.match(fromB.message, /10\.0\.0\.1:6783/);
  assert.match(fromA.fix, /--name/);
  assert.equal(a.metrics().connections.established, 0);
  // Backoff, not a tight loop: at most a handful of attempts in a minute.
  assert.ok(b.metrics().terminations === 0);
});

Deno.test("twins that only meet through gossip (a clone with its state dir) stop overruling each other and both report it", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const logs = new Map<string, string[]>();
  const log = (label: string) => (message: string) =>
    logs.set(label, [...(logs.get(label) ?? []), message]);
  await cluster.add("p1", { log: log("p1") });
  await cluster.add("p2", { peers: ["p1"], log: log("p2") });
  // Two machines named "px": one dials p1, the other p2; they never connect to each other.
  const a = await cluster.add("px", { peers: ["p1"], log: log("a") }, {
    label: "a",
    address: "10.0.0.7:6783",
  });
  cluster.clock.advance(2000);
  // A machine cloned with its state dir: same name, same identity key.
  const b = await cluster.add("px", { peers: ["p2"], log: log("b") }, {
    label: "b",
    address: "10.0.0.8:6783",
    key: cluster.state.get("a")!.key,
  });
  cluster.clock.advance(60_000);
  for (const [label, twin, other] of [["a", a, "10.0.0.8"], ["b", b, "10.0.0.7"]] as const) {
    const collision = twin.diagnostics().find((d) => d.code === "name-collision");
    assert.ok(collision, `${label}: ${JSON.stringify(twin.diagnostics())}`);
    assert.match(collision.message, new RegExp(other.replaceAll(".", "\\.")));
    const overrules = (logs.get(label) ?? []).filter((m) => m.startsWith("overruling"));
    assert.ok(overrules.length <= 2, `${label} overruled ${overrules.length} times`);
  }
  // No endless overrule loop: the records stop changing.
  const settled = cluster.get("p1").peer("px")!;
  cluster.clock.advance(60_000);
  const later = cluster.get("p1").peer("px")!;
  assert.deepEqual([later.incarnation, later.version], [settled.incarnation, settled.version]);
});

Deno.test("targets without a route or refusing are diagnosed with the address and the error", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const p0 = await cluster.add("p0", { peers: ["p1", "p2"], retryMaxMs: 5000 });
  await cluster.add("p1");
  cluster.network.partition(["10.0.0.1"], ["10.0.0.2"]);
  cluster.clock.advance(20_000);
  const byCode = new Map(p0.diagnostics().map((d) => [d.code, d]));
  assert.match(byCode.get("no-route-to-peer")?.message ?? "", /10\.0\.0\.2:6783: connect timeout/);
  assert.match(byCode.get("peer-connection-failed")?.message ?? "", /10\.0\.0\.3:6783.*refused/);
  cluster.network.heal();
  cluster.clock.advance(20_000);
  assert.deepEqual(p0.diagnostics().map((d) => d.code), ["peer-connection-failed"]);
});

Deno.test("a second peer taking a known name with another key is refused and told why", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const options = { retryMinMs: 500, retryMaxMs: 4000 };
  await cluster.add("p1", options);
  const p2 = await cluster.add("p2", { ...options, peers: ["p1"] });
  const a = await cluster.add("px", { ...options, peers: ["p1"] }, {
    label: "a",
    address: "10.0.0.7:6783",
  });
  cluster.converge(3);
  // Another installation given the same --name: its own key.
  const b = await cluster.add("px", { ...options, peers: ["p2"] }, {
    label: "b",
    address: "10.0.0.8:6783",
  });
  cluster.clock.advance(30_000);
  const mismatch = p2.diagnostics().find((d) => d.code === "key-mismatch");
  assert.ok(mismatch, JSON.stringify(p2.diagnostics()));
  assert.match(mismatch.message, /"px".*10\.0\.0\.8/);
  assert.match(mismatch.fix, /weft peer rebind px --fingerprint SHA256:/);
  const collision = b.diagnostics().find((d) => d.code === "name-collision");
  assert.ok(collision, JSON.stringify(b.diagnostics()));
  assert.match(collision.message, /10\.0\.0\.3:6783/);
  // The first holder of the name is untouched: still everyone's px.
  for (const name of ["p1", "p2"]) {
    assert.equal(cluster.get(name).peer("px")!.incarnation, a.incarnation);
  }
  assert.equal(b.metrics().connections.established, 0);
});
