/**
 * Set members in their one canonical order (sorted, unique), which lets a diff walk two
 * member lists in a single pass, and their text in nft scripts.
 */
import { formatIp } from "../net/cidr.ts";
import type { Element } from "./ir.ts";

export function sortElements(elements: readonly Element[]): Element[] {
  const unique = new Map(elements.map((e) => [e.join(","), e]));
  return [...unique.values()].sort(compareElements);
}

export function compareElements(a: Element, b: Element): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** `10.0.0.0/8` for an aligned range, else `first-last`; `end` is exclusive. */
export function formatInterval(start: number, end: number): string {
  const size = end - start;
  const bits = Math.log2(size);
  if (Number.isInteger(bits) && start % size === 0) return `${formatIp(start)}/${32 - bits}`;
  return `${formatIp(start)}-${formatIp(end - 1)}`;
}
