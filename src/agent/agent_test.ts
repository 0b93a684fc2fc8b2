/**
 * The agent composition without kernel work or mesh sockets, its IPAM on a store that can be
 * told to fail: what the API and status say when something inside goes wrong.
 */
import assert from "node:assert/strict";
import { openSqliteStore, type Store, StoreUnavailableError } from "../ipam/mod.ts";
import { createApi } from "../api/mod.ts";
import { Agent } from "./agent.ts";
import { resolveAgentConfig } from "./config.ts";

/** The real SQLite store, whose inserts fail while `failure` is set (a disk, a bug below). */
class FailingStore implements Store {
  failure: (() => Error) | undefined;
  failures = 0;
  readonly #inner: Store;
  constructor(inner: Store) {
    this.#inner = inner;
  }
  loadAllocations() {
    return this.#inner.loadAllocations();
  }
  insertAllocation(allocation: Parameters<Store["insertAllocation"]>[0]) {
    if (this.failure) {
      this.failures++;
      throw this.failure();
    }
    this.#inner.insertAllocation(allocation);
  }
  deleteAllocation(containerId: string, ifname: string) {
    this.#inner.deleteAllocation(containerId, ifname);
  }
  clearAllocations() {
    this.#inner.clearAllocations();
  }
  getValue(key: string) {
    return this.#inner.getValue(key);
  }
  setValue(key: string, value: string) {
    this.#inner.setValue(key, value);
  }
  transaction<T>(fn: () => T): T {
    return this.#inner.transaction(fn);
  }
  close() {
    this.#inner.close();
  }
}

async function withAgent(
  store: (stateDir: string) => FailingStore,
  fn: (
    agent: Agent,
    request: (path: string, init?: RequestInit) => Promise<Response>,
    log: string[],
    store: FailingStore,
  ) => Promise<void>,
) {
  const stateDir = await Deno.makeTempDir({ prefix: "weft-agent-test-" });
  const log: string[] = [];
  const failing = store(stateDir);
  try {
    const config = await resolveAgentConfig({ stateDir, ipallocRange: "10.32.0.0/28" }, {});
    const agent = await Agent.launch(config, {
      kernel: false,
      serve: false,
      mesh: false,
      store: failing,
      log: (line) => log.push(line),
    });
    try {
      const app = createApi(agent, { log: (line) => log.push(line) });
      await fn(
        agent,
        (path, init) => Promise.resolve(app.request(`http://127.0.0.1:6784${path}`, init)),
        log,
        failing,
      );
    } finally {
      await agent.stop();
    }
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
}

const sqlite = (stateDir: string) => new FailingStore(openSqliteStore(`${stateDir}/weft.db`));

Deno.test("a bug below the API (a RangeError inside the IPAM) answers 500, not a 4xx", async () => {
  await withAgent(sqlite, async (_agent, request, log, store) => {
    store.failure = () => new RangeError("offset out of bounds");
    const response = await request("/ip/pod-a", { method: "POST", body: "{}" });
    assert.equal(response.status, 500);
    assert.match((await response.json()).error, /Internal error: offset out of bounds/);
    assert.ok(log.some((line) => line.includes("RangeError")), "the bug is logged with its stack");
    store.failure = () => new TypeError("cannot read properties of undefined");
    assert.equal((await request("/ip/pod-b", { method: "POST", body: "{}" })).status, 500);
  });
});

Deno.test("a bring-up that fails unexpectedly keeps the agent serving, says why, and retries", async () => {
  let store: FailingStore | undefined;
  const failingFromStart = (stateDir: string) => {
    store = sqlite(stateDir);
    store.failure = () => new Error("disk I/O error");
    return store;
  };
  await withAgent(failingFromStart, async (agent, request, log) => {
    const status = await request("/status");
    assert.equal(status.status, 503);
    const body = await status.json();
    assert.match(body.reason, /disk I\/O error/);
    assert.ok(
      body.problems.some((p: { code: string; message: string }) =>
        p.code === "node-setup-failed" && /disk I\/O error/.test(p.message)
      ),
      JSON.stringify(body.problems),
    );
    // the timer retries (and each failure is logged once, not every half second)
    const deadline = Date.now() + 5000;
    while (store!.failures < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(store!.failures >= 3, `retried: ${store!.failures} tries`);
    assert.equal(log.filter((line) => line.includes("disk I/O error")).length, 1, log.join("\n"));
    store!.failure = undefined;
    while (!agent.status().ready && Date.now() < deadline + 5000) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(agent.status().ready, true, "the node comes up once the store works again");
    assert.deepEqual(agent.status().problems, []);
  });
});

Deno.test("a full disk answers 507 and a read-only one 503 (retry), each saying what is wrong", async () => {
  await withAgent(sqlite, async (_agent, request, _log, store) => {
    const path = "/var/lib/weft/weft.db";
    store.failure = () =>
      new StoreUnavailableError(
        `Cannot write the IPAM state ${path}: the disk is full (database or disk is full). ` +
          `Free space on the file system that holds it`,
        "full",
        path,
      );
    const full = await request("/ip/pod-a", { method: "POST", body: "{}" });
    assert.equal(full.status, 507);
    assert.match((await full.json()).error, /weft\.db: the disk is full.*Free space/);
    store.failure = () =>
      new StoreUnavailableError(
        `Cannot write the IPAM state ${path}: it is read-only`,
        "read-only",
        path,
      );
    const readOnly = await request("/ip/pod-a", { method: "POST", body: "{}" });
    assert.equal(readOnly.status, 503);
    const body = await readOnly.json();
    assert.match(body.error, /read-only/);
    assert.equal(body.retry, true);
    store.failure = undefined;
    assert.equal((await request("/ip/pod-a", { method: "POST", body: "{}" })).status, 200);
  });
});
