/**
 * One behaviour suite every `Store` must pass, run by store_test.ts against each
 * implementation (the hono habit: one suite, many implementations).
 */
import assert from "node:assert/strict";
import { DuplicateAllocationError, type Store } from "./store.ts";

export function storeSuite(name: string, open: () => { store: Store; reopen: () => Store }) {
  Deno.test(`${name}: inserted allocations load back`, () => {
    const { store } = open();
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 5 });
    store.insertAllocation({ containerId: "c1", ifname: "net1", address: 11, createdAt: 6 });
    const loaded = store.loadAllocations().sort((a, b) => a.address - b.address);
    assert.deepEqual(loaded, [
      { containerId: "c1", ifname: "eth0", address: 10, createdAt: 5 },
      { containerId: "c1", ifname: "net1", address: 11, createdAt: 6 },
    ]);
    store.close();
  });

  Deno.test(`${name}: a taken address or key is refused`, () => {
    const { store } = open();
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 1 });
    assert.throws(
      () => store.insertAllocation({ containerId: "c2", ifname: "eth0", address: 10, createdAt: 1 }),
      DuplicateAllocationError,
    );
    assert.throws(
      () => store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 12, createdAt: 1 }),
      DuplicateAllocationError,
    );
    assert.equal(store.loadAllocations().length, 1);
    store.close();
  });

  Deno.test(`${name}: delete frees the address, deleting twice is fine`, () => {
    const { store } = open();
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 1 });
    store.deleteAllocation("c1", "eth0");
    store.deleteAllocation("c1", "eth0");
    store.insertAllocation({ containerId: "c2", ifname: "eth0", address: 10, createdAt: 2 });
    assert.deepEqual(store.loadAllocations().map((a) => a.containerId), ["c2"]);
    store.clearAllocations();
    assert.deepEqual(store.loadAllocations(), []);
    store.close();
  });

  Deno.test(`${name}: values overwrite and a failed transaction leaves nothing`, () => {
    const { store } = open();
    assert.equal(store.getValue("k"), undefined);
    store.setValue("k", "1");
    store.setValue("k", "2");
    assert.equal(store.getValue("k"), "2");
    assert.throws(() =>
      store.transaction(() => {
        store.setValue("k", "3");
        store.insertAllocation({ containerId: "c", ifname: "eth0", address: 1, createdAt: 1 });
        throw new Error("boom");
      }), /boom/);
    assert.equal(store.getValue("k"), "2");
    assert.deepEqual(store.loadAllocations(), []);
    assert.equal(store.transaction(() => 42), 42);
    store.close();
  });

  Deno.test(`${name}: state survives reopening where the store persists`, () => {
    const { store, reopen } = open();
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 7, createdAt: 1 });
    store.setValue("ring", "x");
    store.close();
    const again = reopen();
    assert.equal(again.getValue("ring"), "x");
    assert.deepEqual(again.loadAllocations().map((a) => a.address), [7]);
    again.close();
  });
}
