/**
 * The node's guard around the data path, in nftables (CONTRACTS #4): who may send us VXLAN and
 * sleeve packets, and what pods may not reach.
 *
 *   inet weft-underlay   input: VXLAN (6784/udp) and sleeve (6783/udp) packets only from current
 *                        peers' underlay addresses (set `peers`); pods of this node (iifname the
 *                        bridge: with br_netfilter the bridge, not the port) never reach the
 *                        node's weft ports, on any of its addresses; fast-path probes, which
 *                        arrive through the bridge from a peer's bridge address (set
 *                        `peer-bridges`), are the one exception.
 *                        forward: pods never send to a peer's weft ports either (masqueraded,
 *                        such a packet would carry this node's address, which peers trust).
 *   bridge weft-underlay prerouting: a frame from a port other than the overlay ports may not
 *                        carry a gateway address (ours or a peer's, set `bridges`) as its
 *                        source: a pod could otherwise forge a peer's fast-path probe answer.
 *
 * The sets follow the topology, level-based: the switch says which addresses it wants, this
 * module changes only the elements that differ, in one `nft -f` transaction. Additions are
 * applied before the switch uses a peer, removals only after it stopped (see kernel.ts), so no
 * ordering drops a legitimate peer. A restarted agent rewrites the rules and keeps the elements
 * it finds (one transaction replaces the tables with those elements in), and removes what no
 * peer claims once the peers have had `adoptMs` to come back.
 */
import {
  applyNft,
  deleteTableScript,
  listTable,
  NftError,
  type NftOptions,
  setElementsScript,
} from "../net/nft.ts";
import type { Diagnostic } from "./types.ts";

export const GUARD_TABLE = "weft-underlay";

export interface GuardConfig {
  bridge: string;
  /** The overlay ports on the bridge (frames from them may carry a remote gateway address). */
  vxlanDevice: string;
  tapDevice: string;
  vxlanPort: number;
  sleevePort: number;
  /** TCP ports pods must not reach on the node: the mesh and the admin API. */
  meshPort: number;
  apiPort: number;
}

/** The sets' elements. */
export interface GuardElements {
  /** Peers' underlay addresses. */
  peers: string[];
  /** Peers' bridge (gateway) addresses. */
  peerBridges: string[];
  /** Every gateway address: the peers' and our own. */
  bridges: string[];
}

/** Comments on the rules whose counters say what was dropped. */
export const GUARD_RULES = {
  probes: "fast-path probes from peers",
  podToNodeTcp: "pod to a weft port of its node (tcp)",
  podToNodeUdp: "pod to a weft port of its node (udp)",
  vxlanFromStranger: "vxlan from a non-peer",
  sleeveFromStranger: "sleeve from a non-peer",
  podToPeerUdp: "pod to a peer's data path port",
  podToPeerTcp: "pod to a peer's mesh port",
  spoofedGateway: "gateway address from a non-overlay port",
} as const;

function quoted(name: string): string {
  if (!/^[A-Za-z0-9_.\-:]+$/.test(name)) throw new TypeError(`Invalid interface name "${name}"`);
  return `"${name}"`;
}

function elements(list: string[]): string {
  return list.length ? ` elements = { ${list.join(", ")} };` : "";
}

/**
 * The whole guard as one script: both tables replaced at once with these rules and these
 * elements (the current ones, for a restart), so there is no moment without rules or without
 * a peer's address.
 */
export function guardScript(config: GuardConfig, current: GuardElements): string {
  const t = GUARD_TABLE;
  const bridge = quoted(config.bridge);
  const udp = `{ ${config.vxlanPort}, ${config.sleevePort} }`;
  const tcp = `{ ${[...new Set([config.meshPort, config.apiPort])].join(", ")} }`;
  const r = GUARD_RULES;
  return [
    deleteTableScript("inet", t).trimEnd(),
    deleteTableScript("bridge", t).trimEnd(),
    `table inet ${t} {`,
    `  set peers { type ipv4_addr;${elements(current.peers)} }`,
    `  set peer-bridges { type ipv4_addr;${elements(current.peerBridges)} }`,
    `  chain input {`,
    `    type filter hook input priority filter - 5; policy accept;`,
    `    iifname ${bridge} ip saddr @peer-bridges udp dport ${config.sleevePort} accept ` +
    `comment "${r.probes}"`,
    `    iifname ${bridge} tcp dport ${tcp} counter drop comment "${r.podToNodeTcp}"`,
    `    iifname ${bridge} udp dport ${udp} counter drop comment "${r.podToNodeUdp}"`,
    `    udp dport ${config.vxlanPort} ip saddr != @peers counter drop ` +
    `comment "${r.vxlanFromStranger}"`,
    `    udp dport ${config.sleevePort} ip saddr != @peers counter drop ` +
    `comment "${r.sleeveFromStranger}"`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter - 5; policy accept;`,
    `    iifname ${bridge} ip daddr @peers udp dport ${udp} counter drop comment "${r.podToPeerUdp}"`,
    `    iifname ${bridge} ip daddr @peers tcp dport ${config.meshPort} counter drop ` +
    `comment "${r.podToPeerTcp}"`,
    `  }`,
    `}`,
    `table bridge ${t} {`,
    `  set bridges { type ipv4_addr;${elements(current.bridges)} }`,
    `  chain prerouting {`,
    `    type filter hook prerouting priority filter; policy accept;`,
    `    iifname != { ${quoted(config.vxlanDevice)}, ${quoted(config.tapDevice)} } ` +
    `ip saddr @bridges counter drop comment "${r.spoofedGateway}"`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

function difference(a: string[], b: string[]): string[] {
  const other = new Set(b);
  return [...new Set(a)].filter((x) => !other.has(x));
}

/** The element changes from `from` to `to`: additions only, removals only, or both. */
export function guardChanges(
  from: GuardElements,
  to: GuardElements,
  which: { add: boolean; remove: boolean },
): string {
  const pick = (have: string[], want: string[]) => ({
    add: which.add ? difference(want, have) : [],
    remove: which.remove ? difference(have, want) : [],
  });
  return [
    setElementsScript(
      { family: "inet", table: GUARD_TABLE, name: "peers" },
      pick(from.peers, to.peers),
    ),
    setElementsScript(
      { family: "inet", table: GUARD_TABLE, name: "peer-bridges" },
      pick(from.peerBridges, to.peerBridges),
    ),
    setElementsScript(
      { family: "bridge", table: GUARD_TABLE, name: "bridges" },
      pick(from.bridges, to.bridges),
    ),
  ].join("");
}

/**
 * Removes the guard's tables (`weft reset`); fine when they are gone, or when nft is not
 * installed (then nothing made them).
 */
export async function removeUnderlayGuard(options: NftOptions = {}): Promise<void> {
  const script = deleteTableScript("inet", GUARD_TABLE) + deleteTableScript("bridge", GUARD_TABLE);
  try {
    await applyNft(script, options);
  } catch (error) {
    if (!(error instanceof NftError && error.missing)) throw error;
  }
}

/** How long a guard that could not be installed waits before trying again. */
const RETRY_MS = 10_000;

function union(a: GuardElements, b: GuardElements): GuardElements {
  const merge = (x: string[], y: string[]) => [...new Set([...x, ...y])];
  return {
    peers: merge(a.peers, b.peers),
    peerBridges: merge(a.peerBridges, b.peerBridges),
    bridges: merge(a.bridges, b.bridges),
  };
}

/** The guard on this node: installs the tables, keeps their sets in step. */
export class UnderlayGuard {
  #config: GuardConfig;
  /** What the kernel's sets hold (as far as we know); undefined until the tables are in. */
  #applied?: GuardElements;
  #queue: Promise<void> = Promise.resolve();
  /** Elements a previous run left that no peer claimed yet, kept until `#adoptedUntil`. */
  #adopted: GuardElements = { peers: [], peerBridges: [], bridges: [] };
  #adoptedUntil = -Infinity;
  #lastTry = -Infinity;
  #failure?: string;
  #log: (message: string) => void;
  #now: () => number;
  #adoptMs: number;

  constructor(
    config: GuardConfig,
    options: { log: (message: string) => void; now: () => number; adoptMs?: number },
  ) {
    this.#config = config;
    this.#log = options.log;
    this.#now = options.now;
    this.#adoptMs = options.adoptMs ?? 30_000;
  }

  /**
   * Brings the sets to `desired`: with `remove` false only additions (before a peer is used),
   * with it also removals (after the switch let go). The first call installs the tables,
   * keeping the elements a previous run left: those stay until `adoptMs` has passed, for their
   * peers to come back. A failure (no nft, a kernel without nf_tables) never stops the data
   * path: diagnostics() reports it, and the install is tried again after RETRY_MS.
   */
  sync(desired: GuardElements, which: { remove: boolean }): Promise<void> {
    const run = async () => {
      try {
        if (!this.#applied) await this.#install(desired);
        const wanted = this.#now() < this.#adoptedUntil ? union(desired, this.#adopted) : desired;
        const script = guardChanges(this.#applied!, wanted, { add: true, remove: which.remove });
        if (script) {
          await applyNft(script);
          this.#applied = which.remove ? wanted : union(this.#applied!, wanted);
        }
        if (this.#failure) this.#log("underlay guard applied");
        this.#failure = undefined;
      } catch (error) {
        const message = (error as Error).message;
        if (message !== this.#failure) this.#log(`underlay guard: ${message}`);
        this.#failure = message;
      }
    };
    this.#queue = this.#queue.then(run, run);
    return this.#queue;
  }

  /** Replaces both tables in one transaction: our rules, the elements found plus `desired`. */
  async #install(desired: GuardElements): Promise<void> {
    const now = this.#now();
    if (now - this.#lastTry < RETRY_MS) throw new Error(this.#failure ?? "not installed");
    this.#lastTry = now;
    const [inet, bridge] = await Promise.all([
      listTable("inet", GUARD_TABLE),
      listTable("bridge", GUARD_TABLE),
    ]);
    const found = (table: typeof inet, set: string) =>
      (table?.sets.find((s) => s.name === set)?.elements ?? []).filter(
        (e): e is string => typeof e === "string",
      );
    this.#adopted = {
      peers: found(inet, "peers"),
      peerBridges: found(inet, "peer-bridges"),
      bridges: found(bridge, "bridges"),
    };
    const kept = union(this.#adopted, desired);
    await applyNft(guardScript(this.#config, kept));
    this.#applied = kept;
    this.#adoptedUntil = now + this.#adoptMs;
  }

  /** Forgets what was applied: the next sync installs the tables again (a restart). */
  reset(): void {
    this.#applied = undefined;
    this.#lastTry = -Infinity;
  }

  diagnostics(): Diagnostic[] {
    if (!this.#failure) return [];
    return [{
      code: "underlay-guard-failed",
      severity: "error",
      message: `The data path's firewall (nft table inet ${GUARD_TABLE}) could not be applied: ` +
        `${this.#failure}; VXLAN and sleeve packets are accepted from anyone, and pods can ` +
        `reach this node's weft ports`,
      fix: "Install nftables (the nft command) and make sure the kernel has nf_tables; the " +
        "agent tries again every 10 s.",
    }];
  }
}
