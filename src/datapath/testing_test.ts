import assert from "node:assert/strict";
import { MemoryDatapath } from "./testing.ts";

Deno.test("memory data path decodes peer blobs and reports paths by the kernel rules", async () => {
  const a = new MemoryDatapath({ ip: "192.0.2.1" });
  const b = new MemoryDatapath({ ip: "192.0.2.2", bridgeIp: "10.32.0.2", mtu: 1400 });
  b.setLocalEndpoints([{ mac: "0a:58:0a:20:00:09", ip: "10.32.0.9" }]);
  await a.start();
  await a.upsertPeer({ name: "b", data: b.localData() });
  await a.upsertPeer({ name: "c", data: b.localData(), sessionKey: new Uint8Array(32) });
  await a.upsertPeer({ name: "d", data: b.localData(), nextHop: "b" });
  assert.deepEqual(a.peerEndpoints("b"), [{ mac: "0a:58:0a:20:00:09", ip: "10.32.0.9" }]);
  const byPeer = Object.fromEntries(a.status().map((s) => [s.peer, s]));
  assert.equal(byPeer.b.path, "fastdp");
  assert.equal(byPeer.b.mtu, 1400);
  assert.equal(byPeer.c.path, "sleeve");
  assert.equal(byPeer.c.encrypted, true);
  assert.equal(byPeer.d.path, "relay");
  await a.removePeer("b");
  assert.equal(a.peerEndpoints("b"), undefined);
  await assert.rejects(() => a.upsertPeer({ name: "x", data: "{}" }), /version/);
});
