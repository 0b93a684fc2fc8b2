/**
 * What `weft status` and its parts print for people: the API's answers as key-value blocks and
 * tables, and the node's problems as plain sentences, each with what to do about it.
 */
import type { Diagnostic, IpamStatusView, StatusView } from "../api/mod.ts";
import { keyValues, table } from "./format.ts";

/**
 * The problems as sentences: what is wrong (with the code scripts can match), then what to do.
 * Empty when there are none, so a healthy node prints nothing extra.
 */
export function renderProblems(problems: Diagnostic[] | undefined, ready: boolean): string {
  if (!problems?.length) return "";
  const lines = [ready ? "Problems:" : "Not ready, because:"];
  const ordered = [...problems].sort((a, b) =>
    (a.severity === "error" ? 0 : 1) - (b.severity === "error" ? 0 : 1)
  );
  for (const problem of ordered) {
    lines.push(
      `  ${
        problem.severity === "error" ? "ERROR" : "WARNING"
      } (${problem.code}) ${problem.message}`,
      `    What to do: ${problem.fix}`,
    );
  }
  return lines.join("\n");
}

function withProblems(text: string, problems: Diagnostic[] | undefined, ready: boolean): string {
  const block = renderProblems(problems, ready);
  return block ? `${text}\n\n${block}` : text;
}

export function renderStatus(s: StatusView): string {
  return withProblems(renderStatusFields(s), s.problems, s.ready);
}

function renderStatusFields(s: StatusView): string {
  return keyValues([
    ["Version", s.version],
    ["Ready", s.ready ? "yes" : `no (${s.reason ?? "unknown"})`],
    ["Peer", `${s.peerName} (${s.nickname})`],
    ["Range", s.range],
    ["Bridge", `${s.bridge.name} ${s.bridge.address || "(no address yet)"} mtu ${s.bridge.mtu}`],
    ["Addresses", `${s.ipam.used} used, ${s.ipam.free} free on this node`],
    ...(s.mesh
      ? [
        ["Peers", `${s.mesh.reachable} reachable of ${s.mesh.peers}`] as [string, string],
        ["Connections", `${s.mesh.established} established of ${s.mesh.connections}`] as [
          string,
          string,
        ],
      ]
      : []),
    ...(s.datapath
      ? [["Data path", `${s.datapath.mode} mtu ${s.datapath.mtu}`] as [string, string]]
      : []),
    ["Uptime", `${s.uptimeSeconds}s`],
  ]);
}

export function renderIpam(s: IpamStatusView): string {
  const lines = [
    keyValues([
      ["Range", s.range],
      ["Ready", s.ready ? "yes" : `no (${s.reason ?? "unknown"})`],
      ["Owned here", `${s.used} used, ${s.free} free`],
      ...(s.unreachablePercentage !== undefined
        ? [
          ["Unreachable", `${s.unreachablePercentage.toFixed(1)}% of the range`] as [
            string,
            string,
          ],
        ]
        : []),
    ]),
    "",
    table(["START", "END", "SIZE", "USED"], s.owned.map((r) => [r.start, r.end, r.size, r.used])),
  ];
  if (s.peers?.length) {
    lines.push(
      "",
      table(
        ["PEER", "NICKNAME", "OWNED", "USED", "FREE", "REACHABLE"],
        s.peers.map((
          p,
        ) => [p.peer, p.nickname, p.owned, p.used, p.free, p.reachable ? "yes" : "NO"]),
      ),
    );
  }
  return withProblems(lines.join("\n"), s.problems, s.ready);
}

/** Epoch-millisecond fields (since, lastSeen, nextAttempt) read better relative to now. */
const TIME_FIELDS = new Set(["since", "lastSeen", "nextAttempt"]);

function cell(key: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (TIME_FIELDS.has(key) && typeof value === "number" && value > 1e12) {
    const seconds = Math.round((Date.now() - value) / 1000);
    return seconds >= 0 ? `${seconds}s ago` : `in ${-seconds}s`;
  }
  return String(value);
}

export function renderRecords(records: unknown[]): string {
  if (records.length === 0) return "(none)";
  const rows = records.map((r) => r as Record<string, unknown>);
  // every scalar field any record has, in first-seen order (relayed peers add path fields)
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) =>
    rows.every((r) => typeof r[k] !== "object" || r[k] === null)
  );
  return table(keys.map((k) => k.toUpperCase()), rows.map((r) => keys.map((k) => cell(k, r[k]))));
}
