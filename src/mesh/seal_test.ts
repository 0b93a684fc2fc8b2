import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { FrameMac, FrameSealer, IntegrityError } from "./seal.ts";

function pair(): [FrameSealer, FrameSealer] {
  const a = randomBytes(32), b = randomBytes(32);
  return [new FrameSealer({ send: a, receive: b }), new FrameSealer({ send: b, receive: a })];
}

Deno.test("sealed frames round-trip in order", () => {
  const [alice, bob] = pair();
  for (const frame of ['{"t":"ping"}', '{"t":"digest","h":"1:ab"}', "é ü 😀"]) {
    assert.equal(bob.open(alice.seal(frame)), frame);
  }
});

Deno.test("a tampered, spliced, reflected or unsealed frame fails the check", () => {
  const [alice, bob] = pair();
  const [carol] = pair();
  const sealed = alice.seal('{"t":"digest","h":"1:ab"}');
  const tampered = sealed.replace("1:ab", "1:ac");
  assert.throws(() => bob.open(tampered), IntegrityError);
  assert.throws(() => bob.open(carol.seal('{"t":"ping"}')), IntegrityError, "other connection");
  assert.throws(() => alice.open(alice.seal('{"t":"ping"}')), IntegrityError, "reflected");
  assert.throws(() => bob.open('{"t":"ping"}'), IntegrityError);
  const renumbered = sealed.slice(0, 16) + "7" + sealed.slice(17);
  assert.throws(() => bob.open(renumbered), IntegrityError);
});

Deno.test("a replayed or overtaken frame is dropped; a gap is accepted", () => {
  const [alice, bob] = pair();
  const first = alice.seal("one"), second = alice.seal("two"), third = alice.seal("three");
  assert.equal(bob.open(second), "two");
  assert.equal(bob.open(first), undefined, "older than the last accepted");
  assert.equal(bob.open(second), undefined, "replay");
  assert.equal(bob.open(third), "three");
  assert.equal(bob.replays, 2);
});

Deno.test("the frame MAC is HMAC-SHA256, for short and long keys and any text", () => {
  for (const size of [16, 32, 64, 100]) {
    const key = randomBytes(size);
    const mac = new FrameMac(key);
    for (const text of ["", '1:{"t":"ping"}', "é".repeat(5000)]) {
      assert.deepEqual(mac.digest(text), createHmac("sha256", key).update(text).digest());
    }
  }
});
