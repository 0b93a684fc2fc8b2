/**
 * weft's iptables rules, kept in chains of its own so they can be rebuilt and removed without
 * touching anyone else's rules:
 *
 *   nat    WEFT          jumped to from POSTROUTING: pod traffic leaving the pod range is
 *                        masqueraded behind the node, traffic inside the range is left alone.
 *   filter WEFT-FORWARD  jumped to from FORWARD: lets bridge traffic through even when the
 *                        FORWARD policy is DROP (as Docker and many distributions set it).
 *   filter WEFT-OUTPUT   jumped to from OUTPUT: empty while the pod network is exposed to the
 *                        node; when hidden, refuses new connections from the node to pods
 *                        (replies to pods, e.g. from a DNS cache on the node, still flow).
 *
 * Each chain's content is written with one `iptables-restore --noflush` per table, which the
 * kernel applies atomically, so a restart never leaves a window with half the rules. The jump
 * rules are checked with `-C` before being inserted, which makes `ensure` idempotent.
 *
 * Which iptables: nodes run either the legacy or the nft backend, and rules written through
 * the other one are invisible to kube-proxy and friends (one of Weave Net's long-standing
 * bugs). We follow the backend that already holds rules, as kube-proxy does.
 */
import { CommandError, run } from "./exec.ts";

export const NAT_CHAIN = "WEFT";
export const FORWARD_CHAIN = "WEFT-FORWARD";
export const OUTPUT_CHAIN = "WEFT-OUTPUT";

export interface WeftRules {
  /** The cluster pod range, e.g. 10.32.0.0/12. */
  podRange: string;
  bridge: string;
  /**
   * Whether the node reaches the pod network (`weft expose`, the default). Exposed, traffic
   * from the node's other addresses to pods is also masqueraded behind the bridge address so
   * replies find their way back from pods on any node.
   */
  exposed?: boolean;
}

let chosenBackend: Promise<string> | undefined;

/** Picks `iptables-legacy` or `iptables-nft` (falls back to plain `iptables`). */
export function iptablesCommand(): Promise<string> {
  chosenBackend ??= detectBackend();
  return chosenBackend;
}

async function countRules(saveCommand: string): Promise<number> {
  try {
    const result = await run([saveCommand], { allowFailure: true });
    if (result.code !== 0) return -1;
    return result.stdout.split("\n").filter((line) => line.startsWith("-A ")).length;
  } catch {
    return -1;
  }
}

async function detectBackend(): Promise<string> {
  const forced = Deno.env.get("WEFT_IPTABLES");
  if (forced) return forced;
  const [legacy, nft] = await Promise.all([
    countRules("iptables-legacy-save"),
    countRules("iptables-nft-save"),
  ]);
  if (legacy < 0 && nft < 0) return "iptables";
  if (legacy > nft) return "iptables-legacy";
  return nft >= 0 ? "iptables-nft" : "iptables-legacy";
}

async function iptables(args: string[], allowFailure = false) {
  const command = await iptablesCommand();
  return await run([command, "-w", "5", ...args], { allowFailure });
}

async function restore(content: string): Promise<void> {
  const base = await iptablesCommand();
  const command = base === "iptables" ? "iptables-restore" : `${base}-restore`;
  await run([command, "-w", "5", "--noflush"], { stdin: content });
}

async function ensureJump(table: string, from: string, to: string): Promise<void> {
  const check = await iptables(["-t", table, "-C", from, "-j", to], true);
  if (check.code !== 0) await iptables(["-t", table, "-I", from, "1", "-j", to]);
}

/** Writes (or rewrites) weft's chains and makes sure the built-in chains jump to them. */
export async function ensureWeftRules(rules: WeftRules): Promise<void> {
  const { podRange, bridge, exposed = true } = rules;
  await restore(
    [
      "*nat",
      `:${NAT_CHAIN} - [0:0]`,
      `-A ${NAT_CHAIN} -s ${podRange} -d ${podRange} -j RETURN`,
      `-A ${NAT_CHAIN} -s ${podRange} -d 224.0.0.0/4 -j RETURN`,
      `-A ${NAT_CHAIN} -s ${podRange} ! -d ${podRange} -j MASQUERADE`,
      ...(exposed ? [`-A ${NAT_CHAIN} ! -s ${podRange} -o ${bridge} -j MASQUERADE`] : []),
      "COMMIT",
      "*filter",
      `:${FORWARD_CHAIN} - [0:0]`,
      `-A ${FORWARD_CHAIN} -i ${bridge} -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A ${FORWARD_CHAIN} -o ${bridge} -s ${podRange} -j ACCEPT`,
      ...(exposed ? [`-A ${FORWARD_CHAIN} -o ${bridge} -j ACCEPT`] : []),
      `:${OUTPUT_CHAIN} - [0:0]`,
      ...(exposed ? [] : [
        `-A ${OUTPUT_CHAIN} -o ${bridge} -d ${podRange} -m conntrack --ctstate NEW -j REJECT`,
      ]),
      "COMMIT",
      "",
    ].join("\n"),
  );
  await ensureJump("nat", "POSTROUTING", NAT_CHAIN);
  await ensureJump("filter", "FORWARD", FORWARD_CHAIN);
  await ensureJump("filter", "OUTPUT", OUTPUT_CHAIN);
}

/** Removes weft's chains and the jumps to them; succeeds when they are already gone. */
export async function removeWeftRules(): Promise<void> {
  const chains = [
    ["nat", "POSTROUTING", NAT_CHAIN],
    ["filter", "FORWARD", FORWARD_CHAIN],
    ["filter", "OUTPUT", OUTPUT_CHAIN],
  ];
  for (const [table, from, chain] of chains) {
    while ((await iptables(["-t", table, "-D", from, "-j", chain], true)).code === 0) {
      // a rule may have been inserted more than once by an older version: remove all
    }
    await iptables(["-t", table, "-F", chain], true);
    await iptables(["-t", table, "-X", chain], true);
  }
}

/** Lists the rules of one of weft's chains as `iptables -S` prints them (for status and tests). */
export async function listChain(table: string, chain: string): Promise<string[]> {
  try {
    const result = await iptables(["-t", table, "-S", chain]);
    return result.stdout.split("\n").filter((l) => l.startsWith("-A "));
  } catch (error) {
    if (error instanceof CommandError) return [];
    throw error;
  }
}
