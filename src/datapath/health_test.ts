import assert from "node:assert/strict";
import { choosePath, PathHealth, type PathInputs } from "./health.ts";

const timings = { deadAfterMs: 2000, settleMs: 1000 };

function inputs(overrides: Partial<PathInputs> = {}): PathInputs {
  return {
    mode: "auto",
    mustEncrypt: false,
    hasKey: false,
    current: "down",
    fastdp: new PathHealth(timings),
    sleeve: new PathHealth(timings),
    relay: new PathHealth(timings),
    ...overrides,
  };
}

/** Answers every 500 ms from `from` to `to` (exclusive). */
function answer(health: PathHealth, from: number, to: number): void {
  for (let t = from; t < to; t += 500) health.answered(t);
}

Deno.test("nothing answered: the peer is down and the reason says why", () => {
  const choice = choosePath(0, inputs());
  assert.equal(choice.path, "down");
  assert.equal(choice.healthy, false);
  assert.match(choice.reason, /fastdp silent/);
});

Deno.test("a new peer starts on the fast path as soon as it answers", () => {
  const i = inputs();
  i.fastdp.answered(0);
  assert.equal(choosePath(100, i).path, "fastdp");
});

Deno.test("a fast path answering after the sleeve at start-up takes over at once", () => {
  const i = inputs();
  i.sleeve.answered(0);
  assert.equal(choosePath(10, i).path, "sleeve");
  i.current = "sleeve";
  i.fastdp.answered(20);
  assert.equal(choosePath(30, i).path, "fastdp");
});

Deno.test("a new peer waits a moment for the fast path before taking the sleeve", () => {
  const i = inputs({ fastdpGraceUntil: 1000 });
  i.sleeve.answered(0);
  assert.deepEqual(choosePath(10, i), {
    path: "down",
    encrypted: false,
    healthy: false,
    reason: "waiting for the first fastdp answer",
  });
  assert.equal(choosePath(1000, i).path, "sleeve", "no fast path in time: the sleeve");
  i.fastdp.answered(20);
  assert.equal(choosePath(30, i).path, "fastdp");
  const encrypted = inputs({ fastdpGraceUntil: 1000, mustEncrypt: true, hasKey: true });
  encrypted.sleeve.answered(0);
  assert.equal(choosePath(10, encrypted).path, "sleeve", "no wait when VXLAN is not allowed");
});

Deno.test("fast path going quiet moves traffic to sleeve, recovery moves it back", () => {
  const i = inputs({ current: "fastdp" });
  answer(i.fastdp, 0, 5000);
  answer(i.sleeve, 0, 20000);
  assert.equal(choosePath(5000, i).path, "fastdp");
  const failed = choosePath(7000, i);
  assert.equal(failed.path, "sleeve");
  assert.match(failed.reason, /fastdp silent for 2\.\d?s/);
  i.current = "sleeve";
  answer(i.fastdp, 10000, 10600);
  const waiting = choosePath(10500, i);
  assert.equal(waiting.path, "sleeve");
  assert.match(waiting.reason, /settle/);
  answer(i.fastdp, 10600, 11100);
  assert.equal(choosePath(11000, i).path, "fastdp");
});

Deno.test("an encrypted pair never uses the fast path and needs a key", () => {
  const keyed = inputs({ mustEncrypt: true, hasKey: true });
  answer(keyed.fastdp, 0, 5000);
  answer(keyed.sleeve, 0, 5000);
  const choice = choosePath(4000, keyed);
  assert.equal(choice.path, "sleeve");
  assert.equal(choice.encrypted, true);
  assert.match(choice.reason, /VXLAN is not encrypted/);
  const keyless = inputs({ mustEncrypt: true, hasKey: false });
  answer(keyless.sleeve, 0, 5000);
  const down = choosePath(4000, keyless);
  assert.equal(down.path, "down");
  assert.match(down.reason, /no session key/);
});

Deno.test("with no direct path the relay through the next hop is used", () => {
  const i = inputs({ relayVia: "node2" });
  answer(i.relay, 0, 3000);
  const choice = choosePath(2800, i);
  assert.equal(choice.path, "relay");
  assert.match(choice.reason, /relayed via node2/);
  assert.equal(choosePath(2800, { ...i, mode: "fastdp" }).path, "down");
});

Deno.test("forced modes are obeyed", () => {
  const i = inputs({ mode: "sleeve" });
  answer(i.fastdp, 0, 5000);
  answer(i.sleeve, 0, 5000);
  assert.equal(choosePath(4000, i).path, "sleeve");
  assert.match(choosePath(4000, i).reason, /forced/);
  assert.equal(choosePath(4000, { ...i, mode: "fastdp", sleeve: new PathHealth() }).path, "fastdp");
});
