/**
 * DEL: remove the node-side veth (its peer in the pod goes with it) and release the address.
 *
 * Both steps accept "already gone", so DEL can be repeated and works after the netns has
 * vanished (the kernel then already destroyed the pair). They do not depend on each other, so
 * they run at the same time; if either fails the runtime retries DEL and finds only the rest
 * to do. Only the veth named for this (container, interface) is touched, never other
 * interfaces in the pod.
 */

import { agentErrorToCni } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { kernelErrorToCni } from "./kernel.ts";
import { hostVethName } from "./names.ts";

export async function del(context: HandlerContext): Promise<undefined> {
  const { env, kernel } = context;
  const agent = context.agent;
  const hostName = await hostVethName(env.containerID, env.ifname);
  const [veth, release] = await Promise.allSettled([
    kernel.deleteHostLink(hostName),
    agent.release(env.containerID, { ifname: env.ifname }),
  ]);
  if (release.status === "rejected") throw agentErrorToCni(release.reason);
  if (veth.status === "rejected") throw kernelErrorToCni(veth.reason);
  return undefined;
}
