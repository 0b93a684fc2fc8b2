import assert from "node:assert/strict";
import {
  defaultRouteMessage,
  encodeBatch,
  hairpinMessage,
  newAddressMessage,
  newVethMessage,
} from "./netlink_message.ts";

interface Attribute {
  type: number;
  payload: Uint8Array;
}

/** Splits an attribute area, failing on any length that does not fit exactly (as the kernel does). */
function attributes(bytes: Uint8Array): Attribute[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Attribute[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const length = view.getUint16(offset, true);
    assert.ok(length >= 4 && offset + length <= bytes.length, `attribute at ${offset}: ${length}`);
    out.push({
      type: view.getUint16(offset + 2, true) & 0x3fff,
      payload: bytes.subarray(offset + 4, offset + length),
    });
    offset += (length + 3) & ~3;
  }
  assert.equal(offset, bytes.length, "attributes fill the area exactly");
  return out;
}

function find(list: Attribute[], type: number): Attribute {
  const found = list.find((a) => a.type === type);
  assert.ok(found, `attribute ${type}`);
  return found;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).replace(/\0+$/, "");
const u32 = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);

Deno.test("netlink: a veth request nests the peer, in its namespace, inside linkinfo", () => {
  const bytes = newVethMessage("vethwepl1234567", {
    peerName: "eth0",
    peerNetnsFd: 7,
    bridgeIndex: 3,
    mtu: 1376,
    hostMac: "02:00:00:aa:bb:cc",
  }).encode(42);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint32(0, true), bytes.length, "header length is the message's");
  assert.equal(view.getUint16(4, true), 16, "RTM_NEWLINK");
  assert.equal(view.getUint16(6, true), 0x1 | 0x4 | 0x200 | 0x400, "request, ack, excl, create");
  assert.equal(view.getUint32(8, true), 42);
  const top = attributes(bytes.subarray(16 + 16));
  assert.equal(text(find(top, 3).payload), "vethwepl1234567");
  assert.equal(u32(find(top, 4).payload), 1376);
  assert.deepEqual([...find(top, 1).payload], [2, 0, 0, 0xaa, 0xbb, 0xcc]);
  assert.equal(u32(find(top, 10).payload), 3, "master: the bridge");
  const linkinfo = attributes(find(top, 18).payload);
  assert.equal(text(find(linkinfo, 1).payload), "veth");
  const peerInfo = find(attributes(find(linkinfo, 2).payload), 1).payload;
  const peer = attributes(peerInfo.subarray(16)); // after the peer's own ifinfomsg
  assert.equal(text(find(peer, 3).payload), "eth0");
  assert.equal(u32(find(peer, 28).payload), 7, "IFLA_NET_NS_FD");
});

Deno.test("netlink: hairpin is bridge slave data on a port named, not indexed", () => {
  const bytes = hairpinMessage("vethwepl1234567").encode(1);
  const ifinfo = new DataView(bytes.buffer, 16, 16);
  assert.equal(ifinfo.getUint32(4, true), 0, "no index: the kernel finds the port by name");
  const top = attributes(bytes.subarray(32));
  assert.equal(text(find(top, 3).payload), "vethwepl1234567");
  const linkinfo = attributes(find(top, 18).payload);
  assert.equal(text(find(linkinfo, 4).payload), "bridge");
  assert.deepEqual([...find(attributes(find(linkinfo, 5).payload), 4).payload], [1]);
});

Deno.test("netlink: address and default route carry the prefix, gateway and link", () => {
  const address = newAddressMessage(9, "10.32.0.5/12").encode(1);
  assert.deepEqual([...address.subarray(16, 24)], [2, 12, 0, 0, 9, 0, 0, 0], "ifaddrmsg");
  assert.deepEqual([...find(attributes(address.subarray(24)), 2).payload], [10, 32, 0, 5]);
  const route = defaultRouteMessage(9, "10.32.0.1").encode(2);
  assert.deepEqual([...route.subarray(16, 28)], [2, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0]);
  const attrs = attributes(route.subarray(28));
  assert.deepEqual([...find(attrs, 5).payload], [10, 32, 0, 1]);
  assert.equal(u32(find(attrs, 4).payload), 9);
});

Deno.test("netlink: a batch is the messages back to back, numbered in order", () => {
  const steps = [
    { operation: "a", message: newAddressMessage(1, "10.0.0.1/8") },
    { operation: "b", message: defaultRouteMessage(1, "10.0.0.254") },
  ];
  const batch = encodeBatch(steps, 100);
  const view = new DataView(batch.buffer);
  const first = view.getUint32(0, true);
  assert.equal(view.getUint32(8, true), 100);
  assert.equal(view.getUint32(first + 8, true), 101);
  assert.equal(first + view.getUint32(first, true), batch.length);
});
