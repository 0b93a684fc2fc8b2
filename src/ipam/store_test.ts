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
