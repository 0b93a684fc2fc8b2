/**
 * CHECK: read back everything ADD made and compare, changing nothing. Every mismatch found is
 * reported together (code 104), so one CHECK tells the operator the whole story.
 */

import { agentErrorToCni } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { CniCode, CniError } from "./errors.ts";
import { kernelErrorToCni, requirePodNetns } from "./kernel.ts";
import { hostVethName } from "./names.ts";

export async function check(context: HandlerContext): Promise<undefined> {
  const { env, config, kernel } = context;
  const agent = context.agent;
  await requirePodNetns(kernel, env.netns);
  let allocation;
  try {
    allocation = await agent.lookup(env.containerID, { ifname: env.ifname });
  } catch (error) {
    throw agentErrorToCni(error);
  }
  const where = `container ${env.containerID} interface ${env.ifname}`;
  if (!allocation) {
    throw new CniError(CniCode.checkFailed, `Weft agent has no address allocated for ${where}`);
  }

  const hostName = await hostVethName(env.containerID, env.ifname);
  let pod, host, routes;
  try {
    [pod, host, routes] = await Promise.all([
      kernel.readPodLink(env.netns, env.ifname),
      kernel.readHostLink(hostName),
      kernel.readPodDefaultRoutes(env.netns),
    ]);
  } catch (error) {
    throw kernelErrorToCni(error);
  }

  const problems: string[] = [];
  if (!pod) {
    problems.push(`interface "${env.ifname}" is missing from netns "${env.netns}"`);
  } else {
    if (!pod.addresses.includes(allocation.address)) {
      problems.push(
        `"${env.ifname}" has addresses [${pod.addresses.join(", ")}], ` +
          `expected ${allocation.address}`,
      );
    }
    if (pod.mac.toLowerCase() !== allocation.mac.toLowerCase()) {
      problems.push(`"${env.ifname}" has MAC ${pod.mac}, expected ${allocation.mac}`);
    }
    if (!pod.up) problems.push(`"${env.ifname}" is down`);
    if (config.mtu !== undefined && pod.mtu !== config.mtu) {
      problems.push(`"${env.ifname}" has MTU ${pod.mtu}, expected ${config.mtu}`);
    }
  }
  if (!host) {
    problems.push(`host veth "${hostName}" is missing`);
  } else {
    if (host.master !== config.bridge) {
      problems.push(
        `host veth "${hostName}" is on "${host.master ?? "no bridge"}", not "${config.bridge}"`,
      );
    }
    if (host.hairpin === false) problems.push(`host veth "${hostName}" has hairpin off`);
  }
  if (config.defaultRoute) {
    const ours = routes.some((r) => r.dev === env.ifname && r.gateway === allocation.gateway);
    if (!ours) {
      problems.push(`no default route via ${allocation.gateway} dev ${env.ifname}`);
    }
  }
  problems.push(...compareWithPrevResult(context, allocation.address));
  if (problems.length) {
    throw new CniError(CniCode.checkFailed, `CHECK failed for ${where}: ${problems.join("; ")}`);
  }
  return undefined;
}

/** The runtime's record of ADD (prevResult) must name the same address the agent holds. */
function compareWithPrevResult(context: HandlerContext, address: string): string[] {
  const previous = context.config.prevResult;
  if (!previous?.interfaces || !previous.ips) return [];
  const index = previous.interfaces.findIndex((iface) =>
    iface.name === context.env.ifname && iface.sandbox === context.env.netns
  );
  if (index < 0) return [`prevResult has no interface "${context.env.ifname}"`];
  const recorded = previous.ips.filter((ipConfig) => ipConfig.interface === index)
    .map((ipConfig) => ipConfig.address);
  return recorded.includes(address) ? [] : [
    `prevResult records [${
      recorded.join(", ")
    }] for "${context.env.ifname}", agent holds ${address}`,
  ];
}
