import assert from "node:assert/strict";
import { isValidLinkName, randomMac } from "./link.ts";

Deno.test("link names: 1-15 bytes without '/', ':' or whitespace", () => {
  for (const good of ["eth0", "vethwepl1234567", "net-1_a"]) assert.ok(isValidLinkName(good), good);
  for (const bad of ["", "vethwepl12345678", "a/b", "a:b", "a b", "a\tb", ".", ".."]) {
    assert.ok(!isValidLinkName(bad), JSON.stringify(bad));
  }
});

Deno.test("random MAC: locally administered unicast, different each time", () => {
  const mac = randomMac();
  assert.match(mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  const first = parseInt(mac.slice(0, 2), 16);
  assert.equal(first & 0x01, 0, "unicast");
  assert.equal(first & 0x02, 0x02, "locally administered");
  assert.notEqual(randomMac(), randomMac());
});
