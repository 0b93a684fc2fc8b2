import assert from "node:assert/strict";
import { MalformedFrameError } from "./errors.ts";
import { decodeFrame, encodeFrame, type Frame } from "./protocol.ts";

const KEY = "A".repeat(43) + "=";
const SIG = "B".repeat(86) + "==";
const auth = {
  t: "auth",
  name: "a",
  nickname: "n",
  incarnation: "00000001aaaa",
  port: 6783,
  key: KEY,
  sig: SIG,
};

Deno.test("auth frames are validated field by field", () => {
  assert.deepEqual(decodeFrame(JSON.stringify(auth)), auth);
  for (
    const bad of [{ port: 70000 }, { name: "" }, { incarnation: "XYZ" }, { proof: 7 }, {
      key: "short",
    }, { sig: undefined }]
  ) {
    assert.throws(() => decodeFrame(JSON.stringify({ ...auth, ...bad })), MalformedFrameError);
  }
});

Deno.test("every frame this build sends decodes to itself, without unknown fields", () => {
  const frames: Frame[] = [
    { t: "hello", proto: [2, 2], nonce: "A".repeat(44), auth: true, dh: KEY },
    { t: "error", message: "no" },
    { t: "error", message: "no", code: "key-mismatch" },
    { t: "ping" },
    { t: "digest", h: "3:00ff" },
    { t: "summary", reply: true, e: [["a", "00000001aaaa", 3]] },
    { t: "bcast", src: "a", id: "00000001aaaa.2", ch: "ipam", p: "x", sig: SIG },
    { t: "msg", src: "a", dst: "b", id: "00000001aaaa.3", ch: "ipam", p: "x", ttl: 3, sig: SIG },
    {
      t: "gossip",
      r: [{
        name: "a",
        nickname: "n",
        incarnation: "00000001aaaa",
        version: 1,
        connections: [{ peer: "b", address: "10.0.0.2:6783" }],
        data: { k: "v" },
        key: KEY,
        sig: SIG,
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
    [
      `{"t":"msg","src":"a","dst":"b","id":"0000000a.1","ch":"c","p":"x","ttl":1.5,"sig":"${SIG}"}`,
      /ttl/,
    ],
    [`{"t":"msg","src":"a","dst":"b","id":"0000000a.1","ch":"c","p":"x","ttl":1}`, /message frame/],
    [
      `{"t":"bcast","src":"a b","id":"0000000a.1","ch":"c","p":"x","sig":"${SIG}"}`,
      /broadcast frame/,
    ],
    [`{"t":"bcast","src":"a","id":"1","ch":"c","p":"x","sig":"${SIG}"}`, /broadcast frame/],
    ['{"t":"hello","proto":[2,2],"nonce":"AAAAAAAAAAAAAAAAAAAA","auth":false}', /hello/],
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
