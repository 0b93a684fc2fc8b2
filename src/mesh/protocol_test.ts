import assert from "node:assert/strict";
import { MalformedFrameError } from "./errors.ts";
import { decodeFrame, encodeFrame, type Frame } from "./protocol.ts";

const auth = { t: "auth", name: "a", nickname: "n", incarnation: "00000001aaaa", port: 6783 };

Deno.test("auth frames are validated field by field", () => {
  assert.deepEqual(decodeFrame(JSON.stringify(auth)), auth);
  for (const bad of [{ port: 70000 }, { name: "" }, { incarnation: "XYZ" }, { proof: 7 }]) {
    assert.throws(() => decodeFrame(JSON.stringify({ ...auth, ...bad })), MalformedFrameError);
  }
});

Deno.test("every frame this build sends decodes to itself, without unknown fields", () => {
  const frames: Frame[] = [
    { t: "hello", proto: [1, 1], nonce: "A".repeat(44), auth: true },
    { t: "error", message: "no" },
    { t: "ping" },
    { t: "digest", h: "3:00ff" },
    { t: "summary", reply: true, e: [["a", "00000001aaaa", 3]] },
    { t: "bcast", src: "a", id: "1.2", ch: "ipam", p: "x" },
    { t: "msg", src: "a", dst: "b", ch: "ipam", p: "x", ttl: 3 },
    {
      t: "gossip",
      r: [{
        name: "a",
        nickname: "n",
        incarnation: "00000001aaaa",
        version: 1,
        connections: [{ peer: "b", address: "10.0.0.2:6783" }],
        data: { k: "v" },
      }],
    },
  ];
  for (const frame of frames) {
    assert.deepEqual(decodeFrame(encodeFrame(frame)), frame);
    assert.deepEqual(decodeFrame(JSON.stringify({ ...frame, extra: 1 })), frame);
  }
});

Deno.test("malformed frames are refused with the reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["not json", /not JSON/],
    ["[1,2]", /no type/],
    ['{"t":"zzz"}', /Unknown frame type "zzz"/],
    ['{"t":"gossip","r":{}}', /gossip frame/],
    ['{"t":"summary","e":[["a","bad",1]]}', /summary entry/],
    ['{"t":"msg","src":"a","dst":"b","ch":"c","p":"x","ttl":1.5}', /ttl/],
    ['{"t":"bcast","src":"a b","id":"1","ch":"c","p":"x"}', /broadcast frame/],
    ['{"t":"digest","h":7}', /digest frame/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => decodeFrame(text), (e: Error) => {
      assert.ok(e instanceof MalformedFrameError);
      assert.match(e.message, message);
      return true;
    });
  }
});
