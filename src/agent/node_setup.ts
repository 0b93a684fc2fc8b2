/**
 * Node set-up: what turns a host into a weft node once the IPAM can give it its gateway
 * address (the bridge with that address, IP forwarding, weft's iptables chains, the data path),
 * and the node's access to pods (expose / hide).
 *
 * The node's phase is one value: `waiting` (with why, and the diagnostics that explain it) or
 * `up` (with the gateway, bridge and data path that exist only then), so status and the API can
 * never see a half-up node as up. Bring-up is retried by the agent on a timer; a failed try
 * never throws (a timer's rejected promise would kill the process): it becomes the waiting
 * reason and a diagnostic (logged once, not at every retry), and the next try starts over.
 * Everything here is idempotent, so a restarted agent adopts what an earlier run made.
 */
import { type BridgeState, ensureBridge } from "../net/bridge.ts";
import { cidrContains, formatCidr, formatIp, macForAddress, parseCidr } from "../net/cidr.ts";
import { ensureWeftRules } from "../net/iptables.ts";
import { writeSysctl } from "../net/sysctl.ts";
import { type Allocation, NoSpaceError, NotReadyError } from "../ipam/mod.ts";
import type { Mesh } from "../mesh/mod.ts";
import { createDatapath, type Datapath } from "../datapath/mod.ts";
import type { Diagnostic } from "../api/mod.ts";
import type { AgentConfig } from "./config.ts";
import { DatapathSync } from "./datapath_sync.ts";

/** The bridge's own address is an allocation like a pod's, under this reserved container ID. */
export const BRIDGE_CONTAINER_ID = "weft:bridge";

/** Why a node on Kubernetes without IPALLOC_INIT waits before its IPAM even opens. */
export const AWAITING_NODE_LIST = {
  reason: "waiting for the Kubernetes Node list to agree the IPAM's first split",
  diagnostic: {
    code: "awaiting-node-list",
    severity: "error",
    message: "The IPAM agrees its first split among the Kubernetes Nodes, and the agent has " +
      "not listed the Nodes yet",
    fix: "Check the agent's log for `kubernetes:` errors (API server address, RBAC); or set " +
      "IPALLOC_INIT (e.g. consensus=N) to agree the split without the Node list.",
  } satisfies Diagnostic,
};

export type NodePhase =
  | {
    kind: "waiting";
    /** One line for people and for the CNI plugin's "try again" message. */
    reason: string;
    problems: Diagnostic[];
    /** The gateway address, once allocated (a restart allocates the same one). */
    gateway?: number;
  }
  | {
    kind: "up";
    gateway: number;
    /** Undefined only when the agent runs without kernel work (API tests). */
    bridge?: BridgeState;
    /** Undefined with `--datapath none` or without kernel work. */
    datapath?: Datapath;
    sync?: DatapathSync;
  };

/** What bring-up needs of the IPAM. */
export interface GatewayIpam {
  allocate(containerId: string, options: { ifname: string }): Promise<Allocation>;
}

export interface NodeSetupOptions {
  config: AgentConfig;
  mesh: Mesh;
  /** False skips the kernel (bridge, sysctl, iptables, data path): API-level tests. */
  kernel: boolean;
  log: (message: string) => void;
}

export class NodeSetup {
  readonly #config: AgentConfig;
  readonly #mesh: Mesh;
  readonly #kernel: boolean;
  readonly #log: (message: string) => void;
  #phase: NodePhase = { kind: "waiting", reason: "starting", problems: [] };
  #trying: Promise<NodePhase> | undefined;
  #stopped = false;

  constructor(options: NodeSetupOptions) {
    this.#config = options.config;
    this.#mesh = options.mesh;
    this.#kernel = options.kernel;
    this.#log = options.log;
  }

  get phase(): NodePhase {
    return this.#phase;
  }

  /** The data path, once the node is up (and runs one). */
  get datapath(): Datapath | undefined {
    return this.#phase.kind === "up" ? this.#phase.datapath : undefined;
  }

  /** The bridge's address with the range's prefix, once the gateway is allocated. */
  gatewayCidr(): string | undefined {
    const gateway = this.#phase.gateway;
    if (gateway === undefined) return undefined;
    return `${formatIp(gateway)}/${this.#config.ipallocRange.prefix}`;
  }

  /** Marks the node as waiting for something outside set-up (the IPAM not open yet). */
  wait(reason: string, problems: Diagnostic[] = []): void {
    if (this.#phase.kind === "up") return;
    this.#setWaiting(reason, problems);
  }

  /**
   * One try at bringing the node up; concurrent calls share it and an up node stays up.
   * Never rejects: whatever fails becomes the waiting phase's reason and diagnostic.
   */
  bringUp(ipam: GatewayIpam): Promise<NodePhase> {
    if (this.#phase.kind === "up" || this.#stopped) return Promise.resolve(this.#phase);
    this.#trying ??= this.#tryBringUp(ipam).finally(() => this.#trying = undefined);
    return this.#trying;
  }

  async #tryBringUp(ipam: GatewayIpam): Promise<NodePhase> {
    const { bridge } = this.#config;
    let gateway: number;
    try {
      gateway = (await ipam.allocate(BRIDGE_CONTAINER_ID, { ifname: bridge })).address;
    } catch (error) {
      if (error instanceof NotReadyError || error instanceof NoSpaceError) {
        // the IPAM's own diagnostics say what it waits for
        this.#setWaiting(
          `the IPAM cannot give this node its gateway address yet: ${error.message}`,
        );
        return this.#phase;
      }
      return this.#failed(error, {
        what: "cannot allocate this node's gateway address",
        fix: `Check the state directory ${this.#config.stateDir} (free space, a read-only ` +
          `file system) and the agent's log; the agent retries by itself.`,
      });
    }
    this.#phase = { ...this.#phase, gateway } as NodePhase;
    let bridgeState: BridgeState | undefined;
    let datapath: { datapath: Datapath; sync: DatapathSync } | undefined;
    if (this.#kernel) {
      try {
        bridgeState = await this.#ensureBridge(gateway);
        await writeSysctl("net.ipv4.ip_forward", "1");
        await this.#applyRules();
        if (this.#config.datapathMode !== "none") datapath = await this.#startDatapath();
      } catch (error) {
        return this.#failed(error, {
          what: "cannot set up the node",
          fix: `Remove what the message names (for example a link called "${bridge}" that is ` +
            `not a bridge), or run \`weft reset\` to start this node over; the agent retries by ` +
            `itself.`,
        });
      }
    }
    if (this.#stopped) {
      await datapath?.sync.stop();
      await datapath?.datapath.stop();
      return this.#phase;
    }
    this.#phase = { kind: "up", gateway, bridge: bridgeState, ...datapath };
    return this.#phase;
  }

  /** A try that failed for a reason nobody planned for: say so once, wait, try again later. */
  #failed(error: unknown, options: { what: string; fix: string }): NodePhase {
    const reason = `${options.what}: ${(error as Error)?.message ?? error}`;
    if (this.#phase.kind !== "waiting" || this.#phase.reason !== reason) {
      this.#log(`${reason} (retrying)`);
    }
    this.#setWaiting(reason, [
      { code: "node-setup-failed", severity: "error", message: reason, fix: options.fix },
    ]);
    return this.#phase;
  }

  #setWaiting(reason: string, problems: Diagnostic[] = []): void {
    if (this.#phase.kind === "waiting" && this.#phase.reason !== reason && !problems.length) {
      this.#log(`waiting: ${reason}`);
    }
    this.#phase = { kind: "waiting", reason, problems, gateway: this.#phase.gateway };
  }

  /** Why set-up is not done, for status: empty once the node is up. */
  diagnostics(): Diagnostic[] {
    return this.#phase.kind === "waiting" ? this.#phase.problems : [];
  }

  #ensureBridge(gateway: number): Promise<BridgeState> {
    const { bridge, ipallocRange, mtu, datapathMode } = this.#config;
    return ensureBridge(bridge, {
      address: this.gatewayCidr()!,
      mac: macForAddress(gateway),
      mtu: mtu ?? (datapathMode === "none" ? 1500 : undefined),
      // An older gateway address of ours inside the pod range (after a reclaim while we were
      // away) would answer ARP for an address now given to a pod elsewhere.
      isStale: (cidr) => cidrContains(ipallocRange, parseCidr(cidr, { strict: false }).base),
    });
  }

  async #startDatapath(): Promise<{ datapath: Datapath; sync: DatapathSync }> {
    const config = this.#config;
    const datapath = await createDatapath({
      name: this.#mesh.name,
      bridge: config.bridge,
      underlayIp: config.meshHost === "0.0.0.0" ? undefined : config.meshHost,
      vxlanPort: config.vxlanPort,
      udpPort: config.sleevePort,
      // ports pods must not reach on this node (the data path's guard)
      meshPort: config.port,
      apiPort: config.apiAddr.port,
      mtu: config.mtu,
      encrypt: config.encrypt,
      mode: config.datapathMode === "none" ? undefined : config.datapathMode,
      log: (message) => this.#log(`datapath: ${message}`),
      // The sleeve threads start from the entry itself (main.ts, the bundle or the compiled
      // binary), which becomes a sleeve thread when started under that worker name: no second
      // file to ship or to find.
      workerUrl: Deno.mainModule,
    });
    await datapath.start();
    return { datapath, sync: new DatapathSync(this.#mesh, datapath, { log: this.#log }) };
  }

  /** Starts reconciling the data path with the mesh, after publishing this node's endpoints. */
  startSync(allocations: Allocation[]): void {
    if (this.#phase.kind !== "up") return;
    this.publishEndpoints(allocations);
    this.#phase.sync?.start();
  }

  /** Tells the other nodes (through the data path's blob in the mesh) which MACs live here. */
  publishEndpoints(allocations: Allocation[]): void {
    if (this.#phase.kind !== "up") return;
    this.#phase.sync?.publishEndpoints(
      allocations.map((a) => ({ mac: macForAddress(a.address), ip: formatIp(a.address) })),
    );
  }

  /** Whether the pod network is hidden from the node: a file in the state dir, so it survives restarts. */
  get #hiddenMarker(): string {
    return `${this.#config.stateDir}/hidden`;
  }

  async #isExposed(): Promise<boolean> {
    try {
      await Deno.stat(this.#hiddenMarker);
      return false;
    } catch {
      return true;
    }
  }

  async #applyRules(): Promise<boolean> {
    const exposed = await this.#isExposed();
    await ensureWeftRules({
      podRange: formatCidr(this.#config.ipallocRange),
      bridge: this.#config.bridge,
      exposed,
    });
    return exposed;
  }

  async expose(): Promise<{ exposed: boolean; address: string }> {
    await Deno.remove(this.#hiddenMarker).catch(() => {});
    return { exposed: await this.#applyRules(), address: this.gatewayCidr() ?? "" };
  }

  async hide(): Promise<{ exposed: boolean; address: string }> {
    await Deno.writeTextFile(this.#hiddenMarker, "the pod network is hidden from this node\n");
    return { exposed: await this.#applyRules(), address: this.gatewayCidr() ?? "" };
  }

  /** Stops the data path (kernel state stays); a bring-up still running stops what it made. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#trying?.catch(() => {});
    if (this.#phase.kind !== "up") return;
    await this.#phase.sync?.stop();
    await this.#phase.datapath?.stop();
  }
}
