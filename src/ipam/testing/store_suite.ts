/**
 * One behaviour suite every `Store` must pass, run by store_test.ts against each
 * implementation (the hono habit: one suite, many implementations).
 */
import assert from "node:assert/strict";
import { DuplicateAllocationError, type Store } from "../store.ts";

/** A store under test, a way to reopen its state (a restarted agent), and its clean-up. */
export interface OpenedStore extends Disposable {
  store: Store;
  reopen: () => Store;
}

export function storeSuite(name: string, make: () => OpenedStore) {
  const test = (title: string, fn: (opened: OpenedStore) => void) =>
    Deno.test(`${name}: ${title}`, () => {
      using opened = make();
      fn(opened);
    });

  test("the requesting network is kept with the allocation, across a reopen", ({ store, reopen }) => {
    store.insertAllocation({
      containerId: "c",
      ifname: "eth0",
      address: 7,
      createdAt: 1,
      network: "weft-a",
    });
    store.insertAllocation({ containerId: "c", ifname: "net1", address: 8, createdAt: 1 });
    const again = reopen();
    const byIf = new Map(again.loadAllocations().map((a) => [a.ifname, a]));
    assert.equal(byIf.get("eth0")?.network, "weft-a");
    assert.equal(byIf.get("net1")?.network, undefined);
  });

  test("inserted allocations load back", ({ store }) => {
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 5 });
    store.insertAllocation({ containerId: "c1", ifname: "net1", address: 11, createdAt: 6 });
    const loaded = store.loadAllocations().sort((a, b) => a.address - b.address);
    assert.deepEqual(loaded, [
      { containerId: "c1", ifname: "eth0", address: 10, createdAt: 5 },
      { containerId: "c1", ifname: "net1", address: 11, createdAt: 6 },
    ]);
    store.close();
  });

  test("a taken address or key is refused", ({ store }) => {
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 1 });
    assert.throws(
      () =>
        store.insertAllocation({ containerId: "c2", ifname: "eth0", address: 10, createdAt: 1 }),
      DuplicateAllocationError,
    );
    assert.throws(
      () =>
        store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 12, createdAt: 1 }),
      DuplicateAllocationError,
    );
    assert.equal(store.loadAllocations().length, 1);
    store.close();
  });

  test("delete frees the address, deleting twice is fine", ({ store }) => {
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 10, createdAt: 1 });
    store.deleteAllocation("c1", "eth0");
    store.deleteAllocation("c1", "eth0");
    store.insertAllocation({ containerId: "c2", ifname: "eth0", address: 10, createdAt: 2 });
    assert.deepEqual(store.loadAllocations().map((a) => a.containerId), ["c2"]);
    store.clearAllocations();
    assert.deepEqual(store.loadAllocations(), []);
    store.close();
  });

  test("values overwrite and a failed transaction leaves nothing", ({ store }) => {
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

  test("a failed transaction also undoes deletes and clears", ({ store }) => {
    store.insertAllocation({ containerId: "a", ifname: "eth0", address: 1, createdAt: 1 });
    store.insertAllocation({ containerId: "b", ifname: "eth0", address: 2, createdAt: 1 });
    assert.throws(() =>
      store.transaction(() => {
        store.deleteAllocation("a", "eth0");
        store.clearAllocations();
        store.insertAllocation({ containerId: "a", ifname: "eth0", address: 2, createdAt: 9 });
        throw new Error("boom");
      }), /boom/);
    const back = store.loadAllocations().map((a) => `${a.containerId}:${a.address}:${a.createdAt}`);
    assert.deepEqual(back.sort(), ["a:1:1", "b:2:1"]);
    store.close();
  });

  test("state survives reopening where the store persists", ({ store, reopen }) => {
    store.insertAllocation({ containerId: "c1", ifname: "eth0", address: 7, createdAt: 1 });
    store.setValue("ring", "x");
    store.close();
    const again = reopen();
    assert.equal(again.getValue("ring"), "x");
    assert.deepEqual(again.loadAllocations().map((a) => a.address), [7]);
    again.close();
  });
}
