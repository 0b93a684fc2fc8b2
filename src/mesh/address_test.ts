import assert from "node:assert/strict";
import { isLocalAddress, localHostAddresses, normalizeAddress } from "./address.ts";

Deno.test("an address is this peer only with one of this host's addresses and our port", () => {
  const hostAddresses = ["10.0.0.1", "fe80::1", "127.0.0.1"];
  const local = (text: string, port = 6783) =>
    isLocalAddress(normalizeAddress(text), { port, hostAddresses });
  assert.ok(local("10.0.0.1"));
  assert.ok(local("10.0.0.1:6783"));
  assert.ok(local("[FE80::1]:6783"));
  assert.ok(local("127.0.0.1"));
  assert.ok(local("0.0.0.0"));
  assert.ok(!local("10.0.0.1:7000"), "another port on this host is another peer");
  assert.ok(local("10.0.0.1:7000", 7000));
  assert.ok(!local("10.0.0.2"));
  assert.ok(!local("node-a"), "host names are not resolved");
});

Deno.test("this machine's addresses include loopback", () => {
  const addresses = localHostAddresses();
  assert.ok(addresses.includes("127.0.0.1"), JSON.stringify(addresses));
  assert.ok(isLocalAddress("127.0.0.1:6783", { port: 6783 }));
});
