/**
 * NetworkPolicy enforcement as the agent uses it: started on Kubernetes (unless turned off),
 * given each allocation with the pod the CNI ADD named, told of each release, asked for its
 * status, diagnostics and drop counters. The agent holds one `PolicyEnforcement` and a handful
 * of calls; everything else lives in the policy_*.ts files.
 *
 * Start-up: its own API client and informers (Pods, Namespaces, NetworkPolicies, cluster-wide),
 * br_netfilter's switch so that bridged pod traffic meets the inet forward hook (Kubernetes
 * needs it anyway), the attachment book in the state directory, then the engine.
 */
import { type Diagnostic, UnavailableError } from "../api/mod.ts";
import { formatIp } from "../net/cidr.ts";
import { run } from "../net/exec.ts";
import { writeSysctl } from "../net/sysctl.ts";
import type { Allocation } from "../ipam/mod.ts";
import {
  type ClusterState,
  getPod,
  KubeClient,
  loadKubeConfig,
  startClusterState,
} from "../kube/mod.ts";
import type { AgentConfig } from "./config.ts";
import { ConfigError } from "./config.ts";
import { AttachmentBook, type PodIdentity } from "./policy_attachments.ts";
import { type PolicyCluster, PolicyEngine } from "./policy_engine.ts";
import { PolicyHealth, type PolicyResource } from "./policy_health.ts";
import { NftPolicyKernel } from "./policy_kernel.ts";
import { droppedPacketSamples, policyDiagnostics, policyStatusView } from "./policy_status.ts";

export { disabledPolicyView } from "./policy_status.ts";

const BRIDGE_NF_SYSCTL = "net.bridge.bridge-nf-call-iptables";
export const ATTACHMENTS_FILE = "policy-pods.json";

export interface PolicyStart {
  config: AgentConfig;
  signal: AbortSignal;
  log: (message: string) => void;
  /** This node's allocations (their addresses are the node's pods'). */
  allocations: () => Allocation[];
}

/** The agent's handle on enforcement (undefined when it is off). */
export class PolicyEnforcement {
  readonly engine: PolicyEngine;

  constructor(engine: PolicyEngine) {
    this.engine = engine;
  }

  /**
   * After an allocation for an ADD: returns once the kernel protects the pod. If it cannot,
   * `undo` releases the address and the ADD fails with 503 (the runtime retries it), since a
   * pod the table does not know would have no policy at all.
   */
  async admit(allocation: Allocation, pod: PodIdentity | undefined, undo: () => unknown) {
    const ref = { containerID: allocation.containerId, ifname: allocation.ifname };
    try {
      await this.engine.attach(ref, formatIp(allocation.address), pod);
    } catch (error) {
      await this.engine.detach([{ ...ref, ip: formatIp(allocation.address) }]);
      undo();
      throw new UnavailableError(
        `Cannot apply NetworkPolicy for this pod: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** Before (release) or right after (GC) addresses are released: out of the sets, conntrack. */
  forget(allocations: readonly Allocation[]): Promise<void> {
    return this.engine.detach(allocations.map((a) => ({
      containerID: a.containerId,
      ifname: a.ifname,
      ip: formatIp(a.address),
    })));
  }

  status() {
    return policyStatusView(this.engine.snapshot(), this.diagnostics());
  }

  diagnostics(): Diagnostic[] {
    return policyDiagnostics(this.engine.snapshot(), this.engine.health);
  }

  async droppedPackets() {
    return droppedPacketSamples(this.engine.snapshot(), await this.engine.counters());
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }
}

/** Starts enforcement when the agent runs on Kubernetes with it on; undefined otherwise. */
export async function startPolicy(start: PolicyStart): Promise<PolicyEnforcement | undefined> {
  const { config, signal, log } = start;
  if (!config.kubernetes || !config.networkPolicy || !config.nodeName) return undefined;
  await enableBridgeNetfilter();
  const client = new KubeClient(await loadKubeConfig({ kubeconfig: config.kubeconfig }));
  signal.addEventListener("abort", () => client.close(), { once: true });
  const health = new PolicyHealth();
  const state = startClusterState({
    client,
    signal,
    onError: (error) => health.report(error),
  });
  const warn = (message: string) => log(`policy: ${message}`);
  const startedAt = Date.now();
  const engine = new PolicyEngine({
    node: config.nodeName,
    cluster: policyCluster(state, client),
    kernel: new NftPolicyKernel(),
    book: await AttachmentBook.open(`${config.stateDir}/${ATTACHMENTS_FILE}`, { warn }),
    logRate: config.policyLogRate,
    allocated: () =>
      start.allocations().filter((a) => a.createdAt < startedAt).map((a) => formatIp(a.address)),
    health,
    log: warn,
  });
  try {
    await engine.start();
  } catch (error) {
    throw new ConfigError(
      `Cannot enforce NetworkPolicy: ${(error as Error).message}; install nftables, or run ` +
        "with --no-network-policy",
    );
  }
  state.synced.then(() => warn("pods, namespaces and policies listed; enforcing"), () => {});
  return new PolicyEnforcement(engine);
}

/** The informers as the engine reads them. */
export function policyCluster(state: ClusterState, client: KubeClient): PolicyCluster {
  return {
    synced: state.synced,
    pods: state.pods.store,
    namespaces: state.namespaces.store,
    policies: state.policies.store,
    fetchPod: (namespace, name, options) => getPod(client, namespace, name, options),
    subscribe(changed) {
      const on = (resource: PolicyResource) => ({
        change: () => changed(resource),
        synced: () => changed(resource),
      });
      state.pods.subscribe(on("pods"));
      state.namespaces.subscribe(on("namespaces"));
      state.policies.subscribe(on("networkpolicies"));
    },
  };
}

/**
 * Bridged IPv4 traffic reaches the inet forward hook only with br_netfilter's switch on; without
 * it pod-to-pod traffic would bypass every policy, so enforcement refuses to start.
 */
async function enableBridgeNetfilter(): Promise<void> {
  try {
    await writeSysctl(BRIDGE_NF_SYSCTL, "1");
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await run(["modprobe", "br_netfilter"], { allowFailure: true });
  try {
    await writeSysctl(BRIDGE_NF_SYSCTL, "1");
  } catch (error) {
    throw new ConfigError(
      `Cannot enforce NetworkPolicy: ${BRIDGE_NF_SYSCTL} is not available (${
        (error as Error).message
      }); load the br_netfilter module (Kubernetes requires it), or run with --no-network-policy`,
    );
  }
}
