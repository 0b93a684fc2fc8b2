import assert from "node:assert/strict";
import { storeFailureOf } from "./sqlite_store.ts";
import { MemoryStore, storeSuite, tempSqliteStore, unclosable } from "./testing.ts";

storeSuite("MemoryStore", () => {
  const store = new MemoryStore();
  // A memory store "reopens" as itself minus the closed flag: the shared object stands in for
  // the process memory a restarted simulation peer keeps.
  return { store: unclosable(store), reopen: () => unclosable(store), [Symbol.dispose]() {} };
});

storeSuite("SqliteStore", () => {
  const temp = tempSqliteStore();
  return {
    store: temp.open(),
    reopen: () => temp.open(),
    [Symbol.dispose]: () => temp[Symbol.dispose](),
  };
});

Deno.test("SQLite errors about the disk are told apart from the rest", () => {
  assert.equal(storeFailureOf(new Error("database or disk is full")), "full");
  assert.equal(storeFailureOf(new Error("attempt to write a readonly database")), "read-only");
  assert.equal(storeFailureOf(new Error("disk I/O error")), "io");
  assert.equal(
    storeFailureOf(new Error("UNIQUE constraint failed: allocations.address")),
    undefined,
  );
  assert.equal(storeFailureOf(new RangeError("offset out of bounds")), undefined);
});
