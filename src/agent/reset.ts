/**
 * `weft reset`: undo everything the agent and the plugin made on this node — pod veths, the
 * bridge, weft's iptables chains, the data path's nft tables, the NetworkPolicy table and the
 * state directory — so the node is as it was before weft. Each step tolerates its object being
 * gone already, so a reset can be repeated after a partial one.
 */
import { listLinksWithPrefix } from "../net/bridge.ts";
import { deleteLink } from "../net/link.ts";
import { removeWeftRules } from "../net/iptables.ts";
import { removeUnderlayGuard } from "../datapath/mod.ts";
import { removePolicyTable } from "./policy_kernel.ts";

export const POD_VETH_PREFIX = "vethwepl";

export interface ResetReport {
  removedLinks: string[];
  removedStateDir: boolean;
  /** The NetworkPolicy table, `inet weft-policy`, was there and is gone. */
  removedPolicyTable: boolean;
}

export async function resetNode(
  options: { bridge: string; stateDir: string },
): Promise<ResetReport> {
  const removedLinks: string[] = [];
  for (const name of await listLinksWithPrefix(POD_VETH_PREFIX)) {
    if (await deleteLink(name)) removedLinks.push(name);
  }
  if (await deleteLink(options.bridge)) removedLinks.push(options.bridge);
  await removeWeftRules();
  await removeUnderlayGuard();
  const removedPolicyTable = await removePolicyTable();
  let removedStateDir = false;
  try {
    await Deno.remove(options.stateDir, { recursive: true });
    removedStateDir = true;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return { removedLinks, removedStateDir, removedPolicyTable };
}
