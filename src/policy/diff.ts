/**
 * The smallest change from one compiled rule set to another. Members are compared per set and
 * become element additions and removals; chains are compared by their rules and replaced
 * whole (flush and refill) only when they differ, which happens when policies change, never
 * when pods do. Objects that appear or disappear are added or deleted. A change the patch form
 * cannot express in place (a base chain's hook, a set's type) asks for a full replacement.
 */
import { compareElements } from "./elements.ts";
import type { Chain, CompiledRuleSet, CounterDef, Element, SetDef } from "./ir.ts";

export interface ElementChange {
  set: string;
  kind: SetDef["kind"];
  add: Element[];
  remove: Element[];
}

export type RuleSetDiff =
  | { kind: "replace"; ruleSet: CompiledRuleSet; reason: string }
  | {
    kind: "patch";
    sets: { add: SetDef[]; remove: string[] };
    counters: { add: CounterDef[]; remove: string[] };
    /** `add`: new chains with their rules; `replace`: chains whose rules are all renewed. */
    chains: { add: Chain[]; replace: Chain[]; remove: string[] };
    /** Per set, in the order of the new rule set; sets being added list only additions. */
    elements: ElementChange[];
  };

export function diffRuleSets(before: CompiledRuleSet, after: CompiledRuleSet): RuleSetDiff {
  const oldSets = new Map(before.sets.map((s) => [s.name, s]));
  const oldChains = new Map(before.chains.map((c) => [c.name, c]));
  for (const set of after.sets) {
    const old = oldSets.get(set.name);
    if (old && old.kind !== set.kind) {
      return { kind: "replace", ruleSet: after, reason: `set ${set.name} changes type` };
    }
  }
  for (const chain of after.chains) {
    const old = oldChains.get(chain.name);
    if (old && JSON.stringify(old.hook) !== JSON.stringify(chain.hook)) {
      return { kind: "replace", ruleSet: after, reason: `chain ${chain.name} changes hook` };
    }
  }
  const newSets = new Set(after.sets.map((s) => s.name));
  const newChains = new Set(after.chains.map((c) => c.name));
  const oldCounters = new Set(before.counters.map((c) => c.name));
  const newCounters = new Set(after.counters.map((c) => c.name));
  const elements: ElementChange[] = [];
  for (const set of after.sets) {
    const change = diffElements(
      oldSets.has(set.name) ? before.members.get(set.name) ?? [] : [],
      after.members.get(set.name) ?? [],
    );
    if (change.add.length || change.remove.length) {
      elements.push({ set: set.name, kind: set.kind, ...change });
    }
  }
  return {
    kind: "patch",
    sets: {
      add: after.sets.filter((s) => !oldSets.has(s.name)),
      remove: before.sets.filter((s) => !newSets.has(s.name)).map((s) => s.name),
    },
    counters: {
      add: after.counters.filter((c) => !oldCounters.has(c.name)),
      remove: before.counters.filter((c) => !newCounters.has(c.name)).map((c) => c.name),
    },
    chains: {
      add: after.chains.filter((c) => !oldChains.has(c.name)),
      replace: after.chains.filter((c) => {
        const old = oldChains.get(c.name);
        // the same plan gives the same rule objects (pod churn): no need to compare their text
        return old !== undefined && old.rules !== c.rules &&
          JSON.stringify(old.rules) !== JSON.stringify(c.rules);
      }),
      remove: before.chains.filter((c) => !newChains.has(c.name)).map((c) => c.name),
    },
    elements,
  };
}

/** True when the diff changes set members only (what pod and namespace churn must yield). */
export function isElementOnly(diff: RuleSetDiff): boolean {
  return diff.kind === "patch" && diff.sets.add.length === 0 && diff.sets.remove.length === 0 &&
    diff.counters.add.length === 0 && diff.counters.remove.length === 0 &&
    diff.chains.add.length === 0 && diff.chains.replace.length === 0 &&
    diff.chains.remove.length === 0;
}

export function isEmptyDiff(diff: RuleSetDiff): boolean {
  return isElementOnly(diff) && diff.kind === "patch" && diff.elements.length === 0;
}

/** Both lists sorted (as `computeMembers` leaves them): one merge pass. */
function diffElements(
  before: readonly Element[],
  after: readonly Element[],
): { add: Element[]; remove: Element[] } {
  const add: Element[] = [];
  const remove: Element[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    const order = i >= before.length
      ? 1
      : j >= after.length
      ? -1
      : compareElements(before[i], after[j]);
    if (order === 0) {
      i++;
      j++;
    } else if (order < 0) {
      remove.push(before[i++]);
    } else {
      add.push(after[j++]);
    }
  }
  return { add, remove };
}
