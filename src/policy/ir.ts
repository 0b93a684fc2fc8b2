/**
 * The compiled rule set: the kernel's shape, as data. One value holds the named sets (with
 * their members kept apart from their declarations), the per-policy drop counters and the
 * chains with their rules; the nft renderer prints it, the interpreter runs it in TypeScript,
 * and the diff compares two of them. Rules refer to sets by name only, and set names are
 * hashes of what a set means (a selector and its namespace scope, an ipBlock, a port name),
 * so pod and namespace churn changes members and never rules.
 */
import type { AddressRange } from "../net/cidr.ts";
import type { PortRange } from "./model.ts";
import type { Diagnostic, Protocol } from "./types.ts";

/**
 * `addr`: IPv4 addresses; `interval`: address ranges (ipBlocks); `addr-port`: an address and
 * a port (where a port name resolves on each pod).
 */
export type SetKind = "addr" | "interval" | "addr-port";

export interface SetDef {
  readonly name: string;
  readonly kind: SetKind;
  /** What the set means, for people reading `nft list ruleset`. */
  readonly comment: string;
}

/**
 * A member: `[address]` in an addr set, `[start, end)` as `[start, end]` numbers in an interval
 * set, `[address, port]` in an addr-port set.
 */
export type Element = readonly number[];

export type Match =
  | { readonly kind: "ct"; readonly states: readonly ("established" | "related")[] }
  | { readonly kind: "addr"; readonly field: "saddr" | "daddr"; readonly set: string }
  /** The transport protocol and destination port within one of the ranges. */
  | { readonly kind: "ports"; readonly ranges: readonly PortRange[] }
  /** The protocol, and (destination address, destination port) in an addr-port set. */
  | { readonly kind: "named-port"; readonly protocol: Protocol; readonly set: string };

export type Verdict =
  | { readonly kind: "accept" }
  | { readonly kind: "drop" }
  | { readonly kind: "jump"; readonly chain: string };

export interface Rule {
  readonly matches: readonly Match[];
  /** A named counter that counts the packets this rule matches. */
  readonly counter?: string;
  /** Log the packets this rule matches, at most `perSecond` a second. Never with a verdict. */
  readonly log?: { readonly prefix: string; readonly perSecond: number };
  /** None: evaluation continues with the next rule. */
  readonly verdict?: Verdict;
  readonly comment?: string;
}

export interface Chain {
  readonly name: string;
  /** Base chains hook the forward path at `priority` after the filter priority. */
  readonly hook?: { readonly priority: number };
  readonly rules: readonly Rule[];
}

export interface CounterDef {
  readonly name: string;
  readonly comment: string;
  /** The policy whose isolation dropped what this counts (absent: pods not known yet). */
  readonly policy?: {
    readonly namespace: string;
    readonly name: string;
    readonly direction: "ingress" | "egress";
  };
}

/** What never changes with pods: derived from the policies (and options) alone. */
export interface RuleStructure {
  readonly sets: readonly SetDef[];
  readonly counters: readonly CounterDef[];
  /** Base chains first, in hook order, then the chains they jump to. */
  readonly chains: readonly Chain[];
}

export interface CompiledRuleSet extends RuleStructure {
  /** The node this rule set enforces for; undefined: every pod counts as local. */
  readonly node?: string;
  /** Every set's members, sorted. */
  readonly members: ReadonlyMap<string, readonly Element[]>;
  readonly problems: readonly Diagnostic[];
}

export type { AddressRange };
