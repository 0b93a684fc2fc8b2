/**
 * The agent: the composition root that owns one node's share of weft. It builds the pieces
 * (IPAM, bridge, iptables, admin API, and later the mesh and data path), wires them together
 * through their interfaces, and implements the admin API's `AgentPort` on top of them.
 *
 * Start-up order matters for restarts: the IPAM state is opened first so the bridge gets the
 * same gateway address it had, and pods attached before the restart keep working throughout;
 * nothing here tears down kernel state on stop, only `weft reset` does.
 */
import { createApi } from "../api/mod.ts";
import {
  type AgentPort,
  type AllocationView,
  type AttachmentRef,
  BadRequestError,
  ExhaustedError,
  type IpamStatusView,
  type StatusView,
  UnavailableError,
} from "../api/mod.ts";
import {
  cidrContains,
  cidrWithin,
  formatCidr,
  formatIp,
  macForAddress,
  parseCidr,
} from "../net/cidr.ts";
import { type BridgeState, ensureBridge } from "../net/bridge.ts";
import { ensureWeftRules } from "../net/iptables.ts";
import { writeSysctl } from "../net/sysctl.ts";
import {
  type Allocation,
  IpamConflictError,
  NodeIpam,
  NoSpaceError,
  NotReadyError,
  openSqliteStore,
} from "../ipam/mod.ts";
import { Mesh } from "../mesh/mod.ts";
import { createDatapath, type Datapath } from "../datapath/mod.ts";
import { DatapathSync } from "./datapath_sync.ts";
import type { AgentConfig } from "./config.ts";
import { AgentMetrics } from "./metrics.ts";
import { VERSION } from "../version.ts";

/** The bridge's own address is an allocation like a pod's, under this reserved container ID. */
export const BRIDGE_CONTAINER_ID = "weft:bridge";

export interface AgentOptions {
  log?: (message: string) => void;
  /** Skip kernel work (bridge, sysctl, iptables): for API-level tests of the composition. */
  kernel?: boolean;
  /** Skip serving the admin API on a socket (tests call `createApi(agent)` directly). */
  serve?: boolean;
  /** Skip starting the mesh (no listening socket, no dialling): for API-level tests. */
  mesh?: boolean;
}

export class Agent implements AgentPort {
  readonly config: AgentConfig;
  readonly #ipam: NodeIpam;
  readonly #metrics: AgentMetrics;
  readonly #log: (message: string) => void;
  readonly #startedAt = Date.now();
  #bridge: BridgeState | undefined;
  #bridgeAddress: number | undefined;
  #server: Deno.HttpServer | undefined;
  readonly #mesh: Mesh;
  readonly mesh: AgentPort["mesh"];
  #datapath: Datapath | undefined;
  #datapathSync: DatapathSync | undefined;

  private constructor(config: AgentConfig, ipam: NodeIpam, mesh: Mesh, options: AgentOptions) {
    this.config = config;
    this.#ipam = ipam;
    this.#mesh = mesh;
    this.#log = options.log ?? ((message) => console.error(`weft: ${message}`));
    this.#metrics = new AgentMetrics({
      ipam: () => this.ipamStatus(),
      mesh: () => this.#mesh.metrics(),
    });
    this.mesh = {
      peers: () => mesh.peers(),
      connections: () => this.#connections(),
      targets: () => mesh.targets(),
      connect: (address, options) => mesh.connect(address, options),
      forget: (address) => mesh.forget(address),
    };
  }

  /** Builds and starts an agent: IPAM, bridge, rules, then the admin API. */
  static async launch(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    await Deno.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    const log = options.log ?? ((message: string) => console.error(`weft: ${message}`));
    const mesh = await Mesh.create({
      stateDir: config.stateDir,
      name: config.peerName,
      nickname: config.nickname,
      password: config.password,
      host: config.meshHost,
      port: config.port,
      peers: config.peers,
      discovery: config.discovery,
      connLimit: config.connLimit,
      tls: config.tls,
      log: (message) => log(`mesh: ${message}`),
    });
    const store = openSqliteStore(`${config.stateDir}/weft.db`);
    const ipam = await NodeIpam.open({
      store,
      clusterRange: config.ipallocRange,
      peerName: mesh.name,
    });
    const agent = new Agent(config, ipam, mesh, options);
    try {
      await agent.#setUpNode(options.kernel !== false);
      if (options.kernel !== false && config.datapathMode !== "none") await agent.#startDatapath();
      if (options.serve !== false) agent.#serveApi();
      if (options.mesh !== false) await mesh.start();
    } catch (error) {
      await agent.stop();
      throw error;
    }
    agent.#log(
      `agent ${VERSION} ready: bridge ${config.bridge} ${agent.#bridgeCidr() ?? "(none)"}, ` +
        `range ${
          formatCidr(config.ipallocRange)
        }, API http://${config.apiAddr.hostname}:${config.apiAddr.port}`,
    );
    return agent;
  }

  async #setUpNode(kernel: boolean): Promise<void> {
    const { bridge, ipallocRange } = this.config;
    const gateway = await this.#ipam.allocate(BRIDGE_CONTAINER_ID, { ifname: bridge });
    this.#bridgeAddress = gateway.address;
    if (!kernel) return;
    this.#bridge = await ensureBridge(bridge, {
      address: this.#bridgeCidr()!,
      mac: macForAddress(gateway.address),
      mtu: this.config.mtu ?? (this.config.datapathMode === "none" ? 1500 : undefined),
      // An older gateway address of ours inside the pod range (e.g. after the range's owner
      // changed) would answer ARP for an address now given to a pod elsewhere: remove it.
      isStale: (cidr) => cidrContains(ipallocRange, parseCidr(cidr, { strict: false }).base),
    });
    await writeSysctl("net.ipv4.ip_forward", "1");
    await this.#applyRules();
  }

  /** Whether the pod network is hidden from the node: a file in the state dir, so it survives restarts. */
  get #hiddenMarker(): string {
    return `${this.config.stateDir}/hidden`;
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
      podRange: formatCidr(this.config.ipallocRange),
      bridge: this.config.bridge,
      exposed,
    });
    return exposed;
  }

  async expose(): Promise<{ exposed: boolean; address: string }> {
    await Deno.remove(this.#hiddenMarker).catch(() => {});
    return { exposed: await this.#applyRules(), address: this.#bridgeCidr() ?? "" };
  }

  async hide(): Promise<{ exposed: boolean; address: string }> {
    await Deno.writeTextFile(this.#hiddenMarker, "the pod network is hidden from this node\n");
    return { exposed: await this.#applyRules(), address: this.#bridgeCidr() ?? "" };
  }

  async #startDatapath(): Promise<void> {
    const { config } = this;
    const datapath = await createDatapath({
      name: this.#mesh.name,
      bridge: config.bridge,
      underlayIp: config.meshHost === "0.0.0.0" ? undefined : config.meshHost,
      vxlanPort: config.vxlanPort,
      udpPort: config.sleevePort,
      mtu: config.mtu,
      encrypt: config.encrypt,
      mode: config.datapathMode === "none" ? undefined : config.datapathMode,
      log: (message) => this.#log(`datapath: ${message}`),
    });
    await datapath.start();
    this.#datapath = datapath;
    this.#datapathSync = new DatapathSync(this.#mesh, datapath, { log: this.#log });
    this.#publishEndpoints();
    this.#datapathSync.start();
  }

  /** Tells the other nodes (through the data path's blob in the mesh) which MACs live here. */
  #publishEndpoints(): void {
    this.#datapathSync?.publishEndpoints(
      this.#ipam.list().map((a) => ({ mac: macForAddress(a.address), ip: formatIp(a.address) })),
    );
  }

  /**
   * Mesh connections, each with the data path's word on how pod traffic to that peer travels,
   * followed by the peers whose traffic is relayed (no direct connection, but a data path).
   */
  #connections() {
    const paths = new Map((this.#datapath?.status() ?? []).map((p) => [p.peer, p]));
    const describe = (peer: string) => {
      const path = paths.get(peer);
      paths.delete(peer);
      return path && {
        path: path.path,
        encrypted: path.encrypted,
        pathMtu: path.mtu,
        pathHealthy: path.healthy,
        reason: path.reason,
      };
    };
    const direct = this.#mesh.connections().map((connection) => ({
      ...connection,
      ...(connection.peer ? describe(connection.peer) : undefined),
    }));
    const relayed = [...paths.keys()].map((peer) => ({
      peer,
      state: "indirect",
      ...describe(peer),
    }));
    return [...direct, ...relayed];
  }

  #bridgeCidr(): string | undefined {
    if (this.#bridgeAddress === undefined) return undefined;
    return `${formatIp(this.#bridgeAddress)}/${this.config.ipallocRange.prefix}`;
  }

  #serveApi(): void {
    const app = createApi(this);
    const { hostname, port } = this.config.apiAddr;
    try {
      this.#server = Deno.serve({ hostname, port, onListen: () => {} }, app.fetch);
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new Error(
          `Cannot serve the admin API on ${hostname}:${port}: the address is in use (is another weft agent running?)`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  async stop(): Promise<void> {
    await this.#server?.shutdown();
    this.#server = undefined;
    await this.#datapathSync?.stop();
    await this.#datapath?.stop();
    await this.#mesh.stop();
    this.#ipam.close();
  }

  /** Resolves when the API server has closed (the agent runs until then). */
  get finished(): Promise<void> {
    return this.#server?.finished ?? Promise.resolve();
  }

  // ---- AgentPort: what the admin API calls ----

  #view(allocation: Allocation): AllocationView {
    return {
      containerID: allocation.containerId,
      ifname: allocation.ifname,
      address: `${formatIp(allocation.address)}/${this.config.ipallocRange.prefix}`,
      gateway: this.#bridgeAddress === undefined ? "" : formatIp(this.#bridgeAddress),
      mac: macForAddress(allocation.address),
      createdAt: new Date(allocation.createdAt).toISOString(),
    };
  }

  status(): StatusView {
    const ipam = this.ipamStatus();
    const bridgeReady = this.#bridgeAddress !== undefined;
    const ready = ipam.ready && bridgeReady;
    return {
      version: VERSION,
      ready,
      reason: ready ? undefined : (ipam.reason ?? "the bridge has no address yet"),
      peerName: this.#mesh.name,
      nickname: this.#mesh.nickname,
      range: formatCidr(this.config.ipallocRange),
      bridge: {
        name: this.config.bridge,
        address: this.#bridgeCidr() ?? "",
        mac: this.#bridge?.mac ?? "",
        mtu: this.#datapath?.mtu() ?? this.#bridge?.mtu ?? this.config.mtu ?? 1500,
      },
      ipam,
      mesh: this.#meshSummary(),
      datapath: this.#datapath
        ? { mode: this.config.datapathMode, mtu: this.#datapath.mtu() }
        : undefined,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
    };
  }

  #meshSummary(): StatusView["mesh"] {
    const peers = this.#mesh.peers().filter((p) => !p.self);
    const connections = this.#mesh.connections();
    return {
      peers: peers.length,
      reachable: peers.filter((p) => p.reachable).length,
      connections: connections.length,
      established: connections.filter((c) => c.state === "established").length,
    };
  }

  ipamStatus(): IpamStatusView {
    const status = this.#ipam.status();
    return {
      range: formatCidr(this.config.ipallocRange),
      ready: status.ready,
      reason: status.waitingFor,
      size: status.size,
      used: status.used,
      free: status.free,
      owned: status.owned,
    };
  }

  async allocate(
    containerID: string,
    options: { ifname: string; subnet?: string },
  ): Promise<AllocationView> {
    if (containerID === BRIDGE_CONTAINER_ID) {
      throw new BadRequestError(`Container ID "${containerID}" is reserved for the bridge`);
    }
    let subnet;
    if (options.subnet !== undefined) {
      try {
        subnet = parseCidr(options.subnet);
      } catch (error) {
        throw new BadRequestError(`Invalid subnet: ${(error as Error).message}`);
      }
      if (!cidrWithin(subnet, this.config.ipallocRange)) {
        throw new BadRequestError(
          `Invalid subnet "${options.subnet}": not inside the pod range ${
            formatCidr(this.config.ipallocRange)
          }`,
        );
      }
    }
    if (this.#bridgeAddress === undefined) {
      throw new UnavailableError("The node's bridge has no address yet; try again shortly");
    }
    try {
      const allocation = await this.#ipam.allocate(containerID, { ifname: options.ifname, subnet });
      this.#publishEndpoints();
      return this.#view(allocation);
    } catch (error) {
      if (error instanceof NotReadyError) throw new UnavailableError(error.message);
      if (error instanceof NoSpaceError) throw new ExhaustedError(error.message);
      if (error instanceof IpamConflictError) throw new BadRequestError(error.message, 409);
      if (error instanceof TypeError || error instanceof RangeError) {
        throw new BadRequestError(error.message);
      }
      throw error;
    }
  }

  lookup(containerID: string, ifname?: string): AllocationView[] {
    return this.#ipam.lookup(containerID, ifname).map((a) => this.#view(a));
  }

  release(containerID: string, ifname?: string): Promise<AllocationView[]> {
    if (containerID === BRIDGE_CONTAINER_ID) {
      throw new BadRequestError(`Container ID "${containerID}" is reserved for the bridge`);
    }
    const released = this.#ipam.release(containerID, ifname);
    if (released.length) this.#publishEndpoints();
    return Promise.resolve(released.map((a) => this.#view(a)));
  }

  retainOnly(valid: AttachmentRef[]): Promise<AllocationView[]> {
    const released = this.#ipam.retainOnly(
      valid.map((v) => ({ containerId: v.containerID, ifname: v.ifname })),
      { keep: (a) => a.containerId === BRIDGE_CONTAINER_ID },
    );
    if (released.length) this.#publishEndpoints();
    return Promise.resolve(released.map((a) => this.#view(a)));
  }

  allocations(): AllocationView[] {
    return this.#ipam.list().map((a) => this.#view(a));
  }

  metrics() {
    return this.#metrics.render();
  }

  countRequest(route: string, method: string, status: number): void {
    this.#metrics.countRequest(route, method, status);
  }
}
