/**
 * The SQLite store (node:sqlite, synchronous). The schema repeats the allocator's invariants
 * as constraints (primary key on (container, interface), UNIQUE address), so a logic bug
 * surfaces as a failed insert instead of two pods sharing an address.
 *
 * A full disk, a read-only file system or an I/O error becomes a StoreUnavailableError that
 * names the file and what to do, and a failed transaction is rolled back whole (SQLite may
 * already have rolled it back by itself, e.g. on SQLITE_FULL), so the caller can treat the
 * write as never made and simply try again later.
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import { type StoreFailure, StoreUnavailableError } from "./errors.ts";
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

/**
 * What a SQLite (or file system) error says about the disk, or undefined when it is about
 * something else (a constraint, a bug). node:sqlite gives only the message, so this reads it.
 */
export function storeFailureOf(error: unknown): StoreFailure | undefined {
  const text = String((error as Error)?.message ?? error).toLowerCase();
  if (/database or disk is full|no space left|sqlite_full/.test(text)) return "full";
  if (/readonly database|read-only file system|sqlite_readonly/.test(text)) return "read-only";
  if (/disk i\/o error|i\/o error|sqlite_ioerr|unable to open database file/.test(text)) {
    return "io";
  }
  return undefined;
}

/** The StoreUnavailableError for `error` on database `path`, or `error` itself. */
function unavailable(error: unknown, path: string, reason = storeFailureOf(error)): unknown {
  if (reason === undefined || error instanceof StoreUnavailableError) return error;
  const detail = (error as Error)?.message ?? String(error);
  const text = {
    full: `Cannot write the IPAM state ${path}: the disk is full (${detail}). Free space on ` +
      `the file system that holds it`,
    "read-only": `Cannot write the IPAM state ${path}: it is read-only (${detail}). Make the ` +
      `state directory writable (a read-write mount, or another --state-dir)`,
    io: `Cannot use the IPAM state ${path}: I/O error (${detail}). Check the disk and the ` +
      `kernel log (dmesg)`,
  }[reason];
  return new StoreUnavailableError(text, reason, path, { cause: error });
}

class SqliteStore implements Store {
  #db: DatabaseSync;
  #path: string;
  #depth = 0;

  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
  }

  loadAllocations(): Allocation[] {
    const rows = this.#guard(() =>
      this.#db
        .prepare("SELECT container_id, ifname, address, created_at, network FROM allocations")
        .all() as unknown as AllocationRow[]
    );
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
      throw unavailable(error, this.#path);
    }
  }

  deleteAllocation(containerId: string, ifname: string): void {
    this.#guard(() =>
      this.#db
        .prepare("DELETE FROM allocations WHERE container_id = ? AND ifname = ?")
        .run(containerId, ifname)
    );
  }

  clearAllocations(): void {
    this.#guard(() => this.#db.exec("DELETE FROM allocations"));
  }

  getValue(key: string): string | undefined {
    const row = this.#guard(() =>
      this.#db.prepare("SELECT value FROM ipam_values WHERE key = ?").get(key) as
        | { value: string }
        | undefined
    );
    return row?.value;
  }

  setValue(key: string, value: string): void {
    this.#guard(() =>
      this.#db
        .prepare(
          "INSERT INTO ipam_values (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .run(key, value)
    );
  }

  transaction<T>(fn: () => T): T {
    // Nested calls join the outer transaction; SAVEPOINTs would also work but nothing needs them.
    if (this.#depth > 0) return fn();
    this.#guard(() => this.#db.exec("BEGIN IMMEDIATE"));
    this.#depth++;
    try {
      const result = fn();
      this.#guard(() => this.#db.exec("COMMIT"));
      return result;
    } catch (error) {
      // SQLite rolls some failures back by itself (a full disk, an I/O error); a second
      // ROLLBACK would fail and hide the reason.
      if (this.#db.isTransaction) {
        try {
          this.#db.exec("ROLLBACK");
        } catch {
          // the connection is already out of the transaction, or the disk is gone: either way
          // nothing of it was committed
        }
      }
      throw error;
    } finally {
      this.#depth--;
    }
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw unavailable(error, this.#path);
    }
  }
}

/**
 * Opens (creating if needed) the IPAM database at `path`. WAL and a busy timeout let a
 * second process (e.g. `weft status` reading the file) coexist with the agent; synchronous=FULL
 * because an allocation forgotten after a power cut is an address handed out twice. A state
 * directory on a full or read-only file system is a StoreUnavailableError naming it.
 */
export function openSqliteStore(path: string): Store {
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;");
    db.exec(SCHEMA);
    // state files written before allocations recorded their network gain the column, empty
    const columns = db.prepare("PRAGMA table_info(allocations)").all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === "network")) {
      db.exec("ALTER TABLE allocations ADD COLUMN network TEXT");
    }
    return new SqliteStore(db, path);
  } catch (error) {
    if (db?.isOpen) db.close();
    const failure = storeFailureOf(error);
    const directory = failure === undefined ? undefined : directoryFailure(path);
    if (failure !== undefined && directory !== "missing") {
      throw unavailable(error, path, directory ?? failure);
    }
    throw new Error(`Cannot open IPAM database "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * SQLite says only "unable to open database file" when it cannot create a file next to the
 * database: find out whether the directory is read-only or full by trying to write to it.
 */
function directoryFailure(path: string): StoreFailure | "missing" | undefined {
  const probe = `${dirname(path)}/.weft-write-probe-${Deno.pid}`;
  try {
    Deno.writeTextFileSync(probe, "x");
    Deno.removeSync(probe);
    return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "missing";
    if (error instanceof Deno.errors.PermissionDenied) return "read-only";
    const text = String(error);
    if (/EROFS|read-only/i.test(text)) return "read-only";
    if (/ENOSPC|no space/i.test(text)) return "full";
    return storeFailureOf(error) ?? "io";
  }
}
