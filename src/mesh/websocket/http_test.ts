import assert from "node:assert/strict";
import {
  acceptFor,
  checkUpgradeResponse,
  type HttpRefusal,
  newKey,
  parseUpgradeRequest,
  readHead,
  refusalResponse,
  UpgradeError,
  upgradeRequest,
  upgradeResponse,
} from "./http.ts";

const encoder = new TextEncoder();

/** A socket's read over fixed chunks, then end of stream. */
function reader(chunks: Array<string | number[]>): (buffer: Uint8Array) => Promise<number | null> {
  const queue = chunks.map((c) => typeof c === "string" ? encoder.encode(c) : new Uint8Array(c));
  return (buffer) => {
    const next = queue.shift();
    if (!next) return Promise.resolve(null);
    const n = Math.min(next.byteLength, buffer.byteLength);
    buffer.set(next.subarray(0, n));
    if (n < next.byteLength) queue.unshift(next.subarray(n));
    return Promise.resolve(n);
  };
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const good = (extra = "") =>
  `GET /weft/mesh HTTP/1.1\r\nHost: 10.0.0.1:6783\r\nUpgrade: websocket\r\n` +
  `Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\n` +
  `Sec-WebSocket-Version: 13\r\n${extra}`;

Deno.test("the accept value is the RFC's own example", () => {
  assert.equal(acceptFor(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("a head split across reads is found, and the bytes after it are kept", async () => {
  const request = good() + "\r\n";
  const { head, rest } = await readHead(
    reader([request.slice(0, 10), request.slice(10, request.length - 2), "\r\n", [0x81, 0x85]]),
    { maxHeadBytes: 8192 },
  );
  assert.equal(head, good().slice(0, -2));
  assert.deepEqual(rest, new Uint8Array(0));
  const pipelined = await readHead(
    reader([[...encoder.encode(request), 0x81, 0x85, 0x61, 0x62, 0x63]]),
    {
      maxHeadBytes: 8192,
    },
  );
  assert.deepEqual([...pipelined.rest], [0x81, 0x85, 0x61, 0x62, 0x63]);
});

Deno.test("a head over the cap, or cut short, is refused", async () => {
  await assert.rejects(
    readHead(reader(["GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(2000)]), { maxHeadBytes: 8192 }),
    UpgradeError,
    "over 8192",
  );
  await assert.rejects(readHead(reader([]), { maxHeadBytes: 100 }), /before a request/);
  await assert.rejects(readHead(reader(["GET / HT"]), { maxHeadBytes: 100 }), /mid-head/);
});

Deno.test("a well-formed upgrade gives the key; the 101 carries its accept", () => {
  assert.deepEqual(parseUpgradeRequest(good().slice(0, -2)), { key: KEY });
  assert.match(
    upgradeResponse(KEY),
    /^HTTP\/1\.1 101 .*\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n\r\n$/s,
  );
  const key = newKey();
  assert.deepEqual(
    parseUpgradeRequest(upgradeRequest("[::1]:6783", key).slice(0, -4)),
    { key },
  );
});

Deno.test("every bad request gets the status that says why", () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ["plain GET", "GET / HTTP/1.1\r\nHost: x", 426, /WebSocket only/],
    ["HTTP/1.0", "GET /weft/mesh HTTP/1.0\r\nUpgrade: websocket", 505, /HTTP\/1\.1/],
    ["POST upgrade", good().replace("GET", "POST").slice(0, -2), 405, /GET only/],
    ["another path", good().replace("/weft/mesh", "/other").slice(0, -2), 404, /\/other/],
    ["no Host", good().replace("Host: 10.0.0.1:6783\r\n", "").slice(0, -2), 400, /Host/],
    ["two Hosts", good("Host: evil\r\n").slice(0, -2), 400, /Host/],
    [
      "no Connection: Upgrade",
      good().replace("keep-alive, Upgrade", "keep-alive").slice(0, -2),
      400,
      /Connection/,
    ],
    ["a body", good("Content-Length: 5\r\n").slice(0, -2), 400, /no body/],
    ["chunked body", good("Transfer-Encoding: chunked\r\n").slice(0, -2), 400, /no body/],
    ["version 8", good().replace("Version: 13", "Version: 8").slice(0, -2), 426, /version 13/],
    ["short key", good().replace(KEY, "abc").slice(0, -2), 400, /Key/],
    ["two keys", good(`Sec-WebSocket-Key: ${KEY}\r\n`).slice(0, -2), 400, /Key/],
    ["space before colon", good("X-Bad : 1\r\n").slice(0, -2), 400, /Malformed header/],
    ["folded line", good(" folded\r\n").slice(0, -2), 400, /Malformed header/],
    ["bare LF in a value", good("X-A: 1\nX-B: 2\r\n").slice(0, -2), 400, /Control character/],
    [
      "two spaces in the request line",
      good().replace("GET ", "GET  ").slice(0, -2),
      400,
      /request line/,
    ],
    ["too many headers", good("X: 1\r\n".repeat(70)).slice(0, -2), 400, /More than 64/],
  ];
  for (const [what, head, status, message] of cases) {
    const verdict = parseUpgradeRequest(head) as HttpRefusal;
    assert.equal(verdict.status, status, what);
    assert.match(verdict.message, message, what);
  }
});

Deno.test("a refusal is a complete HTTP response that says it closes", () => {
  const text = refusalResponse({
    status: 426,
    reason: "Upgrade Required",
    message: "weft mesh: WebSocket only",
  });
  assert.equal(
    text,
    "HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ncontent-length: 26\r\n" +
      "connection: close\r\n\r\nweft mesh: WebSocket only\n",
  );
});

Deno.test("the client accepts only a 101 with the right accept and nothing it did not offer", () => {
  const key = newKey();
  const ok = upgradeResponse(key).slice(0, -4);
  checkUpgradeResponse(ok, key);
  const cases: Array<[string, string, RegExp]> = [
    ["a 426", "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0", /refused: HTTP 426/],
    ["garbage", "SSH-2.0-OpenSSH_9.2", /Bad upgrade response/],
    ["wrong accept", upgradeResponse(newKey()).slice(0, -4), /Sec-WebSocket-Accept/],
    ["no Upgrade", ok.replace("Upgrade: websocket\r\n", ""), /Upgrade: websocket/],
    ["no Connection", ok.replace("Connection: Upgrade\r\n", ""), /Connection: Upgrade/],
    ["an extension", ok + "\r\nSec-WebSocket-Extensions: permessage-deflate", /not offered/],
  ];
  for (const [what, head, message] of cases) {
    assert.throws(() => checkUpgradeResponse(head, key), message, what);
  }
});
