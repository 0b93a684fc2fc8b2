/**
 * GC: the runtime lists the attachments it still uses; the agent releases every other
 * allocation. Veths need no sweep: a veth dies with its pod's namespace, and DEL removes the
 * rest. A GC without the list is refused rather than read as "nothing is valid", which would
 * release every address on the node.
 */

import { agentErrorToCni } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { CniCode, CniError } from "./errors.ts";

export async function gc(context: HandlerContext): Promise<undefined> {
  const valid = context.config.validAttachments;
  if (!valid) {
    throw new CniError(
      CniCode.invalidConfig,
      'GC config has no "cni.dev/valid-attachments": refusing to release every address',
    );
  }
  try {
    // only this network's attachments: another weft network on the node has its own GC
    await context.agent.gc(valid, { network: context.config.name });
  } catch (error) {
    throw agentErrorToCni(error);
  }
  return undefined;
}
