/**
 * The admin API's limits, against a stand-in port: bodies over the cap are refused before they
 * are read (declared) or while they stream (chunked), slow bodies are cut off, and requests
 * beyond the concurrency cap are turned away while the others still complete.
 */
import assert from "node:assert/strict";
import type { AgentPort, AllocationView } from "./types.ts";
import { createApi } from "./app.ts";

function port(allocate: AgentPort["allocate"]): AgentPort {
  const none = () => [];
  return {
    status: () => {
      throw new Error("not used");
    },
    ipamStatus: () => {
      throw new Error("not used");
    },
    allocate,
    lookup: none,
    release: () => Promise.resolve([]),
    retainOnly: () => Promise.resolve([]),
    allocations: none,
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
    countRequest: () => {},
  };
}

const allocation = (containerID: string): AllocationView => ({
  containerID,
  ifname: "eth0",
  address: "10.32.0.2/12",
  gateway: "10.32.0.1",
  mac: "0a:58:0a:20:00:02",
  createdAt: new Date(0).toISOString(),
});

/** A body that streams `chunks` chunks of `size` bytes, counting how many were pulled. */
function stream(chunks: number, size: number) {
  const state = { pulled: 0 };
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (state.pulled === chunks) return controller.close();
      state.pulled++;
      controller.enqueue(new Uint8Array(size).fill(0x20));
    },
  }, { highWaterMark: 0 }); // nothing is pulled until someone reads
  return { body, state };
}

const URL = "http://127.0.0.1:6784/ip/pod";

Deno.test("a declared body over the limit is refused with 413 before any of it is read", async () => {
  let called = false;
  const app = createApi(
    port(() => {
      called = true;
      return Promise.resolve(allocation("pod"));
    }),
    { limits: { maxBodyBytes: 1000 } },
  );
  const { body, state } = stream(100, 1000);
  const response = await app.request(URL, {
    method: "POST",
    body,
    headers: { "content-length": String(300 * 1024 * 1024) },
  });
  assert.equal(response.status, 413);
  assert.match(
    (await response.json()).error,
    /314572800 bytes is over the admin API's limit of 1000/,
  );
  assert.equal(state.pulled, 0, "nothing was read");
  assert.equal(called, false);
});

Deno.test("an undeclared body is counted as it streams and cut off at the limit", async () => {
  const app = createApi(port(() => Promise.resolve(allocation("pod"))), {
    limits: { maxBodyBytes: 4096 },
  });
  const { body, state } = stream(10_000, 1024);
  const response = await app.request(URL, { method: "POST", body });
  assert.equal(response.status, 413);
  assert.match((await response.json()).error, /over the admin API's limit of 4096 bytes/);
  assert.ok(state.pulled <= 6, `stopped reading at the limit (${state.pulled} chunks pulled)`);
  // a body under the limit still works
  const ok = await app.request(URL, { method: "POST", body: JSON.stringify({ ifname: "eth0" }) });
  assert.equal(ok.status, 200);
});

Deno.test("a body that does not arrive in time is cut off with 408", async () => {
  const app = createApi(port(() => Promise.resolve(allocation("pod"))), {
    limits: { bodyTimeoutMs: 50 },
  });
  const never = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
  const response = await app.request(URL, { method: "POST", body: never });
  assert.equal(response.status, 408);
  assert.match((await response.json()).error, /did not arrive within 50 ms/);
});

Deno.test("requests beyond the concurrency limit get 503 at once; the others complete", async () => {
  const waiting: Array<() => void> = [];
  const app = createApi(
    port((containerID) =>
      new Promise((resolve) => waiting.push(() => resolve(allocation(containerID))))
    ),
    { limits: { maxConcurrent: 2 } },
  );
  const post = (id: string) =>
    Promise.resolve(app.request(`http://127.0.0.1:6784/ip/${id}`, { method: "POST", body: "{}" }));
  const first = post("a");
  const second = post("b");
  while (waiting.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  const third = await post("c");
  assert.equal(third.status, 503);
  assert.deepEqual(await third.json(), {
    error: "The admin API is busy: 2 requests are in progress; try again",
    retry: true,
  });
  for (const release of waiting) release();
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
  // and the slots are free again
  const fourth = post("d");
  while (waiting.length < 3) await new Promise((resolve) => setTimeout(resolve, 1));
  waiting[2]();
  assert.equal((await fourth).status, 200);
});
