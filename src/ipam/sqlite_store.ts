/**
 * The SQLite store (node:sqlite, synchronous). The schema repeats the allocator's invariants
 * as constraints (primary key on (container, interface), UNIQUE address), so a logic bug
 * surfaces as a failed insert instead of two pods sharing an address.
 */
import { DatabaseSync } from "node:sqlite";
import { type Allocation, DuplicateAllocationError, type Store } from "./store.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS allocations (
  container_id TEXT NOT NULL,
  ifname TEXT NOT NULL,
  address INTEGER NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  network TEXT,
  PRIMARY KEY (container_id, ifname)
);
CREATE TABLE IF NOT EXISTS ipam_values (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

interface AllocationRow {
  container_id: string;
  ifname: string;
  address: number;
  created_at: number;
  network: string | null;
}

class SqliteStore implements Store {
  #db: DatabaseSync;
  #depth = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  loadAllocations(): Allocation[] {
    const rows = this.#db
      .prepare("SELECT container_id, ifname, address, created_at, network FROM allocations")
      .all() as unknown as AllocationRow[];
    return rows.map((row) => ({
      containerId: row.container_id,
      ifname: row.ifname,
      address: Number(row.address),
      createdAt: Number(row.created_at),
      ...(row.network === null ? {} : { network: row.network }),
    }));
  }

  insertAllocation(allocation: Allocation): void {
    try {
      this.#db
        .prepare(
          "INSERT INTO allocations (container_id, ifname, address, created_at, network) VALUES (?, ?, ?, ?, ?)",
        )
        .run(
          allocation.containerId,
          allocation.ifname,
          allocation.address,
          allocation.createdAt,
          allocation.network ?? null,
        );
    } catch (error) {
      if (String(error).includes("UNIQUE") || String(error).includes("PRIMARY")) {
        throw new DuplicateAllocationError(
          `Cannot record address ${allocation.address} for container "${allocation.containerId}" interface "${allocation.ifname}": already taken`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  deleteAllocation(containerId: string, ifname: string): void {
    this.#db
      .prepare("DELETE FROM allocations WHERE container_id = ? AND ifname = ?")
      .run(containerId, ifname);
  }

  clearAllocations(): void {
    this.#db.exec("DELETE FROM allocations");
  }

  getValue(key: string): string | undefined {
    const row = this.#db.prepare("SELECT value FROM ipam_values WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  setValue(key: string, value: string): void {
    this.#db
      .prepare(
        "INSERT INTO ipam_values (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      )
      .run(key, value);
  }

  transaction<T>(fn: () => T): T {
    // Nested calls join the outer transaction; SAVEPOINTs would also work but nothing needs them.
    if (this.#depth > 0) return fn();
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    } finally {
      this.#depth--;
    }
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}

/**
 * Opens (creating if needed) the IPAM database at `path`. WAL and a busy timeout let a
 * second process (e.g. `weft status` reading the file) coexist with the agent; synchronous=FULL
 * because an allocation forgotten after a power cut is an address handed out twice.
 */
export function openSqliteStore(path: string): Store {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path);
  } catch (error) {
    throw new Error(`Cannot open IPAM database "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;");
  db.exec(SCHEMA);
  // state files written before allocations recorded their network gain the column, empty
  const columns = db.prepare("PRAGMA table_info(allocations)").all() as Array<{ name: string }>;
  if (!columns.some((c) => c.name === "network")) {
    db.exec("ALTER TABLE allocations ADD COLUMN network TEXT");
  }
  return new SqliteStore(db);
}
