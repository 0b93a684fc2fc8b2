/**
 * The agent: the composition root that owns one node's share of weft. It builds the pieces
 * (mesh, cluster IPAM, bridge and iptables, data path, admin API, Kubernetes watcher), wires
 * them together through their interfaces, and implements the admin API's `AgentPort`.
 *
 * Start-up is in two phases because the node's gateway address is itself an allocation: the
 * mesh and the API start at once (so the IPAM can agree its first split with the other peers,
 * and so people and the CNI plugin get a clear "not ready: waiting for ..." instead of a
 * refused connection), and the node is brought up (bridge with its gateway address, rules,
 * data path) as soon as the IPAM can allocate. A restarted agent finds its allocations in the
 * state directory, so the bridge gets the same address and attached pods keep working; nothing
 * here tears kernel state down on stop, only `weft reset` does.
 */
import {
  type AgentPort,
  type AllocationView,
  type AttachmentRef,
  BadRequestError,
  createApi,
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
  ClusterIpam,
  IpamConflictError,
  type IpamInit,
  NoSpaceError,
  NotReadyError,
  openSqliteStore,
  type Store,
} from "../ipam/mod.ts";
import { AddressError, Mesh } from "../mesh/mod.ts";
import { createDatapath, type Datapath } from "../datapath/mod.ts";
import type { AgentConfig } from "./config.ts";
import { AgentMetrics } from "./metrics.ts";
import { DatapathSync } from "./datapath_sync.ts";
import { meshIpamTransport } from "./ipam_transport.ts";
import { startKubernetes } from "./kube_sync.ts";
import { VERSION } from "../version.ts";

function badAddressIs400(action: () => void): void {
  try {
    action();
  } catch (error) {
    if (error instanceof AddressError) throw new BadRequestError(error.message);
    throw error;
  }
}

/** The bridge's own address is an allocation like a pod's, under this reserved container ID. */
export const BRIDGE_CONTAINER_ID = "weft:bridge";

const BRING_UP_RETRY_MS = 500;
const IPAM_TICK_MS = 1000;

export interface AgentOptions {
  log?: (message: string) => void;
  /** Skip kernel work (bridge, sysctl, iptables, data path): for API-level tests. */
  kernel?: boolean;
  /** Skip serving the admin API on a socket (tests call `createApi(agent)` directly). */
  serve?: boolean;
  /** Skip starting the mesh (no listening socket, no dialling): for API-level tests. */
  mesh?: boolean;
}

export class Agent implements AgentPort {
  readonly config: AgentConfig;
  readonly mesh: AgentPort["mesh"];
  readonly #options: AgentOptions;
  readonly #meshNode: Mesh;
  readonly #store: Store;
  readonly #metrics: AgentMetrics;
  readonly #log: (message: string) => void;
  readonly #startedAt = Date.now();
  readonly #stopping = new AbortController();
  #ipam: ClusterIpam | undefined;
  #bridge: BridgeState | undefined;
  #bridgeAddress: number | undefined;
  #nodeUp = false;
  /** Why the node is not up yet, for status and for the CNI plugin's "try again" message. */
  #notUpReason = "starting";
  #server: Deno.HttpServer | undefined;
  #datapath: Datapath | undefined;
  #datapathSync: DatapathSync | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #bringingUp: Promise<boolean> | undefined;
  #stopped: Promise<void> | undefined;
  #finished = Promise.withResolvers<void>();

  private constructor(config: AgentConfig, mesh: Mesh, store: Store, options: AgentOptions) {
    this.config = config;
    this.#options = options;
    this.#meshNode = mesh;
    this.#store = store;
    this.#log = options.log ?? ((message) => console.error(`weft: ${message}`));
    this.#metrics = new AgentMetrics({
      ipam: () => {
        const view = this.ipamStatus();
        return {
          size: view.size,
          used: view.used,
          free: view.free,
          unreachablePercentage: view.unreachablePercentage,
          pending: view.pendingRequests,
        };
      },
      mesh: () => this.#meshNode.metrics(),
    });
    this.mesh = {
      peers: () => mesh.peers(),
      connections: () => this.#connections(),
      targets: () => mesh.targets(),
      connect: (address, options) => badAddressIs400(() => mesh.connect(address, options)),
      forget: (address) => badAddressIs400(() => mesh.forget(address)),
      removePeer: (name) => Promise.resolve(this.removePeer(name)),
      ring: () => this.#ipam ? JSON.parse(this.#ipam.ringState()) : undefined,
    };
  }

  /** Builds and starts an agent; returns once the API serves (the node may still be coming up). */
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
      caCerts: config.tlsCa,
      log: (message) => log(`mesh: ${message}`),
    });
    const store = openSqliteStore(`${config.stateDir}/weft.db`);
    const agent = new Agent(config, mesh, store, options);
    try {
      if (config.ipallocInit) await agent.#openIpam(config.ipallocInit);
      if (options.serve !== false) agent.#serveApi();
      if (options.mesh !== false) await mesh.start();
      if (config.kubernetes) await agent.#startKubernetes();
      agent.#every(BRING_UP_RETRY_MS, () => void agent.#bringUp());
      await agent.#bringUp();
    } catch (error) {
      await agent.stop();
      throw error;
    }
    return agent;
  }

  async #openIpam(init: IpamInit): Promise<void> {
    const mesh = this.#meshNode;
    this.#ipam = await ClusterIpam.open({
      store: this.#store,
      clusterRange: this.config.ipallocRange,
      peerName: mesh.name,
      transport: meshIpamTransport(mesh),
      init,
      reclaimAfterMs: this.config.ipamReclaimAfterMs,
      onEvent: (event) => this.#log(`ipam: ${event.message}`),
    });
    // A peer that just came up, or restarted (a new incarnation, which the others may see
    // without it ever going down), needs the ring now, not at the next periodic gossip: a
    // restarted IPAM must hear from a live peer before it allocates again.
    const incarnations = new Map<string, string>();
    const gossipOnNewIncarnation = (peer: { name: string; incarnation: string }) => {
      if (incarnations.get(peer.name) === peer.incarnation) return;
      incarnations.set(peer.name, peer.incarnation);
      this.#ipam?.gossip();
    };
    mesh.on("peer-up", gossipOnNewIncarnation);
    mesh.on("peer-changed", gossipOnNewIncarnation);
    // The ring is broadcast along the mesh's spanning tree, and a broadcast sent while the tree
    // still runs through a peer that just died is lost: push our state when a peer goes down.
    // (The IPAM itself keeps re-sending while a reclaim waits for acknowledgements.)
    mesh.on("peer-down", () => this.#ipam?.gossip());
    this.#every(IPAM_TICK_MS, () => this.#ipam?.tick());
  }

  async #startKubernetes(): Promise<void> {
    const ready = Promise.withResolvers<void>();
    this.#whenUp = ready.resolve;
    await startKubernetes({
      config: this.config,
      mesh: this.#meshNode,
      signal: this.#stopping.signal,
      ready: ready.promise,
      log: this.#log,
      // without IPALLOC_INIT, the first split is agreed among the Nodes of the first list
      openIpam: this.#ipam ? undefined : (peers) => this.#openIpam({ mode: "consensus", peers }),
      reclaim: (nodeName) => this.#reclaimDeletedNode(nodeName),
    });
  }

  #whenUp: (() => void) | undefined;

  #every(ms: number, fn: () => void): void {
    this.#timers.push(setInterval(fn, ms));
  }

  /**
   * Brings the node up once the IPAM can allocate the gateway address: bridge, forwarding,
   * iptables, data path. Called on a timer until it succeeds; concurrent calls share one try.
   */
  #bringUp(): Promise<boolean> {
    if (this.#nodeUp) return Promise.resolve(true);
    this.#bringingUp ??= this.#tryBringUp().finally(() => this.#bringingUp = undefined);
    return this.#bringingUp;
  }

  async #tryBringUp(): Promise<boolean> {
    const ipam = this.#ipam;
    if (!ipam) {
      this.#notUpReason = "waiting for the Kubernetes Node list to agree the IPAM's first split";
      return false;
    }
    const { bridge, ipallocRange } = this.config;
    try {
      const gateway = await ipam.allocate(BRIDGE_CONTAINER_ID, { ifname: bridge });
      this.#bridgeAddress = gateway.address;
    } catch (error) {
      if (!(error instanceof NotReadyError || error instanceof NoSpaceError)) throw error;
      const reason = `the IPAM cannot give this node its gateway address yet: ${error.message}`;
      if (reason !== this.#notUpReason) this.#log(`waiting: ${reason}`);
      this.#notUpReason = reason;
      return false;
    }
    if (this.#options.kernel !== false) {
      try {
        this.#bridge = await ensureBridge(bridge, {
          address: this.#bridgeCidr()!,
          mac: macForAddress(this.#bridgeAddress),
          mtu: this.config.mtu ?? (this.config.datapathMode === "none" ? 1500 : undefined),
          // An older gateway address of ours inside the pod range (after a reclaim while we
          // were away) would answer ARP for an address now given to a pod elsewhere.
          isStale: (cidr) => cidrContains(ipallocRange, parseCidr(cidr, { strict: false }).base),
        });
        await writeSysctl("net.ipv4.ip_forward", "1");
        await this.#applyRules();
        if (this.config.datapathMode !== "none") await this.#startDatapath();
      } catch (error) {
        this.#notUpReason = `cannot set up the node: ${(error as Error).message}`;
        this.#log(this.#notUpReason);
        return false;
      }
    }
    this.#nodeUp = true;
    this.#notUpReason = "";
    this.#whenUp?.();
    const { hostname, port } = this.config.apiAddr;
    this.#log(
      `agent ${VERSION} ready: peer ${this.#meshNode.name} (${this.#meshNode.nickname}), bridge ` +
        `${bridge} ${this.#bridgeCidr()}, range ${
          formatCidr(ipallocRange)
        }, API http://${hostname}:${port}`,
    );
    return true;
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
    if (this.#datapath) return;
    const datapath = await createDatapath({
      name: this.#meshNode.name,
      bridge: config.bridge,
      underlayIp: config.meshHost === "0.0.0.0" ? undefined : config.meshHost,
      vxlanPort: config.vxlanPort,
      udpPort: config.sleevePort,
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
    this.#datapath = datapath;
    this.#datapathSync = new DatapathSync(this.#meshNode, datapath, { log: this.#log });
    this.#publishEndpoints();
    this.#datapathSync.start();
  }

  /** Tells the other nodes (through the data path's blob in the mesh) which MACs live here. */
  #publishEndpoints(): void {
    if (!this.#ipam) return;
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
    const direct = this.#meshNode.connections().map((connection) => ({
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

  /** Stops everything this process runs; kernel state stays. Safe to call more than once. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping.abort();
      for (const timer of this.#timers) clearInterval(timer);
      await this.#server?.shutdown();
      await this.#datapathSync?.stop();
      await this.#datapath?.stop();
      await this.#meshNode.stop();
      this.#ipam?.close();
      this.#store.close();
      this.#finished.resolve();
    })();
    return this.#stopped;
  }

  /** Resolves when the agent has stopped (the process runs until then). */
  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  // ---- AgentPort: what the admin API calls ----

  #requireIpam(): ClusterIpam {
    if (!this.#ipam) throw new UnavailableError(`Not ready: ${this.#notUpReason}`);
    return this.#ipam;
  }

  #view(allocation: Allocation): AllocationView {
    return {
      containerID: allocation.containerId,
      ifname: allocation.ifname,
      address: `${formatIp(allocation.address)}/${this.config.ipallocRange.prefix}`,
      gateway: this.#bridgeAddress === undefined ? "" : formatIp(this.#bridgeAddress),
      mac: macForAddress(allocation.address),
      createdAt: new Date(allocation.createdAt).toISOString(),
      ...(allocation.network ? { network: allocation.network } : {}),
    };
  }

  status(): StatusView {
    const ipam = this.ipamStatus();
    const ready = this.#nodeUp && ipam.ready;
    return {
      version: VERSION,
      ready,
      reason: ready ? undefined : (this.#nodeUp ? ipam.reason : this.#notUpReason),
      peerName: this.#meshNode.name,
      nickname: this.#meshNode.nickname,
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
    const peers = this.#meshNode.peers().filter((p) => !p.self);
    const connections = this.#meshNode.connections();
    return {
      peers: peers.length,
      reachable: peers.filter((p) => p.reachable).length,
      connections: connections.length,
      established: connections.filter((c) => c.state === "established").length,
    };
  }

  ipamStatus(): IpamStatusView {
    const range = formatCidr(this.config.ipallocRange);
    if (!this.#ipam) {
      return {
        range,
        ready: false,
        reason: this.#notUpReason,
        size: 0,
        used: 0,
        free: 0,
        owned: [],
      };
    }
    const status = this.#ipam.status();
    const nicknames = new Map(this.#meshNode.peers().map((p) => [p.name, p.nickname]));
    return {
      range,
      ready: status.ready,
      reason: status.waitingFor,
      size: status.size,
      used: status.used,
      free: status.free,
      owned: status.owned,
      peers: status.peers.map((p) => ({
        peer: p.name,
        nickname: nicknames.get(p.name),
        owned: p.owned,
        used: p.used,
        free: p.free,
        reachable: p.reachable,
        removed: p.removed,
      })),
      unreachablePercentage: status.unreachablePercentage,
      pendingRequests: status.pendingRequests,
      reclaims: status.reclaims,
    };
  }

  async allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string },
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
    const ipam = this.#requireIpam();
    if (!this.#nodeUp) throw new UnavailableError(`Not ready: ${this.#notUpReason}`);
    try {
      const allocation = await ipam.allocate(containerID, {
        ifname: options.ifname,
        subnet,
        network: options.network,
      });
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
    return (this.#ipam?.lookup(containerID, ifname) ?? []).map((a) => this.#view(a));
  }

  release(containerID: string, ifname?: string): Promise<AllocationView[]> {
    if (containerID === BRIDGE_CONTAINER_ID) {
      throw new BadRequestError(`Container ID "${containerID}" is reserved for the bridge`);
    }
    const released = this.#requireIpam().release(containerID, ifname);
    if (released.length) this.#publishEndpoints();
    return Promise.resolve(released.map((a) => this.#view(a)));
  }

  retainOnly(
    valid: AttachmentRef[],
    options: { network?: string } = {},
  ): Promise<AllocationView[]> {
    const { network } = options;
    const released = this.#requireIpam().retainOnly(
      valid.map((v) => ({ containerId: v.containerID, ifname: v.ifname })),
      {
        // the bridge's address is never garbage; with a network named, neither is any other
        // network's allocation (nor one made before allocations recorded their network)
        keep: (a) =>
          a.containerId === BRIDGE_CONTAINER_ID ||
          (network !== undefined && a.network !== network),
      },
    );
    if (released.length) this.#publishEndpoints();
    return Promise.resolve(released.map((a) => this.#view(a)));
  }

  allocations(): AllocationView[] {
    return (this.#ipam?.list() ?? []).map((a) => this.#view(a));
  }

  /**
   * `rmpeer`: reclaims the space of a peer that is gone for good, named by peer name or by
   * nickname (a Kubernetes Node name). The same tombstone whoever runs it, so it is safe on
   * several nodes at once.
   */
  removePeer(nameOrNickname: string): { peer: string; gen: number; addresses: number } {
    const ipam = this.#requireIpam();
    const byNickname = this.#meshNode.peers().filter((p) => p.nickname === nameOrNickname);
    const ringPeers = new Set(ipam.status().peers.map((p) => p.name));
    const name = ringPeers.has(nameOrNickname)
      ? nameOrNickname
      : byNickname.length === 1
      ? byNickname[0].name
      : nameOrNickname;
    if (name === this.#meshNode.name) {
      throw new BadRequestError(
        `Cannot rmpeer "${nameOrNickname}": it is this node; use weft reset`,
      );
    }
    const reachable = this.#meshNode.peer(name)?.reachable;
    if (reachable) {
      throw new BadRequestError(
        `Cannot rmpeer "${nameOrNickname}": it is reachable; stop it first or let it leave with weft reset`,
        409,
      );
    }
    try {
      return ipam.rmpeer(name);
    } catch (error) {
      if (error instanceof RangeError) throw new BadRequestError(error.message, 404);
      throw error;
    }
  }

  /**
   * A deleted Node's agent may still be seen for a few seconds (until heartbeats time out), and
   * rmpeer refuses a reachable peer; wait for the mesh to agree it is gone, then reclaim.
   */
  async #reclaimDeletedNode(nodeName: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!this.#stopping.signal.aborted) {
      const peer = this.#meshNode.peers().find((p) => p.nickname === nodeName);
      if (!peer?.reachable || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const result = this.removePeer(nodeName);
    this.#log(
      `reclaimed ${result.addresses} addresses of deleted Node ${nodeName} (${result.peer})`,
    );
  }

  /** Leaves the cluster cleanly: gives this node's ranges away, then stops the agent. */
  async leave(): Promise<{ givenTo?: string; addresses: number }> {
    const result = await this.#requireIpam().leave();
    this.#log(
      `left the cluster: ${result.addresses} addresses given to ${result.givenTo ?? "nobody"}`,
    );
    setTimeout(() => void this.stop(), 100);
    return result;
  }

  metrics() {
    return this.#metrics.render();
  }

  countRequest(route: string, method: string, status: number): void {
    this.#metrics.countRequest(route, method, status);
  }
}
