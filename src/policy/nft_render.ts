/**
 * Compiled rule sets as `nft -f` scripts for table `inet weft-policy`. A script is one
 * transaction: the kernel applies all of it or none, so no packet ever meets half a change.
 *
 * The full script replaces the table (add, delete, then create: the idiom that works whether or
 * not it exists) and is what the agent runs at start and whenever the kernel may have drifted.
 * The patch script applies a `RuleSetDiff` in place: new objects first, then element changes
 * (a removal tolerates an element already gone), then renewed chains, and only then deletions,
 * when no rule refers to the deleted objects any more. Per-policy drop counters survive patches (a full replacement starts them from zero).
 * Both print statements in the flat `add …` form, one per line, from the same helpers.
 */
import { formatIp } from "../net/cidr.ts";
import { deleteTableScript, nftName, setElementsScript } from "../net/nft.ts";
import type { ElementChange, RuleSetDiff } from "./diff.ts";
import { formatInterval } from "./elements.ts";
import type { Chain, CompiledRuleSet, CounterDef, Element, Match, Rule, SetDef } from "./ir.ts";

export const POLICY_TABLE = "weft-policy";

export interface RenderOptions {
  /** Table name in the inet family (tests use their own). Default `weft-policy`. */
  table?: string;
}

export function renderRuleSet(ruleSet: CompiledRuleSet, options: RenderOptions = {}): string {
  const table = tableName(options);
  const t = `inet ${table}`;
  const node = ruleSet.node ? ` for node ${ruleSet.node}` : "";
  const lines = [
    `# weft NetworkPolicy${node}: generated, replaced as a whole`,
    deleteTableScript("inet", table).trimEnd(),
    `add table ${t} { comment ${quote(`weft NetworkPolicy${node}`)}; }`,
  ];
  for (const set of ruleSet.sets) {
    lines.push(addSet(t, set));
    const add = [...ruleSet.members.get(set.name) ?? []];
    if (add.length) {
      lines.push(elementsScript(table, set.name, { kind: set.kind, add, remove: [] }));
    }
  }
  for (const counter of ruleSet.counters) lines.push(addCounter(t, counter));
  // Every chain exists before any rule jumps to it.
  for (const chain of ruleSet.chains) lines.push(addChain(t, chain));
  for (const chain of ruleSet.chains) lines.push(...addRules(t, chain));
  return lines.join("\n") + "\n";
}

/** The transaction for a diff; a `replace` diff renders the full script. */
export function renderDiff(diff: RuleSetDiff, options: RenderOptions = {}): string {
  if (diff.kind === "replace") return renderRuleSet(diff.ruleSet, options);
  const table = tableName(options);
  const t = `inet ${table}`;
  const lines: string[] = [];
  for (const set of diff.sets.add) lines.push(addSet(t, set));
  for (const counter of diff.counters.add) lines.push(addCounter(t, counter));
  for (const chain of diff.chains.add) lines.push(addChain(t, chain));
  // Removal tolerates an element already gone (the kernel's state is what counts).
  for (const change of diff.elements) lines.push(elementsScript(table, change.set, change));
  for (const chain of diff.chains.replace) {
    lines.push(`flush chain ${t} ${chain.name}`);
    lines.push(...addRules(t, chain));
  }
  for (const chain of diff.chains.add) lines.push(...addRules(t, chain));
  for (const name of diff.chains.remove) {
    lines.push(`flush chain ${t} ${name}`, `delete chain ${t} ${name}`);
  }
  for (const name of diff.sets.remove) lines.push(`delete set ${t} ${name}`);
  for (const name of diff.counters.remove) lines.push(`delete counter ${t} ${name}`);
  return lines.length ? lines.join("\n") + "\n" : "";
}

function tableName(options: RenderOptions): string {
  return nftName(options.table ?? POLICY_TABLE);
}

const SET_TYPE: Record<SetDef["kind"], string> = {
  addr: "type ipv4_addr;",
  interval: "type ipv4_addr; flags interval;",
  "addr-port": "type ipv4_addr . inet_service;",
};

function addSet(t: string, set: SetDef): string {
  return `add set ${t} ${set.name} { ${SET_TYPE[set.kind]} comment ${quote(set.comment)}; }`;
}

function elementsScript(table: string, set: string, change: Omit<ElementChange, "set">): string {
  const format = (e: Element) => formatElement(change.kind, e);
  const script = setElementsScript(
    { family: "inet", table, name: set },
    { add: change.add.map(format), remove: change.remove.map(format) },
  );
  return script.trimEnd();
}

function formatElement(kind: SetDef["kind"], element: Element): string {
  switch (kind) {
    case "addr":
      return formatIp(element[0]);
    case "interval":
      return formatInterval(element[0], element[1]);
    case "addr-port":
      return `${formatIp(element[0])} . ${element[1]}`;
  }
}

function addCounter(t: string, counter: CounterDef): string {
  return `add counter ${t} ${counter.name} { comment ${quote(counter.comment)}; }`;
}

function addChain(t: string, chain: Chain): string {
  if (!chain.hook) return `add chain ${t} ${chain.name}`;
  const priority = chain.hook.priority === 0 ? "filter" : `filter + ${chain.hook.priority}`;
  return `add chain ${t} ${chain.name} { type filter hook forward priority ${priority}; policy accept; }`;
}

function addRules(t: string, chain: Chain): string[] {
  return chain.rules.map((rule) => `add rule ${t} ${chain.name} ${formatRule(rule)}`);
}

export function formatRule(rule: Rule): string {
  const parts = rule.matches.map(formatMatch);
  if (rule.counter) parts.push(`counter name ${quote(rule.counter)}`);
  if (rule.log) {
    if (rule.verdict) throw new TypeError("A logging rule cannot carry a verdict (limit gates it)");
    parts.push(
      `limit rate ${rule.log.perSecond}/second log prefix ${quote(rule.log.prefix)} level info`,
    );
  }
  if (rule.verdict) {
    parts.push(rule.verdict.kind === "jump" ? `jump ${rule.verdict.chain}` : rule.verdict.kind);
  }
  if (rule.comment) parts.push(`comment ${quote(rule.comment)}`);
  return parts.join(" ");
}

function formatMatch(match: Match): string {
  switch (match.kind) {
    case "ct":
      return `ct state ${match.states.join(",")}`;
    case "addr":
      return `ip ${match.field} @${match.set}`;
    case "ports": {
      const ranges = match.ranges.map((r) =>
        `${r.protocol.toLowerCase()} . ${r.first === r.last ? r.first : `${r.first}-${r.last}`}`
      );
      return `meta l4proto . th dport { ${ranges.join(", ")} }`;
    }
    case "named-port":
      return `meta l4proto ${match.protocol.toLowerCase()} ip daddr . th dport @${match.set}`;
  }
}

/**
 * A quoted nft string, cut to the kernel's limit for comments and log prefixes (128 bytes with
 * the terminator), keeping only characters that cannot end the string or the statement
 * (policy names are DNS names anyway).
 */
function quote(text: string): string {
  return `"${text.replace(/[^A-Za-z0-9 ./:_=,()!\[\]-]/g, "_").slice(0, 127)}"`;
}
