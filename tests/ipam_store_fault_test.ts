/**
 * The IPAM's SQLite state on a real file system that runs full or is read-only (a small tmpfs
 * of the test's own, and a read-only bind mount of it): the error is a StoreUnavailableError
 * naming the file, the failed step leaves nothing in memory or on disk (no address handed out,
 * no give recorded or sent), and service resumes by itself once there is space again.
 * Needs root (mount): run it with /work/bin/ktest.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { parseCidr } from "../src/net/cidr.ts";
import {
  ClusterIpam,
  NoSpaceError,
  openSqliteStore,
  StoreUnavailableError,
} from "../src/ipam/mod.ts";
import { MemoryNetwork, MemorySigners, MemoryStore } from "../src/ipam/testing.ts";
import { tmpfs } from "./support/tmpfs.ts";

const RANGE = parseCidr("10.32.0.0/24");

/** Allocations as another reader of the file sees them (what a restarted agent would find). */
function onDisk(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare("SELECT container_id FROM allocations ORDER BY address").all();
    return rows.map((row) => String(row.container_id));
  } finally {
    db.close();
  }
}

function ringOnDisk(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT value FROM ipam_values WHERE key = 'ring'").get();
    return String(row?.value);
  } finally {
    db.close();
  }
}

/** Delivers messages and ticks both peers until `promise` settles, as the event loop would. */
async function drive<T>(network: MemoryNetwork, peers: ClusterIpam[], promise: Promise<T>) {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  for (let round = 0; round < 200 && !done; round++) {
    for (let k = 0; k < 5 && !done; k++) await null;
    if (network.pending > 0) network.deliver();
    else peers.forEach((p) => p.tick());
  }
  return await promise;
}

Deno.test("a full state disk: nothing half done, the error names the file, service resumes", async () => {
  await using disk = await tmpfs({ sizeKiB: 512 });
  const path = `${disk.path}/weft.db`;
  let clock = 1_000_000;
  const network = new MemoryNetwork();
  const signers = new MemorySigners();
  using donor = await ClusterIpam.open({
    store: openSqliteStore(path),
    clusterRange: RANGE,
    peerName: "donor",
    transport: network.join("donor"),
    init: { mode: "consensus", peers: 1 },
    signer: signers.for("donor"),
    now: () => clock,
  });
  using asker = await ClusterIpam.open({
    store: new MemoryStore(),
    clusterRange: RANGE,
    peerName: "asker",
    transport: network.join("asker"),
    init: { mode: "observer" },
    signer: signers.for("asker"),
    now: () => clock,
  });
  const peers = [donor, asker];
  for (const p of peers) p.gossip();
  network.settle();
  const held = [await donor.allocate("pod-1"), await donor.allocate("pod-2")];
  const ring = donor.ringState();

  const filler = await disk.fill();
  await assert.rejects(donor.allocate("pod-3"), (error: Error) => {
    assert.ok(error instanceof StoreUnavailableError, String(error));
    assert.equal(error.reason, "full");
    assert.equal(error.path, path);
    assert.match(error.message, /disk is full/);
    return true;
  });
  assert.deepEqual(donor.list(), held, "no address handed out");
  assert.deepEqual(onDisk(path), ["pod-1", "pod-2"], "nothing half written");

  // A give the donor cannot record is not made: the asker hears "none" and gets no space.
  await assert.rejects(drive(network, peers, asker.allocate("far-pod")), (error: Error) => {
    assert.ok(error instanceof NoSpaceError, String(error));
    assert.match(error.message, /cannot record a give/);
    return true;
  });
  assert.equal(donor.ringState(), ring, "the donor's ring did not change");
  assert.equal(asker.status().size, 0, "no give reached the asker");
  clock += 1000;
  donor.tick();
  const problem = donor.diagnostics().find((d) => d.code === "store-unavailable");
  assert.ok(problem, JSON.stringify(donor.diagnostics()));
  assert.ok(problem.message.includes(path));

  // Space returns: the next tick's write succeeds, and everything works again.
  await filler.release();
  clock += 1000;
  donor.tick();
  assert.deepEqual(donor.diagnostics(), []);
  const third = await donor.allocate("pod-3");
  assert.ok(!held.some((a) => a.address === third.address));
  const far = await drive(network, peers, asker.allocate("far-pod"));
  assert.ok(!donor.list().some((a) => a.address === far.address));
  assert.deepEqual(onDisk(path), ["pod-1", "pod-2", "pod-3"]);
  assert.notEqual(ringOnDisk(path), ring, "the give is on the donor's disk");
});

Deno.test("a read-only or full state directory at start: the error says which and names the file", async () => {
  await using disk = await tmpfs({ sizeKiB: 512 });
  const store = openSqliteStore(`${disk.path}/weft.db`);
  store.setValue("ring", "null");
  store.close();
  const view = await disk.readOnlyView();
  for (const name of ["weft.db", "new.db"]) {
    assert.throws(() => openSqliteStore(`${view}/${name}`), (error: Error) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.equal(error.reason, "read-only");
      assert.equal(error.path, `${view}/${name}`);
      assert.match(error.message, /read-only.*Make the state directory writable/);
      return true;
    });
  }
  const filler = await disk.fill();
  assert.throws(() => openSqliteStore(`${disk.path}/fresh.db`), (error: Error) => {
    assert.ok(error instanceof StoreUnavailableError, String(error));
    assert.equal(error.reason, "full");
    return true;
  });
  await filler.release();
  openSqliteStore(`${disk.path}/fresh.db`).close();
});
