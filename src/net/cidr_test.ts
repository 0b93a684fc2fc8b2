import assert from "node:assert/strict";
import {
  cidrContains,
  cidrSize,
  cidrWithin,
  formatCidr,
  formatIp,
  formatRange,
  intersectRanges,
  isReservedInCidr,
  macForAddress,
  maskAddress,
  parseCidr,
  parseIp,
} from "./cidr.ts";

Deno.test("parseIp and formatIp round-trip the whole unsigned range", () => {
  for (const text of ["0.0.0.0", "10.32.0.1", "255.255.255.255", "192.168.1.254"]) {
    assert.equal(formatIp(parseIp(text)), text);
  }
  assert.equal(parseIp("255.255.255.255"), 2 ** 32 - 1);
});

Deno.test("parseIp names the bad text", () => {
  for (const bad of ["10.32.0", "10.32.0.256", "a.b.c.d", "10.32.0.1.5", "", "1.2.3.-1"]) {
    assert.throws(() => parseIp(bad), new RegExp(`"${bad.replace(/\./g, "\\.")}"`));
  }
});

Deno.test("parseCidr rejects host bits and suggests the block meant", () => {
  assert.deepEqual(parseCidr("10.32.0.0/12"), { base: parseIp("10.32.0.0"), prefix: 12 });
  assert.throws(() => parseCidr("10.32.0.1/12"), /did you mean 10\.32\.0\.0\/12/);
  assert.equal(formatCidr(parseCidr("10.32.0.1/12", { strict: false })), "10.32.0.0/12");
  assert.throws(() => parseCidr("10.0.0.0/33"), /over 32/);
  assert.throws(() => parseCidr("10.0.0.0"), /expected a\.b\.c\.d\/n/);
});

Deno.test("sizes, containment and masks at the edges of the address space", () => {
  assert.equal(cidrSize(parseCidr("10.32.0.0/12")), 1 << 20);
  assert.equal(cidrSize(parseCidr("0.0.0.0/0")), 2 ** 32);
  assert.equal(maskAddress(parseIp("255.255.255.255"), 1), parseIp("128.0.0.0"));
  const range = parseCidr("10.32.0.0/12");
  assert.ok(cidrContains(range, parseIp("10.47.255.255")));
  assert.ok(!cidrContains(range, parseIp("10.48.0.0")));
  assert.ok(cidrWithin(parseCidr("10.33.0.0/16"), range));
  assert.ok(!cidrWithin(parseCidr("10.0.0.0/8"), range));
  assert.ok(isReservedInCidr(range, parseIp("10.32.0.0")));
  assert.ok(isReservedInCidr(range, parseIp("10.47.255.255")));
  assert.ok(!isReservedInCidr(range, parseIp("10.32.0.1")));
});

Deno.test("range intersection and formatting", () => {
  assert.deepEqual(intersectRanges({ start: 0, end: 10 }, { start: 5, end: 20 }), {
    start: 5,
    end: 10,
  });
  assert.equal(intersectRanges({ start: 0, end: 5 }, { start: 5, end: 20 }), undefined);
  assert.equal(
    formatRange({ start: parseIp("10.32.0.0"), end: parseIp("10.32.1.0") }),
    "10.32.0.0-10.32.0.255",
  );
});

Deno.test("a pod's MAC is derived from its address in the locally administered space", () => {
  assert.equal(macForAddress(parseIp("10.32.0.5")), "0a:58:0a:20:00:05");
  assert.equal(macForAddress(parseIp("255.255.255.255")), "0a:58:ff:ff:ff:ff");
});
