import assert from "node:assert/strict";
import {
  deriveDirectionKeys,
  REPLAY_WINDOW,
  REPLAY_WINDOW_BYTES,
  ReplayWindow,
  SleeveCipher,
} from "./crypto.ts";

const secret = new Uint8Array(32).map((_, i) => i * 7);

function pair(): [SleeveCipher, SleeveCipher] {
  return [
    new SleeveCipher(deriveDirectionKeys(secret, { local: "a", remote: "b" })),
    new SleeveCipher(deriveDirectionKeys(secret, { local: "b", remote: "a" })),
  ];
}

Deno.test("each direction gets its own key and the peer mirrors them", () => {
  const ab = deriveDirectionKeys(secret, { local: "a", remote: "b" });
  const ba = deriveDirectionKeys(secret, { local: "b", remote: "a" });
  assert.deepEqual(ab.send, ba.receive);
  assert.deepEqual(ab.receive, ba.send);
  assert.notDeepEqual(ab.send, ab.receive);
});

Deno.test("sealed datagram opens on the other side and hides the plaintext", () => {
  const [a, b] = pair();
  const header = new Uint8Array([1, 2, 3]);
  const text = new TextEncoder().encode("MARKER-plaintext-MARKER");
  const counter = a.nextCounter();
  const sealed = a.seal(text, { header: header, counter: counter });
  assert.equal(new TextDecoder().decode(sealed).includes("MARKER"), false);
  assert.deepEqual(b.open(sealed, { header: header, counter: counter }), text);
});

Deno.test("tampered body, header or counter is dropped", () => {
  const [a, b] = pair();
  const header = new Uint8Array([9, 9]);
  const counter = a.nextCounter();
  const sealed = a.seal(new Uint8Array(100).fill(1), { header: header, counter: counter });
  const flipped = sealed.slice();
  flipped[5] ^= 1;
  assert.equal(b.open(flipped, { header: header, counter: counter }), undefined);
  assert.equal(b.open(sealed, { header: new Uint8Array([9, 8]), counter: counter }), undefined);
  assert.equal(b.open(sealed, { header: header, counter: counter + 1 }), undefined);
  // A sender cannot be impersonated by the receiver's own direction.
  assert.equal(a.open(sealed, { header: header, counter: counter }), undefined);
  assert.notEqual(b.open(sealed, { header: header, counter: counter }), undefined);
});

Deno.test("a replayed datagram is dropped, reordered ones inside the window are not", () => {
  const [a, b] = pair();
  const header = new Uint8Array([0]);
  const sealed = [1, 2, 3].map(() => {
    const c = a.nextCounter();
    return { c, s: a.seal(new Uint8Array([c]), { header: header, counter: c }) };
  });
  assert.deepEqual(
    b.open(sealed[2].s, { header: header, counter: sealed[2].c }),
    new Uint8Array([3]),
  );
  assert.deepEqual(
    b.open(sealed[0].s, { header: header, counter: sealed[0].c }),
    new Uint8Array([1]),
  );
  assert.equal(b.open(sealed[0].s, { header: header, counter: sealed[0].c }), undefined);
  assert.equal(b.open(sealed[2].s, { header: header, counter: sealed[2].c }), undefined);
  assert.deepEqual(
    b.open(sealed[1].s, { header: header, counter: sealed[1].c }),
    new Uint8Array([2]),
  );
});

Deno.test("replay window refuses counters older than its size", () => {
  const w = new ReplayWindow();
  w.record(10_000);
  assert.equal(w.fresh(10_000 - REPLAY_WINDOW), false);
  assert.equal(w.fresh(10_000 - REPLAY_WINDOW + 1), true);
  w.record(10_000 - REPLAY_WINDOW + 1);
  assert.equal(w.fresh(10_000 - REPLAY_WINDOW + 1), false);
  w.record(50_000);
  assert.equal(w.fresh(49_999), true);
  assert.equal(w.fresh(10_000), false);
  assert.equal(w.fresh(0), false);
});

Deno.test("a receiver that takes over a shared window refuses what its predecessor accepted", () => {
  const window = new SharedArrayBuffer(REPLAY_WINDOW_BYTES);
  const keys = deriveDirectionKeys(secret, { local: "a", remote: "b" });
  const mirror = deriveDirectionKeys(secret, { local: "b", remote: "a" });
  const sender = new SleeveCipher(mirror);
  const header = new Uint8Array(40);
  const counter = sender.nextCounter();
  const sealed = sender.seal(new Uint8Array([7]), { header, counter });
  const first = new SleeveCipher(keys, { window });
  assert.deepEqual(first.open(sealed, { header, counter }), new Uint8Array([7]));
  const next = new SleeveCipher(keys, { window });
  assert.equal(next.open(sealed, { header, counter }), undefined, "a replay to the new thread");
  const unshared = new SleeveCipher(keys);
  assert.deepEqual(unshared.open(sealed, { header, counter }), new Uint8Array([7]), "control");
});

Deno.test("ciphers sharing a counter never reuse a nonce", () => {
  const counter = new SharedArrayBuffer(8);
  const keys = deriveDirectionKeys(secret, { local: "a", remote: "b" });
  const one = new SleeveCipher(keys, { counter });
  const two = new SleeveCipher(keys, { counter });
  const seen = new Set([one.nextCounter(), two.nextCounter(), one.nextCounter()]);
  assert.deepEqual([...seen].sort(), [1, 2, 3]);
});
