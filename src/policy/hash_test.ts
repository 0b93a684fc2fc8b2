import assert from "node:assert/strict";
import { stableId } from "./hash.ts";

Deno.test("stableId is 64-bit FNV-1a: the reference vectors, and multi-byte text", () => {
  assert.equal(stableId(""), "cbf29ce484222325");
  assert.equal(stableId("a"), "af63dc4c8601ec8c");
  assert.equal(stableId("foobar"), "85944171f73967e8");
  // a name from docs/policy.md's listing: kernel object names stay what they were
  assert.equal(stableId("shop/web"), "1b2ce43c8d2a78c4");
  assert.match(stableId("ns-é-名"), /^[0-9a-f]{16}$/);
});
