import assert from "node:assert/strict";
import { CommandError } from "./exec.ts";
import { commandInNetns, IpBatchError } from "./netns.ts";

Deno.test("commands for another netns go through nsenter with the path", () => {
  assert.deepEqual(commandInNetns(["ip", "link"]), ["ip", "link"]);
  assert.deepEqual(commandInNetns(["ip", "link"], { netns: "/proc/42/ns/net" }), [
    "nsenter",
    "--net=/proc/42/ns/net",
    "ip",
    "link",
  ]);
});

Deno.test("a failed batch names its failing line and the kernel's words", () => {
  const lines = ["link set dev eth0 up", "route add default via 10.32.0.1 dev eth0"];
  const error = new IpBatchError(
    new CommandError(
      ["nsenter", "--net=/var/run/netns/p", "ip", "-batch", "-"],
      2,
      "RTNETLINK answers: File exists\nCommand failed -:2\n",
    ),
    lines,
  );
  assert.equal(error.line, 2);
  assert.equal(error.failedCommand, lines[1]);
  assert.ok(error.alreadyExists);
  assert.match(error.message, /ip route add default.*netns "\/var\/run\/netns\/p".*File exists/);
});

Deno.test("a batch failure without a line number keeps the plain message", () => {
  const error = new IpBatchError(new CommandError(["ip", "-batch", "-"], 1, "Segfault"), ["x"]);
  assert.equal(error.line, undefined);
  assert.ok(!error.alreadyExists);
  assert.match(error.message, /Segfault/);
});
