import { MemoryStore } from "./store.ts";
import { openSqliteStore } from "./sqlite_store.ts";
import { storeSuite, unclosable } from "./store_suite.ts";

storeSuite("MemoryStore", () => {
  const store = new MemoryStore();
  // A memory store "reopens" as itself minus the closed flag: the shared object stands in for
  // the process memory a restarted simulation peer keeps.
  return { store: unclosable(store), reopen: () => unclosable(store) };
});

storeSuite("SqliteStore", () => {
  const dir = Deno.makeTempDirSync({ prefix: "weft-ipam-" });
  return {
    store: openSqliteStore(`${dir}/ipam.db`),
    reopen: () => openSqliteStore(`${dir}/ipam.db`),
    cleanup: () => Deno.removeSync(dir, { recursive: true }),
  };
});
