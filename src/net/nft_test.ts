import assert from "node:assert/strict";
import {
  deleteTableScript,
  describeNftFailure,
  nftName,
  parseNftTable,
  setElementsScript,
} from "./nft.ts";

Deno.test("nft's error names the script line it refused, quoted back in the message", () => {
  const script = "add element inet t s { 10.0.0.1 }\ndelete element inet t s { 10.0.0.9 }\n";
  const stderr = "/dev/stdin:2:26-33: Error: Could not process rule: No such file or directory\n" +
    "delete element inet t s { 10.0.0.9 }\n                         ^^^^^^^^\n";
  assert.equal(
    describeNftFailure(script, stderr),
    "nft refused the script: Could not process rule: No such file or directory (line 2: " +
      '"delete element inet t s { 10.0.0.9 }")',
  );
  assert.equal(
    describeNftFailure(script, "Operation not permitted\n"),
    "nft refused the script: Operation not permitted",
  );
});

Deno.test("set element changes: removals survive elements that are already gone", () => {
  const script = setElementsScript({ family: "inet", table: "weft-underlay", name: "peers" }, {
    add: ["192.0.2.1"],
    remove: ["192.0.2.7", "192.0.2.8"],
  });
  assert.equal(
    script,
    "add element inet weft-underlay peers { 192.0.2.1 }\n" +
      "add element inet weft-underlay peers { 192.0.2.7, 192.0.2.8 }\n" +
      "delete element inet weft-underlay peers { 192.0.2.7, 192.0.2.8 }\n",
  );
  assert.equal(setElementsScript({ family: "inet", table: "t", name: "s" }, {}), "");
  assert.throws(
    () => setElementsScript({ family: "inet", table: "t", name: "s" }, { add: ["1 }; flush"] }),
    /Invalid set element/,
  );
});

Deno.test("names that could break out of a script are refused", () => {
  assert.equal(nftName("weft-policy"), "weft-policy");
  assert.throws(() => nftName("x; flush ruleset"), /Invalid nftables name/);
  assert.throws(() => nftName(""), /Invalid nftables name/);
  assert.match(deleteTableScript("inet", "weft-underlay"), /^table inet weft-underlay \{\}\n/);
});

Deno.test("a listed table gives its sets, chains and rule counters by comment", () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6" } },
      { table: { family: "inet", name: "t", handle: 1 } },
      { set: { family: "inet", name: "peers", table: "t", type: "ipv4_addr", elem: ["10.0.0.1"] } },
      { set: { family: "inet", name: "empty", table: "t", type: "ipv4_addr" } },
      {
        chain: {
          family: "inet",
          table: "t",
          name: "input",
          type: "filter",
          hook: "input",
          prio: -5,
          policy: "accept",
        },
      },
      {
        rule: {
          family: "inet",
          table: "t",
          chain: "input",
          handle: 4,
          comment: "forged vxlan",
          expr: [{ counter: { packets: 3, bytes: 150 } }, { drop: null }],
        },
      },
    ],
  });
  const table = parseNftTable(json, "inet", "t");
  assert.deepEqual(table.sets.map((s) => [s.name, s.elements]), [["peers", ["10.0.0.1"]], [
    "empty",
    [],
  ]]);
  assert.deepEqual(table.chains, [{
    name: "input",
    type: "filter",
    hook: "input",
    priority: -5,
    policy: "accept",
  }]);
  assert.deepEqual(table.rules[0].counter, { packets: 3, bytes: 150 });
  assert.equal(table.rules[0].comment, "forged vxlan");
});
