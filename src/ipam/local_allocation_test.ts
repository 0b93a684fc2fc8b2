/**
 * Allocation on one node, as the agent serves CNI ADD/DEL/GC: a peer that owns the whole range
 * (consensus=1), over each store implementation.
 */
import assert from "node:assert/strict";
import { formatIp, parseCidr, parseIp } from "../net/cidr.ts";
import { ClusterIpam } from "./cluster_ipam.ts";
import { IpamConflictError, NoSpaceError } from "./errors.ts";
import type { Store } from "./store.ts";
import {
  MemoryNetwork,
  MemorySigners,
  MemoryStore,
  tempSqliteStore,
  unclosable,
} from "./testing.ts";

interface Backend {
  name: string;
  /** A store and a way to reopen the same state (a restarted agent). */
  make(): { store: Store; reopen(): Store } & Disposable;
}

const backends: Backend[] = [
  {
    name: "memory",
    make() {
      // The memory store cannot outlive close(), so "reopen" hands back the same live object.
      const shared = unclosable(new MemoryStore());
      return { store: shared, reopen: () => shared, [Symbol.dispose]() {} };
    },
  },
  {
    name: "sqlite",
    make() {
      const temp = tempSqliteStore();
      return {
        store: temp.open(),
        reopen: () => temp.open(),
        [Symbol.dispose]: () => temp[Symbol.dispose](),
      };
    },
  },
];

function open(store: Store, range = "10.32.0.0/24", now = () => 1000) {
  return ClusterIpam.open({
    store,
    clusterRange: parseCidr(range),
    peerName: "node-a",
    transport: new MemoryNetwork().join("node-a"),
    init: { mode: "consensus", peers: 1 },
    signer: new MemorySigners().for("node-a"),
    now,
  });
}

for (const backend of backends) {
  const test = (name: string, fn: (b: ReturnType<Backend["make"]>) => Promise<void>) =>
    Deno.test(`one node (${backend.name}): ${name}`, async () => {
      using made = backend.make();
      await fn(made);
    });

  test("skips the network address and is idempotent per container and interface", async (b) => {
    const ipam = await open(b.store);
    const first = await ipam.allocate("c1");
    assert.equal(formatIp(first.address), "10.32.0.1");
    assert.equal(first.ifname, "eth0");
    assert.deepEqual(await ipam.allocate("c1"), first);
    const second = await ipam.allocate("c1", { ifname: "net1" });
    assert.notEqual(second.address, first.address);
    assert.deepEqual(ipam.lookup("c1").map((a) => a.ifname).sort(), ["eth0", "net1"]);
    ipam.close();
  });

  test("hands out every usable address once, then NoSpaceError", async (b) => {
    const ipam = await open(b.store, "10.32.0.0/28");
    const got = await Promise.all(
      Array.from({ length: 14 }, (_, i) => ipam.allocate(`c${i}`)),
    );
    const addresses = got.map((a) => formatIp(a.address));
    assert.equal(new Set(addresses).size, 14);
    assert.ok(!addresses.includes("10.32.0.0") && !addresses.includes("10.32.0.15"));
    await assert.rejects(ipam.allocate("c-extra"), NoSpaceError);
    assert.deepEqual(
      { size: ipam.status().size, used: ipam.status().used, free: ipam.status().free },
      { size: 14, used: 14, free: 0 },
    );
    ipam.close();
  });

  test("200 concurrent allocations are distinct", async (b) => {
    const ipam = await open(b.store, "10.32.0.0/16");
    const got = await Promise.all(
      Array.from({ length: 200 }, (_, i) => ipam.allocate(`c${i % 150}`, { ifname: `e${i % 2}` })),
    );
    const byKey = new Map(got.map((a) => [`${a.containerId}/${a.ifname}`, a.address]));
    assert.equal(new Set(byKey.values()).size, byKey.size);
    assert.equal(ipam.list().length, byKey.size);
    ipam.close();
  });

  test("next-fit: a released address is reused only after the rest of the range", async (b) => {
    const ipam = await open(b.store, "10.32.0.0/29");
    const a = await ipam.allocate("a");
    await ipam.allocate("b");
    assert.deepEqual(ipam.release("a").map((x) => x.address), [a.address]);
    const next = await ipam.allocate("c");
    assert.notEqual(next.address, a.address);
    for (const id of ["d", "e", "f"]) await ipam.allocate(id);
    // Only the freed one is left now, so it comes back last.
    assert.equal((await ipam.allocate("g")).address, a.address);
    ipam.close();
  });

  test("allocations and the cursor survive a restart", async (b) => {
    const ipam = await open(b.store);
    const a = await ipam.allocate("a");
    const c = await ipam.allocate("c", { ifname: "net9" });
    ipam.release("a");
    ipam.close();
    const again = await open(b.reopen());
    assert.deepEqual(again.list(), [c]);
    const d = await again.allocate("d");
    assert.ok(d.address > c.address, "the cursor continues after the last allocation");
    assert.notEqual(d.address, a.address);
    again.close();
  });

  test("subnets: allocation stays inside, skips the subnet's own network/broadcast", async (b) => {
    const ipam = await open(b.store);
    const subnet = parseCidr("10.32.0.64/30");
    const x = await ipam.allocate("x", { subnet });
    const y = await ipam.allocate("y", { subnet });
    assert.deepEqual([x.address, y.address].map(formatIp), ["10.32.0.65", "10.32.0.66"]);
    await assert.rejects(ipam.allocate("z", { subnet }), NoSpaceError);
    await assert.rejects(
      ipam.allocate("x", { subnet: parseCidr("10.32.0.128/25") }),
      IpamConflictError,
    );
    await assert.rejects(ipam.allocate("w", { subnet: parseCidr("10.33.0.0/24") }), RangeError);
    await assert.rejects(ipam.allocate(""), TypeError);
    ipam.close();
  });

  test("release of one interface, of all, and of unknown containers", async (b) => {
    const ipam = await open(b.store);
    await ipam.allocate("a");
    await ipam.allocate("a", { ifname: "net1" });
    assert.deepEqual(ipam.release("a", "net1").map((x) => x.ifname), ["net1"]);
    assert.deepEqual(ipam.release("a", "net1"), []);
    assert.deepEqual(ipam.release("nobody"), []);
    assert.equal(ipam.release("a").length, 1);
    assert.deepEqual(ipam.list(), []);
    ipam.close();
  });

  test("retainOnly releases everything not valid and not kept", async (b) => {
    const ipam = await open(b.store);
    for (const id of ["a", "b", "c", "gw"]) await ipam.allocate(id);
    await ipam.allocate("a", { ifname: "net1" });
    const released = ipam.retainOnly([{ containerId: "a", ifname: "eth0" }], {
      keep: (x) => x.containerId === "gw",
    });
    assert.deepEqual(released.map((x) => `${x.containerId}/${x.ifname}`).sort(), [
      "a/net1",
      "b/eth0",
      "c/eth0",
    ]);
    assert.deepEqual(ipam.list().map((x) => x.containerId).sort(), ["a", "gw"]);
    ipam.close();
  });

  test("status reports owned ranges as a list with usage", async (b) => {
    const ipam = await open(b.store, "10.32.0.0/12");
    await ipam.allocate("a");
    const status = ipam.status();
    assert.equal(status.range, "10.32.0.0/12");
    assert.deepEqual(status.owned, [
      { start: "10.32.0.0", end: "10.47.255.255", size: 2 ** 20 - 2, used: 1 },
    ]);
    assert.equal(status.free, 2 ** 20 - 3);
    assert.equal(status.ready, true);
    ipam.close();
  });

  test("reopening for another range with live allocations is refused", async (b) => {
    const ipam = await open(b.store);
    await ipam.allocate("a");
    ipam.close();
    await assert.rejects(open(b.reopen(), "10.40.0.0/16"), IpamConflictError);
  });
}

Deno.test("one node: createdAt comes from the injected clock", async () => {
  const ipam = await open(new MemoryStore(), "10.32.0.0/24", () => 123456);
  assert.equal((await ipam.allocate("a")).createdAt, 123456);
  assert.equal(parseIp("10.32.0.1"), (await ipam.allocate("a")).address);
});
