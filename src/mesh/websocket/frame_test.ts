import assert from "node:assert/strict";
import {
  CloseCode,
  encodeClose,
  encodeFrame,
  FrameDecoder,
  Opcode,
  type WebSocketEvent,
  WebSocketProtocolError,
} from "./frame.ts";

const text = new TextEncoder();

/** A frame built by hand, for the shapes `encodeFrame` would never produce. */
function raw(
  first: number,
  options: { mask?: boolean; length?: number; lengthBytes?: number[]; payload?: number[] } = {},
): Uint8Array {
  const payload = options.payload ?? [];
  const mask = options.mask ?? true;
  const lengthBytes = options.lengthBytes ?? [];
  const short = options.length ?? payload.length;
  const key = [0, 0, 0, 0]; // a zero key leaves the payload readable
  return new Uint8Array([
    first,
    (mask ? 0x80 : 0) | short,
    ...lengthBytes,
    ...(mask ? key : []),
    ...payload,
  ]);
}

function decode(
  bytes: Uint8Array[],
  options: { role?: "server" | "client"; max?: number } = {},
): WebSocketEvent[] {
  const decoder = new FrameDecoder({
    role: options.role ?? "server",
    maxMessageBytes: options.max ?? 1 << 20,
  });
  const events: WebSocketEvent[] = [];
  for (const chunk of bytes) decoder.push(chunk, (event) => events.push(event));
  return events;
}

function refused(
  bytes: Uint8Array[],
  code: number,
  message: RegExp,
  options: { role?: "server" | "client"; max?: number } = {},
): WebSocketEvent[] {
  const events: WebSocketEvent[] = [];
  const decoder = new FrameDecoder({
    role: options.role ?? "server",
    maxMessageBytes: options.max ?? 1 << 20,
  });
  assert.throws(
    () => {
      for (const chunk of bytes) decoder.push(chunk, (event) => events.push(event));
    },
    (error: unknown) =>
      error instanceof WebSocketProtocolError && error.code === code && message.test(error.message),
  );
  assert.ok(decoder.done, "a broken stream is not decoded further");
  return events;
}

/** Splits bytes into pieces of pseudo-random sizes (deterministic). */
function chop(bytes: Uint8Array, seed: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let at = 0;
  let state = seed;
  while (at < bytes.byteLength) {
    state = (state * 1103515245 + 12345) >>> 0;
    const size = 1 + (state % 7000);
    pieces.push(bytes.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

Deno.test("text and binary round trip at every length encoding, masked and not, however chopped", () => {
  for (const length of [0, 1, 125, 126, 65535, 65536, 200_000]) {
    const payload = new Uint8Array(length).map((_, i) => (i * 7) & 0xff);
    const body = "x".repeat(length);
    for (const role of ["server", "client"] as const) {
      const mask = role === "server";
      const binary = encodeFrame(Opcode.binary, payload, { mask });
      const textFrame = encodeFrame(Opcode.text, text.encode(body), { mask });
      for (const pieces of [[binary], chop(binary, length + 1)]) {
        const events = decode(pieces, { role });
        assert.equal(events.length, 1);
        assert.equal(events[0].type, "binary");
        assert.deepEqual((events[0] as { data: Uint8Array }).data, payload);
      }
      assert.deepEqual(decode(chop(textFrame, length + 2), { role }), [{
        type: "text",
        data: body,
      }]);
    }
  }
});

Deno.test("a frame fed one byte at a time decodes the same", () => {
  const frame = encodeFrame(Opcode.text, text.encode("héllo, wörld"), { mask: true });
  const bytes = [...frame].map((b) => new Uint8Array([b]));
  assert.deepEqual(decode(bytes), [{ type: "text", data: "héllo, wörld" }]);
});

Deno.test("several frames in one read come out in order", () => {
  const all = new Uint8Array([
    ...encodeFrame(Opcode.text, text.encode("one"), { mask: true }),
    ...encodeFrame(Opcode.ping, text.encode("p"), { mask: true }),
    ...encodeFrame(Opcode.text, text.encode("two"), { mask: true }),
    ...encodeClose(1000, "bye", { mask: true }),
  ]);
  assert.deepEqual(decode([all]), [
    { type: "text", data: "one" },
    { type: "ping", data: text.encode("p") },
    { type: "text", data: "two" },
    { type: "close", code: 1000, reason: "bye" },
  ]);
});

Deno.test("fragments are reassembled, with control frames between them and a character split across two", () => {
  const word = text.encode("aé"); // é is two bytes: split after its first
  const frames = new Uint8Array([
    ...encodeFrame(Opcode.text, word.subarray(0, 2), { mask: true, fin: false }),
    ...encodeFrame(Opcode.ping, new Uint8Array([9]), { mask: true }),
    ...encodeFrame(Opcode.continuation, word.subarray(2), { mask: true, fin: false }),
    ...encodeFrame(Opcode.continuation, text.encode("!"), { mask: true }),
    ...encodeFrame(Opcode.binary, new Uint8Array([1]), { mask: true, fin: false }),
    ...encodeFrame(Opcode.continuation, new Uint8Array([2]), { mask: true }),
  ]);
  assert.deepEqual(decode(chop(frames, 3)), [
    { type: "ping", data: new Uint8Array([9]) },
    { type: "text", data: "aé!" },
    { type: "binary", data: new Uint8Array([1, 2]) },
  ]);
});

Deno.test("close frames: empty, with a code and reason; nothing is decoded after one", () => {
  assert.deepEqual(decode([encodeFrame(Opcode.close, new Uint8Array(0), { mask: true })]), [
    { type: "close", reason: "" },
  ]);
  const after = new Uint8Array([
    ...encodeClose(4001, "gone", { mask: true }),
    ...encodeFrame(Opcode.text, text.encode("late"), { mask: true }),
  ]);
  assert.deepEqual(decode([after]), [{ type: "close", code: 4001, reason: "gone" }]);
});

Deno.test("a long close reason is cut to 123 bytes on a character boundary", () => {
  const frame = encodeClose(1000, "é".repeat(100), { mask: false });
  const [event] = decode([frame], { role: "client" });
  assert.equal(event.type, "close");
  const reason = (event as { reason: string }).reason;
  assert.equal(reason, "é".repeat(61));
  assert.ok(text.encode(reason).byteLength <= 123);
});

Deno.test("a frame announcing more than the limit is refused at its header, before any payload", () => {
  // 64 MiB announced, no payload bytes sent at all: the refusal cannot have waited for them
  const header = raw(0x82, { length: 127, lengthBytes: [0, 0, 0, 0, 4, 0, 0, 0] });
  refused([header], CloseCode.tooBig, /67108864 bytes exceeds the limit of 8388608/, {
    max: 8 << 20,
  });
  const text16 = raw(0x81, { length: 126, lengthBytes: [0x40, 0] }); // 16 KiB
  refused([text16], CloseCode.tooBig, /16384 bytes exceeds the limit of 1024/, { max: 1024 });
  // exactly at the limit is fine
  const exact = encodeFrame(Opcode.binary, new Uint8Array(1024), { mask: true });
  assert.equal(decode([exact], { max: 1024 }).length, 1);
});

Deno.test("a fragmented message is refused at the header of the fragment that passes the limit", () => {
  const first = encodeFrame(Opcode.binary, new Uint8Array(600), { mask: true, fin: false });
  const second = raw(0x80, { length: 126, lengthBytes: [0x01, 0xf4] }); // continuation, 500 bytes
  const events = refused([first, second], CloseCode.tooBig, /1100 bytes so far/, { max: 1000 });
  assert.deepEqual(events, []);
});

Deno.test("raising the limit from the callback applies to the next frame", () => {
  const decoder = new FrameDecoder({ role: "server", maxMessageBytes: 10 });
  const both = new Uint8Array([
    ...encodeFrame(Opcode.text, text.encode("auth"), { mask: true }),
    ...encodeFrame(Opcode.text, text.encode("x".repeat(100)), { mask: true }),
  ]);
  const got: string[] = [];
  decoder.push(both, (event) => {
    got.push((event as { data: string }).data);
    decoder.maxMessageBytes = 1000;
  });
  assert.deepEqual(got, ["auth", "x".repeat(100)]);
});

Deno.test("every malformed frame is refused with the code the RFC gives", () => {
  const cases: Array<[string, Uint8Array[], number, RegExp, ("server" | "client")?]> = [
    ["a reserved bit", [raw(0xc1, { payload: [0x61] })], 1002, /Reserved bits/],
    ["opcode 3", [raw(0x83)], 1002, /Unknown opcode 0x3/],
    ["opcode 0xb", [raw(0x8b)], 1002, /Unknown opcode 0xb/],
    ["an unmasked client frame", [raw(0x81, { mask: false })], 1002, /Unmasked/],
    ["a masked server frame", [raw(0x81, { mask: true })], 1002, /Masked frame/, "client"],
    ["a 126-byte ping", [raw(0x89, { length: 126, lengthBytes: [0, 126] })], 1002, /Control/],
    ["a fragmented ping", [raw(0x09)], 1002, /Fragmented control/],
    ["a continuation first", [raw(0x80)], 1002, /Continuation frame without/],
    [
      "a new message inside a fragmented one",
      [raw(0x01, { payload: [0x61] }), raw(0x81, { payload: [0x62] })],
      1002,
      /New message while/,
    ],
    [
      "a 16-bit length under 126",
      [raw(0x82, { length: 126, lengthBytes: [0, 10] })],
      1002,
      /shortest/,
    ],
    [
      "a 64-bit length under 65536",
      [raw(0x82, { length: 127, lengthBytes: [0, 0, 0, 0, 0, 0, 3, 0xe8] })],
      1002,
      /shortest/,
    ],
    [
      "a 64-bit length with its top bit set",
      [raw(0x82, { length: 127, lengthBytes: [0x80, 0, 0, 0, 0, 0, 0, 1] })],
      1002,
      /most significant bit/,
    ],
    ["invalid UTF-8", [raw(0x81, { payload: [0xc3, 0x28] })], 1007, /Text message is not valid/],
    [
      "UTF-8 cut at the end of the last fragment",
      [raw(0x01, { payload: [0x61] }), raw(0x80, { payload: [0xe2, 0x82] })],
      1007,
      /Text message/,
    ],
    ["a 1-byte close payload", [raw(0x88, { payload: [3] })], 1002, /1-byte/],
    ["close code 1005", [raw(0x88, { payload: [0x03, 0xed] })], 1002, /Invalid close code 1005/],
    ["close code 999", [raw(0x88, { payload: [0x03, 0xe7] })], 1002, /Invalid close code 999/],
    ["close code 2000", [raw(0x88, { payload: [0x07, 0xd0] })], 1002, /Invalid close code 2000/],
    [
      "a close reason that is not UTF-8",
      [raw(0x88, { payload: [0x03, 0xe8, 0xff] })],
      1007,
      /Close reason/,
    ],
  ];
  for (const [what, bytes, code, message, role] of cases) {
    try {
      refused(bytes, code, message, { role });
    } catch (error) {
      throw new Error(`${what}: ${(error as Error).message}`);
    }
  }
});

Deno.test("a broken stream stays broken: later bytes are ignored, not decoded", () => {
  const decoder = new FrameDecoder({ role: "server", maxMessageBytes: 100 });
  assert.throws(() => decoder.push(raw(0x83), () => {}), WebSocketProtocolError);
  const events: WebSocketEvent[] = [];
  decoder.push(
    encodeFrame(Opcode.text, text.encode("after"), { mask: true }),
    (e) => events.push(e),
  );
  assert.deepEqual(events, []);
});
