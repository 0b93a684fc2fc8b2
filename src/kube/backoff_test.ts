import assert from "node:assert/strict";
import { backoffDelay, sleep } from "./backoff.ts";

Deno.test("backoffDelay doubles from initialMs and stops at maxMs", () => {
  const top = { initialMs: 100, maxMs: 1000, random: () => 0.999999 };
  assert.deepEqual([0, 1, 2, 3, 4, 50].map((n) => backoffDelay(n, top)), [
    100,
    200,
    400,
    800,
    1000,
    1000,
  ]);
});

Deno.test("backoffDelay jitter keeps the delay between half and all of the base", () => {
  assert.equal(backoffDelay(2, { initialMs: 100, random: () => 0 }), 200);
  assert.equal(backoffDelay(2, { initialMs: 100, random: () => 0.5 }), 300);
});

Deno.test("sleep returns at once when the signal aborts", async () => {
  const controller = new AbortController();
  const pending = sleep(3_600_000, controller.signal);
  controller.abort();
  await pending; // would hang the test (and leak a timer) if abort were ignored
  await sleep(10, AbortSignal.abort());
});
