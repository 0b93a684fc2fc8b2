import assert from "node:assert/strict";
import { httpRequest, parseAnswer } from "./http1.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("http1: content-length body", () => {
  const answer = parseAnswer(bytes("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}extra"));
  assert.deepEqual(answer, { status: 201, body: "{}" });
});

Deno.test("http1: chunked body", () => {
  const raw =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n';
  assert.deepEqual(parseAnswer(bytes(raw)), { status: 200, body: '{"a":1}' });
});

Deno.test("http1: a garbage answer is a protocol error", () => {
  assert.throws(() => parseAnswer(bytes("SSH-2.0-OpenSSH\r\n\r\n")), /bad status line/);
  assert.throws(() => parseAnswer(bytes("HTTP/1.1 200 OK\r\n")), /no end of headers/);
});

Deno.test("http1: round trip against a loopback server", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (r) => {
    const body = r.method === "POST" ? await r.json() : null;
    return Response.json({ method: r.method, path: new URL(r.url).pathname, body }, {
      status: 202,
    });
  });
  try {
    const answer = await httpRequest(`127.0.0.1:${server.addr.port}`, {
      method: "POST",
      path: "/ip/abc",
      body: JSON.stringify({ ifname: "eth0" }),
    });
    assert.equal(answer.status, 202);
    assert.deepEqual(JSON.parse(answer.body), {
      method: "POST",
      path: "/ip/abc",
      body: { ifname: "eth0" },
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("http1: nothing listening is a connection error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(httpRequest(`127.0.0.1:${port}`, { method: "GET", path: "/" }));
});
