/**
 * DEL: remove the node-side veth (its peer in the pod goes with it), then release the address.
 *
 * Both steps accept "already gone", so DEL can be repeated and works after the netns has
 * vanished (the kernel then already destroyed the pair). The veth goes first: if the agent is
 * down, the runtime retries DEL later and finds only the release left to do. Only the veth
 * named for this (container, interface) is touched, never other interfaces in the pod.
 */

import { agentErrorToCni } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { kernelErrorToCni } from "./kernel.ts";
import { hostVethName } from "./names.ts";

export async function del(context: HandlerContext): Promise<undefined> {
  const { env, kernel } = context;
  const agent = context.agent;
  const hostName = await hostVethName(env.containerID, env.ifname);
  try {
    await kernel.deleteHostLink(hostName);
  } catch (error) {
    throw kernelErrorToCni(error);
  }
  try {
    await agent.release(env.containerID, { ifname: env.ifname });
  } catch (error) {
    throw agentErrorToCni(error);
  }
  return undefined;
}
