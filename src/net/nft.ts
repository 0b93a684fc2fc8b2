/**
 * nftables through the `nft` tool: a script applied with `nft -f -` is one kernel transaction,
 * so a table, its sets and its chains change together or not at all, and a reader never sees
 * half of an update. This module knows nothing of what a table is for; the data path's
 * underlay guard and the NetworkPolicy renderer write their own scripts and call these.
 *
 * Each owner keeps its own table (`inet weft-underlay`, `inet weft-policy`, ...), so rebuilding
 * or deleting one never touches another program's rules, and iptables (which may itself sit on
 * nftables) is left alone.
 *
 * Two habits of nft 1.0.6 (Debian bookworm) shape the helpers: deleting a set element or a table
 * that is absent fails the whole transaction (there is no `destroy` before 1.0.8), so a removal
 * that must not fail is written as "add, then delete" inside one script; and errors name a line
 * of the script, which we quote back so the message makes sense without the script at hand.
 */
import { CommandError, run } from "./exec.ts";

export type NftFamily = "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev";

export interface NftOptions {
  /** Run inside this named network namespace (`ip netns exec`); default: the current one. */
  netns?: string;
}

export class NftError extends Error {
  /** True when the `nft` command itself is not installed. */
  readonly missing: boolean;

  constructor(
    message: string,
    readonly stderr: string,
    options?: ErrorOptions & { missing?: boolean },
  ) {
    super(message, options);
    this.name = "NftError";
    this.missing = options?.missing ?? false;
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_\-.]*$/;

/** Checks a table, chain or set name before it goes into a script (nft has no escaping). */
export function nftName(name: string): string {
  if (!NAME.test(name) || name.length > 255) {
    throw new TypeError(`Invalid nftables name ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Turns nft's complaint into one sentence that quotes its words and the script line it names:
 * `nft refused the script: Could not process rule: No such file or directory (line 2: "delete
 * element inet t s { 10.0.0.9 }")`.
 */
export function describeNftFailure(script: string, stderr: string): string {
  const lines = script.split("\n");
  const found = [...stderr.matchAll(/^[^\n:]*:(\d+):[\d-]+: Error: (.*)$/gm)];
  if (found.length === 0) {
    return `nft refused the script: ${stderr.trim() || "no output"}`;
  }
  const parts = found.map(([, line, words]) => {
    const text = lines[Number(line) - 1]?.trim();
    return text ? `${words} (line ${line}: ${JSON.stringify(text)})` : words;
  });
  return `nft refused the script: ${[...new Set(parts)].join("; ")}`;
}

async function nft(args: string[], options: NftOptions & { stdin?: string }) {
  const command = options.netns ? ["ip", "netns", "exec", options.netns, "nft"] : ["nft"];
  try {
    return await run([...command, ...args], { stdin: options.stdin, allowFailure: true });
  } catch (error) {
    if (error instanceof CommandError && error.code === 127) {
      throw new NftError(
        "nft is not installed: weft needs the nftables package (apt-get install nftables)",
        error.stderr,
        { cause: error, missing: true },
      );
    }
    throw error;
  }
}

/** Applies `script` as one transaction (`nft -f -`): all of it, or nothing and an NftError. */
export async function applyNft(script: string, options: NftOptions = {}): Promise<void> {
  const result = await nft(["-f", "-"], { ...options, stdin: script });
  if (result.code !== 0) {
    throw new NftError(describeNftFailure(script, result.stderr), result.stderr);
  }
}

/** A script fragment that removes a table whether or not it exists. */
export function deleteTableScript(family: NftFamily, table: string): string {
  // Declaring it first makes the delete succeed when it is absent, in the same transaction.
  return `table ${family} ${nftName(table)} {}\ndelete table ${family} ${nftName(table)}\n`;
}

/** Removes a table with everything in it; true when it existed. */
export async function deleteTable(
  family: NftFamily,
  table: string,
  options: NftOptions = {},
): Promise<boolean> {
  const existed = (await listTable(family, table, options)) !== undefined;
  await applyNft(deleteTableScript(family, table), options);
  return existed;
}

/**
 * Script lines that add and remove elements of a named set. Removals are written as add-then-
 * delete, so removing an element that is already gone does not fail the transaction. Elements
 * are given as nft writes them (`10.0.0.1`, `10.0.0.1 . 80`, `10.0.0.0/8`).
 */
export function setElementsScript(
  set: { family: NftFamily; table: string; name: string },
  changes: { add?: string[]; remove?: string[] },
): string {
  const target = `${set.family} ${nftName(set.table)} ${nftName(set.name)}`;
  const lines: string[] = [];
  const add = changes.add ?? [];
  const remove = changes.remove ?? [];
  for (const element of [...add, ...remove]) {
    if (/[{};\n#]/.test(element)) throw new TypeError(`Invalid set element ${element}`);
  }
  if (add.length) lines.push(`add element ${target} { ${add.join(", ")} }`);
  if (remove.length) {
    lines.push(`add element ${target} { ${remove.join(", ")} }`);
    lines.push(`delete element ${target} { ${remove.join(", ")} }`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** One rule as `nft -j` lists it, with what callers usually want pulled out. */
export interface NftRule {
  chain: string;
  handle: number;
  comment?: string;
  /** Packets and bytes of the rule's anonymous `counter`, when it has one. */
  counter?: { packets: number; bytes: number };
  expr: unknown[];
}

export interface NftSet {
  name: string;
  type: string | string[];
  /** Elements as nft -j gives them: strings and numbers, objects for ranges and concatenations. */
  elements: unknown[];
}

export interface NftChain {
  name: string;
  type?: string;
  hook?: string;
  priority?: number;
  policy?: string;
}

export interface NftTable {
  family: NftFamily;
  name: string;
  chains: NftChain[];
  sets: NftSet[];
  rules: NftRule[];
  /** The objects of `nft -j list table`, minus the metainfo. */
  raw: Record<string, unknown>[];
}

/** Parses `nft -j list table ...` output. */
export function parseNftTable(json: string, family: NftFamily, table: string): NftTable {
  const objects = (JSON.parse(json) as { nftables: Record<string, unknown>[] }).nftables
    .filter((o) => !("metainfo" in o));
  const out: NftTable = { family, name: table, chains: [], sets: [], rules: [], raw: objects };
  for (const object of objects) {
    if ("chain" in object) {
      const c = object.chain as Record<string, unknown>;
      out.chains.push({
        name: c.name as string,
        type: c.type as string | undefined,
        hook: c.hook as string | undefined,
        priority: c.prio as number | undefined,
        policy: c.policy as string | undefined,
      });
    } else if ("set" in object) {
      const s = object.set as Record<string, unknown>;
      out.sets.push({
        name: s.name as string,
        type: s.type as string | string[],
        elements: (s.elem as unknown[] | undefined) ?? [],
      });
    } else if ("rule" in object) {
      const r = object.rule as Record<string, unknown>;
      const expr = (r.expr as Record<string, unknown>[] | undefined) ?? [];
      const counter = expr.find((e) => "counter" in e)?.counter as
        | { packets: number; bytes: number }
        | undefined;
      out.rules.push({
        chain: r.chain as string,
        handle: r.handle as number,
        comment: r.comment as string | undefined,
        counter: counter && typeof counter === "object" ? counter : undefined,
        expr,
      });
    }
  }
  return out;
}

/** The table's chains, sets (with elements) and rules (with counters); undefined when absent. */
export async function listTable(
  family: NftFamily,
  table: string,
  options: NftOptions = {},
): Promise<NftTable | undefined> {
  const result = await nft(["-j", "list", "table", family, nftName(table)], options);
  if (result.code !== 0) {
    if (/No such file or directory/.test(result.stderr)) return undefined;
    throw new NftError(
      `nft could not list table ${family} ${table}: ${result.stderr.trim()}`,
      result.stderr,
    );
  }
  return parseNftTable(result.stdout, family, table);
}
