import assert from "node:assert/strict";
import { HOST_VETH_PREFIX, hostVethName } from "./names.ts";

Deno.test("host veth name: vethwepl + 7 hex, 15 characters, stable", async () => {
  const name = await hostVethName("0123456789abcdef", "eth0");
  assert.match(name, new RegExp(`^${HOST_VETH_PREFIX}[0-9a-f]{7}$`));
  assert.equal(name.length, 15);
  assert.equal(await hostVethName("0123456789abcdef", "eth0"), name);
});

Deno.test("host veth name: two interfaces of one pod get different names", async () => {
  assert.notEqual(await hostVethName("pod", "eth0"), await hostVethName("pod", "net1"));
  assert.notEqual(await hostVethName("pod-a", "eth0"), await hostVethName("pod-b", "eth0"));
});
