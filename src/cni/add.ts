/**
 * ADD: veth first, address second, pod configuration last.
 *
 * The veth is made before asking the agent for an address because creating it is also the
 * "interface already exists" test: when it fails nothing was allocated, so a second ADD for a
 * live attachment can never release the first one's address (the agent's allocation is
 * idempotent per container and interface, so it would hand back the very same address).
 * Each later failure undoes exactly the steps before it.
 */

import { randomMac } from "../net/link.ts";
import { agentErrorToCni, type Allocation } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { CniCode, CniError } from "./errors.ts";
import { kernelErrorToCni } from "./kernel.ts";
import { hostVethName } from "./names.ts";
import { type CniResult, formatResult, mergeResults } from "./spec.ts";

export async function add(context: HandlerContext): Promise<CniResult> {
  const { env, config, kernel } = context;
  const agent = context.agent;
  if (!await kernel.netnsExists(env.netns)) {
    throw new CniError(CniCode.containerUnknown, `Cannot open netns "${env.netns}": no such file`);
  }
  const mtu = config.mtu ?? await bridgeMtu(context);
  const hostName = await hostVethName(env.containerID, env.ifname);
  const hostMac = randomMac();
  try {
    await kernel.createVeth(hostName, {
      peerName: env.ifname,
      peerNetns: env.netns,
      bridge: config.bridge,
      mtu,
      hostMac,
    });
  } catch (error) {
    throw kernelErrorToCni(error);
  }

  let allocation: Allocation;
  try {
    allocation = checkAllocation(
      await agent.allocate(env.containerID, { ifname: env.ifname, subnet: config.subnet }),
    );
  } catch (error) {
    const failure = agentErrorToCni(error);
    throw await undo(failure, [() => kernel.deleteHostLink(hostName)]);
  }

  try {
    await kernel.configurePod(env.netns, {
      ifname: env.ifname,
      mac: allocation.mac,
      address: allocation.address,
      gateway: allocation.gateway,
      defaultRoute: config.defaultRoute,
    });
  } catch (error) {
    const failure = kernelErrorToCni(error);
    throw await undo(failure, [
      () => kernel.deleteHostLink(hostName),
      () => agent.release(env.containerID, { ifname: env.ifname }),
    ]);
  }

  const ours: CniResult = {
    cniVersion: config.cniVersion,
    interfaces: [
      { name: hostName, mac: hostMac, mtu },
      { name: env.ifname, mac: allocation.mac, mtu, sandbox: env.netns },
    ],
    ips: [{ address: allocation.address, gateway: allocation.gateway, interface: 1 }],
    routes: config.defaultRoute ? [{ dst: "0.0.0.0/0", gw: allocation.gateway }] : [],
    dns: {},
  };
  return formatResult(mergeResults(config.prevResult, ours), config.cniVersion);
}

async function bridgeMtu(context: HandlerContext): Promise<number> {
  const { bridge } = context.config;
  try {
    return await context.kernel.linkMtu(bridge);
  } catch (error) {
    // The agent creates the bridge; without it the node is not ready for pods yet.
    throw new CniError(
      CniCode.tryAgainLater,
      `Bridge "${bridge}" not found on this node: is the weft agent running?`,
      { cause: error },
    );
  }
}

/** Rejects an agent answer we could not configure, before touching the pod with it. */
function checkAllocation(allocation: Allocation): Allocation {
  const ok = typeof allocation?.address === "string" &&
    /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(allocation.address) &&
    typeof allocation.gateway === "string" && /^\d+\.\d+\.\d+\.\d+$/.test(allocation.gateway) &&
    typeof allocation.mac === "string" && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(allocation.mac);
  if (!ok) {
    throw new CniError(
      CniCode.agentRejected,
      `Weft agent returned an unusable allocation ${JSON.stringify(allocation)}`,
    );
  }
  return allocation;
}

/**
 * Runs clean-up steps in order, all of them even when one fails, and returns the error to
 * throw: the original one, with any clean-up failure added to its details so the operator
 * learns what may be left behind.
 */
async function undo(failure: CniError, steps: (() => Promise<unknown>)[]): Promise<CniError> {
  const problems: string[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  if (!problems.length) return failure;
  const details = [failure.details, `clean-up failed: ${problems.join("; ")}`].filter(Boolean);
  return new CniError(failure.code, failure.message, {
    details: details.join(" "),
    cause: failure,
  });
}
