/**
 * Label selectors in one canonical form. `matchLabels` becomes `In` requirements and the list is
 * sorted and de-duplicated, so two selectors that mean the same pods have the same key: the
 * compiler names kernel sets after that key, and policies that repeat a selector share a set.
 */
import type { LabelSelector } from "./types.ts";

export type Operator = "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  /** Sorted, unique; empty for Exists and DoesNotExist. */
  readonly values: readonly string[];
}

/** A validated selector; no requirements selects everything. */
export type Selector = readonly Requirement[];

export const MATCH_ALL: Selector = [];

/**
 * Validates and canonicalises an API selector. Throws `TypeError` saying what is wrong (an
 * unknown operator, values where none belong or none where some must be): the API server
 * refuses such selectors, and guessing what one meant could select the wrong pods.
 */
export function parseSelector(selector: LabelSelector): Selector {
  if (typeof selector !== "object" || selector === null || Array.isArray(selector)) {
    throw new TypeError("a label selector must be an object");
  }
  const requirements: Requirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    checkKey(key);
    if (typeof value !== "string") {
      throw new TypeError(`matchLabels["${key}"] must be a string`);
    }
    requirements.push({ key, operator: "In", values: [value] });
  }
  const expressions = selector.matchExpressions ?? [];
  if (!Array.isArray(expressions)) throw new TypeError("matchExpressions must be a list");
  expressions.forEach((expression, i) => {
    const where = `matchExpressions[${i}]`;
    checkKey(expression?.key, where);
    const values = expression.values ?? [];
    if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) {
      throw new TypeError(`${where}.values must be a list of strings`);
    }
    switch (expression.operator) {
      case "In":
      case "NotIn":
        if (values.length === 0) {
          throw new TypeError(`${where}: operator ${expression.operator} needs values`);
        }
        break;
      case "Exists":
      case "DoesNotExist":
        if (values.length > 0) {
          throw new TypeError(`${where}: operator ${expression.operator} takes no values`);
        }
        break;
      default:
        throw new TypeError(
          `${where}: unknown operator "${expression.operator}" (In, NotIn, Exists, DoesNotExist)`,
        );
    }
    requirements.push({
      key: expression.key,
      operator: expression.operator,
      values: [...new Set(values)].sort(),
    });
  });
  const unique = new Map(requirements.map((r) => [requirementKey(r), r]));
  return [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

function checkKey(key: unknown, where = "matchLabels"): asserts key is string {
  if (typeof key !== "string" || key === "") {
    throw new TypeError(`${where}: a label key must be a non-empty string`);
  }
}

function requirementKey(r: Requirement): string {
  return JSON.stringify([r.key, r.operator, r.values]);
}

export function matches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    switch (r.operator) {
      case "In":
        return has && r.values.includes(labels[r.key]);
      case "NotIn":
        return !has || !r.values.includes(labels[r.key]);
      case "Exists":
        return has;
      case "DoesNotExist":
        return !has;
    }
  });
}

/** A stable text for hashing and equality. */
export function selectorKey(selector: Selector): string {
  return selector.map(requirementKey).join(",");
}

/** `pod=a,tier notin (db),!legacy` - the kubectl way of writing a selector, for comments. */
export function describeSelector(selector: Selector): string {
  if (selector.length === 0) return "all";
  return selector.map((r) => {
    switch (r.operator) {
      case "In":
        return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values})`;
      case "NotIn":
        return `${r.key} notin (${r.values})`;
      case "Exists":
        return r.key;
      case "DoesNotExist":
        return `!${r.key}`;
    }
  }).join(",");
}
