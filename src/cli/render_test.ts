/** What `weft status` prints for people, from the API's JSON. */
import assert from "node:assert/strict";
import type { StatusView } from "../api/mod.ts";
import { renderIpam, renderStatus } from "./render.ts";

const base: StatusView = {
  version: "0.1.0",
  ready: true,
  problems: [],
  peerName: "aa:01",
  nickname: "node1",
  range: "10.32.0.0/12",
  bridge: { name: "weave", address: "10.32.0.1/12", mac: "0a:58:0a:20:00:01", mtu: 1376 },
  ipam: { range: "10.32.0.0/12", ready: true, size: 16, used: 1, free: 15, owned: [] },
  uptimeSeconds: 3,
};

Deno.test("a ready node prints its fields and no problem block", () => {
  const text = renderStatus(base);
  assert.match(text, /^Ready:\s+yes$/m);
  assert.doesNotMatch(text, /Not ready|Problems|What to do/);
});

Deno.test("a node that is not ready says why and what to do, most serious first", () => {
  const consensus = {
    code: "awaiting-consensus",
    severity: "error" as const,
    message: "Waiting for consensus on the first split: quorum 3, 2 known (aa:01, aa:02)",
    fix: "Start weft on the third node, or lower --ipalloc-init consensus=N.",
  };
  const text = renderStatus({
    ...base,
    ready: false,
    reason: "waiting for consensus",
    problems: [{
      code: "no-route-to-peer",
      severity: "warning",
      message: "No route to peer 192.168.1.13:6783",
      fix: "Check the network between this node and 192.168.1.13.",
    }, consensus],
  });
  assert.match(text, /^Ready:\s+no \(waiting for consensus\)$/m);
  const block = text.slice(text.indexOf("Not ready, because:"));
  assert.match(
    block,
    /ERROR \(awaiting-consensus\) Waiting for consensus.*quorum 3, 2 known \(aa:01, aa:02\)\n\s+What to do: Start weft on the third node/,
  );
  assert.match(block, /WARNING \(no-route-to-peer\) No route to peer 192\.168\.1\.13:6783/);
  assert.ok(block.indexOf("ERROR") < block.indexOf("WARNING"));
  const ipam = renderIpam({ ...base.ipam, ready: false, problems: [consensus] });
  assert.match(ipam, /Not ready, because:\n\s+ERROR \(awaiting-consensus\)/);
});
