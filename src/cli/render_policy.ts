/**
 * `weft status policy`: whether this node enforces NetworkPolicy, and per local pod which
 * policies isolate it in each direction ("open" when none does), with the pods held pending.
 */
import type { PolicyStatusView } from "../api/mod.ts";
import { keyValues, table } from "./format.ts";
import { renderProblems } from "./render.ts";

export function renderPolicy(view: PolicyStatusView): string {
  if (!view.enabled) return keyValues([["Enforcing", `no (${view.reason ?? "off"})`]]);
  const last = view.lastApply;
  const pending = view.pods.filter((p) => p.state === "pending").length;
  const lines = [
    keyValues([
      ["Enforcing", `yes, node ${view.node}`],
      ["Synced", view.synced ? "yes" : "no (waiting for the API's first list)"],
      ["Policies", `${view.policies} enforced`],
      ["Local pods", `${view.pods.length}${pending ? `, ${pending} pending` : ""}`],
      ...(last
        ? [
          [
            "Last change",
            `${last.kind}, ${last.lines} nft lines, ${last.ms} ms, at ${last.at}`,
          ] as [
            string,
            string,
          ],
        ]
        : []),
    ]),
  ];
  if (view.pods.length) {
    lines.push(
      "",
      table(
        ["POD", "ADDRESS", "STATE", "INGRESS", "EGRESS"],
        view.pods.map((p) => [
          p.pod,
          p.address,
          p.state === "pending" && p.pendingSince ? `pending since ${p.pendingSince}` : p.state,
          p.state === "enforced" ? p.ingress.join(",") || "open" : undefined,
          p.state === "enforced" ? p.egress.join(",") || "open" : undefined,
        ]),
      ),
    );
  }
  const problems = renderProblems(view.problems, true);
  if (problems) lines.push("", problems);
  return lines.join("\n");
}
