import assert from "node:assert/strict";
import { shutdownSockets, sockaddrKey } from "./socket_shutdown.ts";

Deno.test("socket addresses of both families read into one spelling, as Deno's are", () => {
  const v4 = new Uint8Array(16);
  v4.set([2, 0, 0x1a, 0x7f, 10, 32, 0, 1]);
  assert.equal(sockaddrKey(v4), "10.32.0.1|6783");
  const mapped = new Uint8Array(28);
  mapped.set([10, 0, 0x1a, 0x7f, 0, 0, 0, 0]);
  mapped.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1], 8);
  assert.equal(sockaddrKey(mapped), "[::ffff:7f00:1]|6783");
  const unix = new Uint8Array(16);
  unix.set([1, 0]);
  assert.equal(sockaddrKey(unix), undefined);
});

Deno.test("a socket found by its ends is shut down and its peer sees the end; others are untouched", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const clients = [await Deno.connect({ port }), await Deno.connect({ port })];
  const served = [await listener.accept(), await listener.accept()];
  try {
    const target = served.find((c) =>
      (c.remoteAddr as Deno.NetAddr).port === (clients[0].localAddr as Deno.NetAddr).port
    )!;
    const found = shutdownSockets([
      { local: target.localAddr as Deno.NetAddr, remote: target.remoteAddr as Deno.NetAddr },
      // not a socket of this process: not found, no harm
      {
        local: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
        remote: { transport: "tcp", hostname: "127.0.0.1", port: 2 },
      },
    ]);
    assert.equal(found, 1);
    assert.equal(await clients[0].read(new Uint8Array(8)), null, "the peer sees end of stream");
    await clients[1].write(new Uint8Array([7]));
    const buffer = new Uint8Array(8);
    const other = served.find((c) => c !== target)!;
    assert.equal(await other.read(buffer), 1, "the other connection still carries data");
  } finally {
    for (const conn of [...clients, ...served]) conn.close();
    listener.close();
  }
});
