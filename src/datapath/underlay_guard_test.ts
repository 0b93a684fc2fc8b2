import assert from "node:assert/strict";
import { GUARD_RULES, guardChanges, type GuardConfig, guardScript } from "./underlay_guard.ts";

const config: GuardConfig = {
  bridge: "weave",
  vxlanDevice: "vxlan-6784",
  tapDevice: "weft-sleeve",
  vxlanPort: 6784,
  sleevePort: 6783,
  meshPort: 6783,
  apiPort: 6784,
};

Deno.test("the guard replaces both tables in one script, with the elements it is given", () => {
  const script = guardScript(config, {
    peers: ["192.0.2.2"],
    peerBridges: ["10.32.0.2"],
    bridges: ["10.32.0.2", "10.32.0.1"],
  });
  const lines = script.split("\n");
  // declare-then-delete first: a restart replaces what is there, and a first start works too
  assert.deepEqual(lines.slice(0, 4), [
    "table inet weft-underlay {}",
    "delete table inet weft-underlay",
    "table bridge weft-underlay {}",
    "delete table bridge weft-underlay",
  ]);
  assert.match(script, /set peers \{ type ipv4_addr; elements = \{ 192\.0\.2\.2 \}; \}/);
  assert.match(
    script,
    /set bridges \{ type ipv4_addr; elements = \{ 10\.32\.0\.2, 10\.32\.0\.1 \}; \}/,
  );
  assert.match(script, /iifname "weave" tcp dport \{ 6783, 6784 \} counter drop/);
  assert.match(
    script,
    /udp dport 6784 ip saddr != @peers counter drop comment "vxlan from a non-peer"/,
  );
  assert.match(
    script,
    /iifname != \{ "vxlan-6784", "weft-sleeve" \} ip saddr @bridges counter drop/,
  );
  for (const comment of Object.values(GUARD_RULES)) assert.ok(script.includes(`"${comment}"`));
  // the probes' exception comes before the rule that drops pods' packets to the sleeve port
  assert.ok(script.indexOf(GUARD_RULES.probes) < script.indexOf(GUARD_RULES.podToNodeUdp));
  const empty = guardScript(config, { peers: [], peerBridges: [], bridges: [] });
  assert.match(empty, /set peers \{ type ipv4_addr; \}/);
});

Deno.test("other ports and names reach the rules; a name that could escape is refused", () => {
  const script = guardScript({ ...config, bridge: "br-pods", meshPort: 7000, apiPort: 7000 }, {
    peers: [],
    peerBridges: [],
    bridges: [],
  });
  assert.match(script, /iifname "br-pods" tcp dport \{ 7000 \}/);
  assert.throws(
    () =>
      guardScript({ ...config, bridge: 'x" accept' }, { peers: [], peerBridges: [], bridges: [] }),
    /Invalid interface name/,
  );
});

Deno.test("set changes: additions first, removals only when asked, nothing when equal", () => {
  const before = { peers: ["192.0.2.2"], peerBridges: ["10.32.0.2"], bridges: ["10.32.0.2"] };
  const after = { peers: ["192.0.2.3"], peerBridges: ["10.32.0.3"], bridges: ["10.32.0.3"] };
  const adds = guardChanges(before, after, { add: true, remove: false });
  assert.equal(
    adds,
    "add element inet weft-underlay peers { 192.0.2.3 }\n" +
      "add element inet weft-underlay peer-bridges { 10.32.0.3 }\n" +
      "add element bridge weft-underlay bridges { 10.32.0.3 }\n",
  );
  const both = guardChanges(before, after, { add: true, remove: true });
  assert.match(both, /delete element inet weft-underlay peers \{ 192\.0\.2\.2 \}/);
  assert.match(both, /delete element bridge weft-underlay bridges \{ 10\.32\.0\.2 \}/);
  assert.equal(guardChanges(after, after, { add: true, remove: true }), "");
});
