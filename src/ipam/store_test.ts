import { MemoryStore, type Store } from "./store.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { storeSuite } from "./store_suite.ts";

storeSuite("MemoryStore", () => {
  const store = new MemoryStore();
  // A memory store "reopens" as itself minus the closed flag: the shared object stands in for
  // the process memory a restarted simulation peer keeps.
  return { store: reopenable(store), reopen: () => reopenable(store) };
});

storeSuite("SqliteStore", () => {
  const path = Deno.makeTempFileSync({ prefix: "weft-ipam-", suffix: ".db" });
  return { store: openSqliteStore(path), reopen: () => openSqliteStore(path) };
});

function reopenable(inner: Store): Store {
  return {
    loadAllocations: () => inner.loadAllocations(),
    insertAllocation: (a) => inner.insertAllocation(a),
    deleteAllocation: (c, i) => inner.deleteAllocation(c, i),
    clearAllocations: () => inner.clearAllocations(),
    getValue: (k) => inner.getValue(k),
    setValue: (k, v) => inner.setValue(k, v),
    transaction: (fn) => inner.transaction(fn),
    close: () => {},
  };
}
