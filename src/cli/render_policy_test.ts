import assert from "node:assert/strict";
import { renderPolicy } from "./render_policy.ts";

Deno.test("status policy: per pod the policies of each direction, open when none, pending", () => {
  const text = renderPolicy({
    enabled: true,
    node: "node1",
    synced: true,
    policies: 2,
    pods: [
      {
        address: "10.32.0.2",
        pod: "shop/web",
        state: "enforced",
        ingress: ["shop/deny-all", "shop/web"],
        egress: [],
      },
      {
        address: "10.32.0.3",
        pod: "shop/late",
        state: "pending",
        ingress: [],
        egress: [],
        pendingSince: "2026-01-02T03:04:05.000Z",
      },
    ],
    lastApply: { at: "2026-01-02T03:04:06.000Z", kind: "patch", lines: 2, ms: 31.5 },
    problems: [],
  });
  assert.match(text, /^Enforcing: +yes, node node1$/m);
  assert.match(text, /^Local pods: +2, 1 pending$/m);
  assert.match(text, /^shop\/web +10\.32\.0\.2 +enforced +shop\/deny-all,shop\/web +open$/m);
  assert.match(text, /^shop\/late +10\.32\.0\.3 +pending since 2026-01-02T03:04:05\.000Z/m);
  assert.match(text, /patch, 2 nft lines, 31\.5 ms/);
});

Deno.test("status policy: off says why", () => {
  const text = renderPolicy({
    enabled: false,
    reason: "not on Kubernetes",
    synced: false,
    policies: 0,
    pods: [],
    problems: [],
  });
  assert.equal(text, "Enforcing:  no (not on Kubernetes)");
});
