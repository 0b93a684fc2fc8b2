/**
 * Telling Kubernetes this node's pod network is up. Some cloud route controllers set
 * NetworkUnavailable=True on new nodes, which taints them until a network plugin clears it.
 * A strategic merge patch merges `conditions` by `type`, so only this one condition changes;
 * a JSON merge patch would replace the kubelet's whole list.
 */
import type { KubeClient } from "./client.ts";

export const STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json";

export interface NodeCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  lastHeartbeatTime: string;
}

export interface SetNetworkAvailableOptions {
  now?: () => number;
  signal?: AbortSignal;
}

/** The patch body that sets NetworkUnavailable=False at time `now` (ms since the epoch). */
export function networkAvailablePatch(now: number): { status: { conditions: NodeCondition[] } } {
  const time = new Date(Math.floor(now / 1000) * 1000).toISOString().replace(".000Z", "Z");
  return {
    status: {
      conditions: [{
        type: "NetworkUnavailable",
        status: "False",
        reason: "WeftIsUp",
        message: "weft has set up the pod network on this node",
        lastTransitionTime: time,
        lastHeartbeatTime: time,
      }],
    },
  };
}

/** PATCHes `nodes/<name>/status`; call once the agent is ready to carry pod traffic. */
export async function setNetworkAvailable(
  client: KubeClient,
  nodeName: string,
  options: SetNetworkAvailableOptions = {},
): Promise<void> {
  const { now = Date.now, signal } = options;
  await client.request("PATCH", `/api/v1/nodes/${encodeURIComponent(nodeName)}/status`, {
    body: networkAvailablePatch(now()),
    contentType: STRATEGIC_MERGE_PATCH,
    signal,
  });
}
