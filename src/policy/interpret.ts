/**
 * Runs a compiled rule set on one packet in TypeScript, with nft's semantics: base chains in
 * hook order, each ending in its policy (accept) unless a rule accepts or drops; `accept` ends
 * only the current base chain; `jump` returns to the caller when the called chain falls
 * through. It is how the compiler is checked against the evaluator without a kernel, and the
 * renderer prints the very same rules.
 */
import { parseIp } from "../net/cidr.ts";
import type { ProbeProtocol } from "./evaluate.ts";
import type { Chain, CompiledRuleSet, Element, Match } from "./ir.ts";

export interface Packet {
  saddr: string;
  daddr: string;
  protocol: ProbeProtocol;
  /** Destination port (TCP, UDP, SCTP). */
  port: number;
  /** "new": the first packet of a connection; "established": a later one or a reply. */
  ct?: "new" | "established";
}

export interface Trace {
  verdict: "accept" | "drop";
  /** Named counters the packet incremented, in order. */
  counters: string[];
  /** Log prefixes it would have produced (ignoring the rate limit). */
  logs: string[];
}

interface Parsed {
  saddr: number;
  daddr: number;
  protocol: ProbeProtocol;
  port: number;
  established: boolean;
}

export function interpret(ruleSet: CompiledRuleSet, packet: Packet): Trace {
  const chains = new Map(ruleSet.chains.map((c) => [c.name, c]));
  const parsed: Parsed = {
    saddr: parseIp(packet.saddr),
    daddr: parseIp(packet.daddr),
    protocol: packet.protocol,
    port: packet.port,
    established: packet.ct === "established",
  };
  const kinds = new Map(ruleSet.sets.map((s) => [s.name, s.kind]));
  const index = new Map<string, Set<string>>();
  const members = (set: string) => {
    if (!kinds.has(set)) throw new Error(`A rule refers to the undeclared set "${set}"`);
    return ruleSet.members.get(set) ?? [];
  };
  const contains = (set: string, element: Element) => {
    let keys = index.get(set);
    if (!keys) {
      keys = new Set(members(set).map((e) => e.join(",")));
      index.set(set, keys);
    }
    return keys.has(element.join(","));
  };
  const inSet = (set: string, address: number) =>
    kinds.get(set) === "interval"
      ? members(set).some(([start, end]) => address >= start && address < end)
      : contains(set, [address]);
  const trace: Trace = { verdict: "accept", counters: [], logs: [] };

  const matches = (match: Match): boolean => {
    switch (match.kind) {
      case "ct":
        return parsed.established;
      case "addr":
        return inSet(match.set, parsed[match.field]);
      case "ports":
        return match.ranges.some((r) =>
          r.protocol === parsed.protocol && parsed.port >= r.first && parsed.port <= r.last
        );
      case "named-port":
        return match.protocol === parsed.protocol &&
          contains(match.set, [parsed.daddr, parsed.port]);
    }
  };

  const run = (chain: Chain, depth: number): "accept" | "drop" | undefined => {
    if (depth > 16) throw new Error(`Chain "${chain.name}": jumps nest too deep (a loop?)`);
    for (const rule of chain.rules) {
      if (!rule.matches.every(matches)) continue;
      if (rule.counter) trace.counters.push(rule.counter);
      if (rule.log) trace.logs.push(rule.log.prefix);
      const verdict = rule.verdict;
      if (!verdict) continue;
      if (verdict.kind !== "jump") return verdict.kind;
      const target = chains.get(verdict.chain);
      if (!target) throw new Error(`Chain "${chain.name}" jumps to unknown "${verdict.chain}"`);
      const result = run(target, depth + 1);
      if (result) return result;
    }
    return undefined;
  };

  const hooks = ruleSet.chains.filter((c) => c.hook).sort((a, b) =>
    a.hook!.priority - b.hook!.priority
  );
  for (const hook of hooks) {
    if (run(hook, 0) === "drop") {
      trace.verdict = "drop";
      break;
    }
  }
  return trace;
}
