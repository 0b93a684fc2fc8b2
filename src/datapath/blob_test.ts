import assert from "node:assert/strict";
import { decodePeerBlob, encodePeerBlob, type PeerBlob, PeerBlobError } from "./blob.ts";

const sample: PeerBlob = {
  v: 1,
  ip: "192.168.7.2",
  vxlanPort: 6784,
  udpPort: 6783,
  vni: 7,
  bridgeMac: "0a:58:0a:20:00:01",
  bridgeIp: "10.32.0.1",
  underlayMtu: 1500,
  endpoints: [{ mac: "0a:58:0a:20:00:05", ip: "10.32.0.5" }],
};

Deno.test("peer blob survives an encode/decode round trip", () => {
  assert.deepEqual(decodePeerBlob(encodePeerBlob(sample)), sample);
});

Deno.test("peer blob decoding names the bad field", () => {
  assert.throws(() => decodePeerBlob("nope"), PeerBlobError);
  assert.throws(() => decodePeerBlob(JSON.stringify({ ...sample, v: 2 })), /version 2/);
  assert.throws(() => decodePeerBlob(JSON.stringify({ ...sample, ip: "300.1.1.1" })), /bad ip/);
  assert.throws(() => decodePeerBlob(JSON.stringify({ ...sample, vxlanPort: 0 })), /vxlanPort/);
  assert.throws(
    () => decodePeerBlob(JSON.stringify({ ...sample, endpoints: [{ mac: "zz", ip: "1.2.3.4" }] })),
    /bad endpoint/,
  );
});

Deno.test("peer blob carries a node's encryption requirement, and only a literal true", () => {
  const encrypting = decodePeerBlob(encodePeerBlob({ ...sample, encrypt: true }));
  assert.equal(encrypting.encrypt, true);
  assert.equal(decodePeerBlob(JSON.stringify({ ...sample, encrypt: "yes" })).encrypt, undefined);
  assert.equal("encrypt" in decodePeerBlob(encodePeerBlob(sample)), false);
});
