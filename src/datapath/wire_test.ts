import assert from "node:assert/strict";
import { deriveDirectionKeys, SleeveCipher } from "./crypto.ts";
import {
  decodeDatagram,
  encodeDatagram,
  encodeVxlanProbe,
  HEADER_BYTES,
  Kind,
  MalformedBodyError,
  packRecords,
  peerId,
  Reassembler,
  segmentDatagram,
  splitReceived,
  unpackRecords,
} from "./wire.ts";

const header = {
  kind: Kind.Data,
  ttl: 4,
  sender: peerId("b"),
  origin: peerId("a"),
  destination: peerId("c"),
};

Deno.test("peer ids are stable 16-hex-digit names", () => {
  assert.equal(peerId("node1"), peerId("node1"));
  assert.notEqual(peerId("node1"), peerId("node2"));
  assert.match(peerId("x"), /^[0-9a-f]{16}$/);
});

Deno.test("plain datagram round-trips header and records", () => {
  const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(1500).fill(7)];
  const datagram = encodeDatagram(header, packRecords(frames));
  const decoded = decodeDatagram(datagram)!;
  assert.equal(decoded.kind, Kind.Data);
  assert.equal(decoded.ttl, 4);
  assert.equal(decoded.encrypted, false);
  assert.equal(decoded.sender, header.sender);
  assert.equal(decoded.origin, header.origin);
  assert.equal(decoded.destination, header.destination);
  assert.deepEqual(unpackRecords(decoded.payload), frames);
});

Deno.test("encrypted datagram opens only with the right key and only once", () => {
  const secret = new Uint8Array(32).fill(3);
  const tx = new SleeveCipher(deriveDirectionKeys(secret, { local: "b", remote: "c" }));
  const rx = new SleeveCipher(deriveDirectionKeys(secret, { local: "c", remote: "b" }));
  const body = new TextEncoder().encode("SECRET-MARKER");
  const datagram = encodeDatagram(header, body, { cipher: tx });
  assert.equal(new TextDecoder().decode(datagram).includes("SECRET-MARKER"), false);
  const decoded = decodeDatagram(datagram)!;
  assert.equal(decoded.encrypted, true);
  assert.equal(decoded.counter, 1);
  assert.deepEqual(
    rx.open(decoded.payload, { header: decoded.header, counter: decoded.counter }),
    body,
  );
  assert.equal(
    rx.open(decoded.payload, { header: decoded.header, counter: decoded.counter }),
    undefined,
  );
  // Rewriting the clear header (e.g. the destination) breaks the tag.
  const again = encodeDatagram(header, body, { cipher: tx });
  again[30] ^= 1;
  const forged = decodeDatagram(again)!;
  assert.equal(
    rx.open(forged.payload, { header: forged.header, counter: forged.counter }),
    undefined,
  );
});

Deno.test("foreign or truncated datagrams are ignored, bad bodies rejected", () => {
  assert.equal(decodeDatagram(new Uint8Array(10)), undefined);
  assert.equal(decodeDatagram(new Uint8Array(HEADER_BYTES + 5)), undefined);
  const body = packRecords([new Uint8Array(10)]);
  assert.throws(() => unpackRecords(body.subarray(0, 8)), MalformedBodyError);
  assert.throws(() => unpackRecords(body.subarray(0, 2)), MalformedBodyError);
});

Deno.test("VXLAN probe carries a valid IPv4 header addressed to the peer bridge", () => {
  const payload = new Uint8Array([9, 9, 9]);
  const packet = encodeVxlanProbe(payload, {
    vni: 0x123456,
    sourceMac: "0a:58:0a:20:00:01",
    destinationMac: "0a:58:0a:20:00:02",
    sourceIp: "10.32.0.1",
    destinationIp: "10.32.0.2",
    sourcePort: 6783,
    destinationPort: 6783,
  });
  assert.deepEqual([...packet.subarray(0, 8)], [8, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
  assert.deepEqual([...packet.subarray(8, 14)], [0x0a, 0x58, 10, 32, 0, 2]);
  const ip = packet.subarray(22, 42);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (ip[i] << 8) | ip[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, "IPv4 header checksum verifies");
  assert.deepEqual([...ip.subarray(16, 20)], [10, 32, 0, 2]);
  assert.deepEqual([...packet.subarray(50)], [9, 9, 9]);
});

Deno.test("a big datagram is cut into self-delimiting segments and put back together", () => {
  const body = new Uint8Array(5000).map((_, i) => i & 255);
  const datagram = encodeDatagram(header, body, { id: 77 });
  const train = segmentDatagram(datagram, 1472);
  const pieces = splitReceived(train);
  assert.equal(pieces.length, Math.ceil(5000 / (1472 - 44)));
  assert.ok(pieces.slice(0, -1).every((p) => p.length === 1472), "all full but the last");
  const reassembler = new Reassembler();
  const results = pieces.reverse().map((p) => reassembler.add(decodeDatagram(p)!));
  const whole = results.at(-1)!;
  assert.ok(results.slice(0, -1).every((r) => r === undefined));
  assert.deepEqual(whole.payload, body);
  assert.equal(whole.counter, 77);
  // The rebuilt message carries the same canonical header as the unsegmented datagram.
  assert.deepEqual(whole.header, decodeDatagram(datagram)!.header);
  assert.deepEqual(segmentDatagram(datagram, 9000), datagram, "fits: sent as is");
});

Deno.test("a coalesced read splits back exactly, and stops at anything that is not ours", () => {
  const a = encodeDatagram(header, new Uint8Array([1, 2, 3]));
  const b = encodeDatagram(header, new Uint8Array([4, 5]));
  const joined = new Uint8Array([...a, ...b, 9, 9, 9]);
  assert.deepEqual(splitReceived(joined), [a, b]);
  assert.deepEqual(splitReceived(new Uint8Array(10)), []);
});
