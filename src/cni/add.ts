/**
 * ADD: veth and address at the same time, pod configuration after both.
 *
 * The agent's allocation is idempotent per (container, interface), so a second ADD for a live
 * attachment would get the live one's address back, and undoing that ADD must not release it.
 * The node-side veth name is derived from the same pair, so checking that it does not exist
 * yet (sysfs, no process) proves the attachment is not live; after that, creating the veth
 * and asking the agent can overlap, since undoing either is safe. Each failure undoes exactly
 * the steps that succeeded.
 */

import { randomMac } from "../net/link.ts";
import { agentErrorToCni, type Allocation, type PodIdentity } from "./agent_client.ts";
import type { HandlerContext } from "./context.ts";
import { CniCode, CniError } from "./errors.ts";
import { kernelErrorToCni, requirePodNetns } from "./kernel.ts";
import { hostVethName } from "./names.ts";
import { type CniResult, formatResult, mergeResults } from "./spec.ts";

export async function add(context: HandlerContext): Promise<CniResult> {
  const { env, config, kernel } = context;
  const agent = context.agent;
  await requirePodNetns(kernel, env.netns);
  const mtu = config.mtu ?? await bridgeMtu(context);
  const hostName = await hostVethName(env.containerID, env.ifname);
  if (await kernel.hostLinkExists(hostName, { bridge: config.bridge })) {
    throw new CniError(
      CniCode.interfaceExists,
      `Container ${env.containerID} already has interface "${env.ifname}" on this node ` +
        `(host veth "${hostName}" exists)`,
    );
  }
  const hostMac = randomMac();
  const [veth, allocated] = await Promise.allSettled([
    kernel.createVeth(hostName, {
      peerName: env.ifname,
      peerNetns: env.netns,
      bridge: config.bridge,
      mtu,
      hostMac,
    }),
    agent.allocate(env.containerID, {
      ifname: env.ifname,
      subnet: config.subnet,
      network: config.name,
      pod: podIdentity(env.args),
    })
      .then(async (allocation) => {
        try {
          return checkAllocation(allocation);
        } catch (error) {
          throw await undo(error as CniError, [
            () => agent.release(env.containerID, { ifname: env.ifname }),
          ]);
        }
      }),
  ]);
  if (veth.status === "rejected") {
    const failure = kernelErrorToCni(veth.reason);
    throw allocated.status === "fulfilled"
      ? await undo(failure, [() => agent.release(env.containerID, { ifname: env.ifname })])
      : failure;
  }
  if (allocated.status === "rejected") {
    const reason = allocated.reason;
    const failure = reason instanceof CniError ? reason : agentErrorToCni(reason);
    throw await undo(failure, [() => kernel.deleteHostLink(hostName)]);
  }
  const allocation: Allocation = allocated.value;

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

/**
 * The pod, as the kubelet names it in CNI_ARGS: with it the agent puts the address into the
 * pod's NetworkPolicy sets before answering, so the pod's first packet already meets them.
 */
function podIdentity(args: Record<string, string>): PodIdentity | undefined {
  const namespace = args.K8S_POD_NAMESPACE;
  const name = args.K8S_POD_NAME;
  if (!namespace || !name) return undefined;
  const uid = args.K8S_POD_UID;
  return { namespace, name, ...(uid ? { uid } : {}) };
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
