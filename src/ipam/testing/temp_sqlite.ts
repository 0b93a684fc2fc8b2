/** A SQLite store in a temporary directory that disappears with the fixture (`using`). */
import { openSqliteStore } from "../sqlite_store.ts";
import type { Store } from "../store.ts";

export interface TempSqliteStore extends Disposable {
  /** The database file. */
  readonly path: string;
  /** Opens (again) the same file: what a restarted agent finds. */
  open(): Store;
}

export function tempSqliteStore(): TempSqliteStore {
  const dir = Deno.makeTempDirSync({ prefix: "weft-ipam-" });
  const path = `${dir}/ipam.db`;
  const opened: Store[] = [];
  return {
    path,
    open() {
      const store = openSqliteStore(path);
      opened.push(store);
      return store;
    },
    [Symbol.dispose]() {
      for (const store of opened) store.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}
