import assert from "node:assert/strict";
import { LogBuffer } from "./log_buffer.ts";

Deno.test("the log buffer keeps the newest lines in order, each cut to its length", () => {
  let now = Date.UTC(2026, 0, 1);
  const buffer = new LogBuffer({ lines: 3, lineLength: 10, now: () => now++ });
  for (const line of ["one", "two", "three", "four", "a line much longer than ten"]) {
    buffer.push(line);
  }
  const { lines, dropped } = buffer.read();
  assert.deepEqual(lines.map((l) => l.message), ["three", "four", "a line mu…"]);
  assert.equal(dropped, 2);
  assert.equal(lines[0].time, "2026-01-01T00:00:00.002Z");
  // still in order after wrapping more than once
  for (let i = 0; i < 7; i++) buffer.push(`n${i}`);
  assert.deepEqual(buffer.read().lines.map((l) => l.message), ["n4", "n5", "n6"]);
});
