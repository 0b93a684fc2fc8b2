import assert from "node:assert/strict";
import { openFileLimit, parseOpenFileLimit } from "./limits.ts";

const sample = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("the soft open-file limit is read from /proc's table", () => {
  assert.equal(parseOpenFileLimit(sample), 20000);
  assert.equal(
    parseOpenFileLimit(sample.replace("20000                20000", "unlimited   unlimited")),
    Number.MAX_SAFE_INTEGER,
  );
  assert.equal(parseOpenFileLimit("Max cpu time  unlimited  unlimited  seconds\n"), undefined);
  assert.equal(parseOpenFileLimit("Max open files  lots  lots  files\n"), undefined);
});

Deno.test("this process has an open-file limit above the descriptors it holds", () => {
  const limit = openFileLimit();
  assert.ok(limit !== undefined && limit > [...Deno.readDirSync("/proc/self/fd")].length);
});
