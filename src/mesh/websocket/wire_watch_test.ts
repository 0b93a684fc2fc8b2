import assert from "node:assert/strict";
import { WireWatch } from "./wire_watch.ts";

function watch() {
  let now = 1_000_000;
  const lines: string[] = [];
  const w = new WireWatch({ log: (m) => lines.push(m), now: () => now, windowMs: 300_000 });
  return { w, lines, advance: (ms: number) => now += ms };
}

Deno.test("a flood shows as one diagnostic naming its busiest sources, and clears after it stops", () => {
  const { w, lines, advance } = watch();
  for (let i = 0; i < 50; i++) w.evicted("10.0.0.9", { perSource: true, value: 8 });
  for (let i = 0; i < 5; i++) w.evicted("10.0.0.7", { perSource: true, value: 8 });
  advance(120_000);
  w.evicted("10.0.0.8", { perSource: false, value: 256 });
  const [flood] = w.diagnostics();
  assert.equal(flood.code, "mesh-port-flood");
  assert.equal(flood.severity, "warning");
  assert.match(
    flood.message,
    /^56 unauthenticated connections .* last 2 min, most from 10\.0\.0\.9 \(50\), 10\.0\.0\.7 \(5\), 10\.0\.0\.8 \(1\)$/,
  );
  assert.equal(w.counters.evicted, 56);
  // one line per kind, not one per connection
  assert.deepEqual(lines, [
    "unauthenticated mesh connections at their limit (8 from 10.0.0.9): the oldest gives way",
    "unauthenticated mesh connections at their limit (256 in total): the oldest gives way",
  ]);
  advance(299_000);
  assert.equal(w.diagnostics().length, 1, "still within five minutes of the last eviction");
  advance(2_000);
  assert.deepEqual(w.diagnostics(), []);
  // the next episode counts from zero
  w.evicted("10.0.0.1", { perSource: true, value: 8 });
  assert.match(w.diagnostics()[0].message, /^1 unauthenticated .* 10\.0\.0\.1 \(1\)$/);
});

Deno.test("descriptors running out is an error with the fix; logged again a minute later with a count", () => {
  const { w, lines, advance } = watch();
  for (let i = 0; i < 3; i++) w.acceptFailed("Too many open files (os error 24)");
  advance(61_000);
  w.acceptFailed("Too many open files (os error 24)");
  const [exhausted] = w.diagnostics();
  assert.equal(exhausted.code, "descriptors-exhausted");
  assert.equal(exhausted.severity, "error");
  assert.match(exhausted.message, /could not accept 4 connection\(s\).*os error 24/);
  assert.match(exhausted.fix, /LimitNOFILE/);
  assert.deepEqual(lines, [
    "cannot accept on the mesh port: Too many open files (os error 24)",
    "cannot accept on the mesh port: Too many open files (os error 24) (2 more like this since the last report)",
  ]);
});

Deno.test("a budget shrunk to the file limit and refusals at the connection limit are warnings", () => {
  const { w } = watch();
  w.fileLimit(1024, 112, 256, 200);
  w.overLimit(200, "10.0.0.5:40000");
  assert.deepEqual(w.diagnostics().map((d) => [d.code, d.severity]), [
    ["file-limit-low", "warning"],
    ["connection-limit", "warning"],
  ]);
  assert.match(
    w.diagnostics()[0].message,
    /1024 leaves room for 112 .* \(of 256\) beside conn-limit 200/,
  );
  assert.equal(w.counters.overLimit, 1);
});
