/**
 * What the policy engine asks of the kernel, as one small interface: replace the table, patch
 * it, add or remove addresses of `pending` in a table an earlier run left, read the drop
 * counters, forget an address's tracked connections. `NftPolicyKernel` does it with nft
 * (one `nft -f` transaction per call) and conntrack; the engine's tests use a double that
 * keeps the rule set as data and runs it with src/policy's interpreter.
 */
import { deleteConntrackEntries } from "../net/conntrack.ts";
import { run } from "../net/exec.ts";
import { applyNft, deleteTable, NftError, setElementsScript } from "../net/nft.ts";
import {
  type CompiledRuleSet,
  PENDING_SET,
  POLICY_TABLE,
  renderDiff,
  renderRuleSet,
  type RuleSetDiff,
} from "../policy/mod.ts";

export interface PolicyKernel {
  /** Whether the table exists (an earlier run left it: it enforces until replaced). */
  tableExists(): Promise<boolean>;
  /** Replaces the whole table in one transaction; returns the script's length in lines. */
  replace(ruleSet: CompiledRuleSet): Promise<number>;
  /** Applies a diff in one transaction; returns the script's length in lines. */
  patch(diff: RuleSetDiff): Promise<number>;
  /** Changes only the `pending` set, in a table this run did not build. */
  changePending(change: { add: string[]; remove: string[] }): Promise<void>;
  /** Packets counted by each named counter of the table (empty when there is no table). */
  counters(): Promise<Map<string, number>>;
  /** Deletes the tracked connections of an address about to be released. */
  forgetConnections(address: string): Promise<void>;
}

export class NftPolicyKernel implements PolicyKernel {
  readonly #table: string;

  constructor(options: { table?: string } = {}) {
    this.#table = options.table ?? POLICY_TABLE;
  }

  async tableExists(): Promise<boolean> {
    const result = await run(["nft", "list", "tables", "inet"], { allowFailure: true });
    if (result.code !== 0) {
      throw new NftError(`nft could not list tables: ${result.stderr.trim()}`, result.stderr);
    }
    return result.stdout.split("\n").some((line) => line.trim() === `table inet ${this.#table}`);
  }

  async replace(ruleSet: CompiledRuleSet): Promise<number> {
    const script = renderRuleSet(ruleSet, { table: this.#table });
    await applyNft(script);
    return lineCount(script);
  }

  async patch(diff: RuleSetDiff): Promise<number> {
    const script = renderDiff(diff, { table: this.#table });
    if (script) await applyNft(script);
    return lineCount(script);
  }

  async changePending(change: { add: string[]; remove: string[] }): Promise<void> {
    const script = setElementsScript(
      { family: "inet", table: this.#table, name: PENDING_SET },
      change,
    );
    if (script) await applyNft(script);
  }

  async counters(): Promise<Map<string, number>> {
    const result = await run(
      ["nft", "-j", "list", "counters", "table", "inet", this.#table],
      { allowFailure: true },
    );
    const counts = new Map<string, number>();
    if (result.code !== 0) {
      if (/No such file or directory/.test(result.stderr)) return counts;
      throw new NftError(`nft could not list counters: ${result.stderr.trim()}`, result.stderr);
    }
    const objects = (JSON.parse(result.stdout) as { nftables: Record<string, unknown>[] })
      .nftables;
    for (const object of objects) {
      const counter = object.counter as { name?: string; packets?: number } | undefined;
      if (counter?.name) counts.set(counter.name, counter.packets ?? 0);
    }
    return counts;
  }

  async forgetConnections(address: string): Promise<void> {
    await deleteConntrackEntries(address);
  }
}

function lineCount(script: string): number {
  return script ? script.trimEnd().split("\n").length : 0;
}

/** `weft reset`: removes the table (true when there was one); without nft there is none. */
export async function removePolicyTable(options: { table?: string } = {}): Promise<boolean> {
  try {
    return await deleteTable("inet", options.table ?? POLICY_TABLE);
  } catch (error) {
    if (error instanceof NftError && /not installed/.test(error.message)) return false;
    throw error;
  }
}
