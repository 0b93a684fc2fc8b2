/** Plain-text tables for people; `--json` prints the API's answer unchanged for scripts. */

export function table(
  headers: string[],
  rows: Array<Array<string | number | boolean | undefined>>,
): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => c === undefined ? "-" : String(c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

export function keyValues(entries: Array<[string, string | number | boolean | undefined]>): string {
  const width = Math.max(...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${(k + ":").padEnd(width + 1)}  ${v ?? "-"}`).join("\n");
}
