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
  type IpamStatusView,
  type PodRef,
  type ReportView,
  type StatusView,
  type TopologyView,
  UnavailableError,
} from "../api/mod.ts";
import { cidrWithin, formatCidr, parseCidr } from "../net/cidr.ts";
import {
  type Allocation,
  ClusterIpam,
  type IpamInit,
  openSqliteStore,
  type Store,
} from "../ipam/mod.ts";
import type { Mesh } from "../mesh/mod.ts";
import type { AgentConfig } from "./config.ts";
import { AgentMetrics } from "./metrics.ts";
import { fixed, ipamDiagnostics, nodeProblems } from "./diagnostics.ts";
import { httpErrorOf } from "./http_errors.ts";
import { openMeshIpam } from "./ipam_transport.ts";
import { startKubernetes } from "./kube_sync.ts";
import { DeletedNodeReclaimer, removePeer } from "./reclaim.ts";
import { createMesh, meshPort } from "./mesh_port.ts";
import { allocationView, ipamStatusView, statusView } from "./views.ts";
import { AWAITING_NODE_LIST, BRIDGE_CONTAINER_ID, NodeSetup } from "./node_setup.ts";
import { LogBuffer } from "./log_buffer.ts";
import { buildReport } from "./report.ts";
import { agentTopology, publishPaths } from "./topology.ts";
import { disabledPolicyView, type PolicyEnforcement, startPolicy } from "./policy_wiring.ts";
import { VERSION } from "../version.ts";

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
  /** The IPAM's store; default SQLite in the state directory (tests pass a double). */
  store?: Store;
}

export class Agent implements AgentPort {
  readonly config: AgentConfig;
  readonly mesh: AgentPort["mesh"];
  readonly #meshNode: Mesh;
  readonly #store: Store;
  readonly #metrics: AgentMetrics;
  readonly #log: (message: string) => void;
  readonly #logs: LogBuffer;
  readonly #kernel: boolean;
  readonly #setup: NodeSetup;
  readonly #reclaimer: DeletedNodeReclaimer;
  readonly #startedAt = Date.now();
  readonly #stopping = new AbortController();
  #ipam: ClusterIpam | undefined;
  #policy: PolicyEnforcement | undefined;
  #server: Deno.HttpServer | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #whenUp: (() => void) | undefined;
  #stopPublishingPaths: (() => void) | undefined;
  #stopped: Promise<void> | undefined;
  #finished = Promise.withResolvers<void>();

  private constructor(
    config: AgentConfig,
    mesh: Mesh,
    store: Store,
    options: AgentOptions & { logs: LogBuffer; log: (message: string) => void },
  ) {
    const { logs, log } = options;
    this.config = config;
    this.#meshNode = mesh;
    this.#store = store;
    this.#logs = logs;
    this.#log = log;
    this.#kernel = options.kernel !== false;
    this.#setup = new NodeSetup({
      config,
      mesh,
      kernel: this.#kernel,
      log: this.#log,
    });
    this.#reclaimer = new DeletedNodeReclaimer({
      ipam: () => this.#ipam,
      peers: () => mesh.peers(),
      signal: this.#stopping.signal,
      log: this.#log,
    });
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
      policyDrops: () => this.#policy?.droppedPackets(),
    });
    this.mesh = meshPort(mesh, {
      datapath: () => this.#setup.datapath,
      ringState: () => this.#ipam?.ringState(),
      removePeer: (name) => this.removePeer(name),
    });
  }

  /** Builds and starts an agent; returns once the API serves (the node may still be coming up). */
  static async launch(config: AgentConfig, options: AgentOptions = {}): Promise<Agent> {
    await Deno.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    // every line also goes to an in-memory ring of recent lines, for `weft report`
    const logs = new LogBuffer();
    const print = options.log ?? ((message: string) => console.error(`weft: ${message}`));
    const log = (message: string) => {
      logs.push(message);
      print(message);
    };
    const mesh = await createMesh(config, { log: (message) => log(`mesh: ${message}`) });
    const store = options.store ?? openSqliteStore(`${config.stateDir}/weft.db`);
    const agent = new Agent(config, mesh, store, { ...options, logs, log });
    try {
      if (config.ipallocInit) await agent.#openIpam(config.ipallocInit);
      if (options.serve !== false) agent.#serveApi();
      if (options.mesh !== false) await mesh.start();
      if (config.kubernetes) await agent.#startKubernetes();
      const allocations = () => agent.#ipam?.list() ?? [];
      const signal = agent.#stopping.signal;
      if (options.kernel !== false) {
        agent.#policy = await startPolicy({ config, signal, log, allocations });
      }
      agent.#every(BRING_UP_RETRY_MS, () => {
        // #bringUp turns every failure into the waiting phase; this only guards against a bug
        // there becoming an unhandled rejection, which would end the process without stop()
        agent.#bringUp().catch((error) => log(`bring-up: ${error?.stack ?? error}`));
      });
      await agent.#bringUp();
    } catch (error) {
      await agent.stop();
      throw error;
    }
    return agent;
  }

  async #openIpam(init: IpamInit): Promise<void> {
    this.#ipam = await openMeshIpam(this.#meshNode, {
      store: this.#store,
      clusterRange: this.config.ipallocRange,
      init,
      reclaimAfterMs: this.config.ipamReclaimAfterMs,
      log: this.#log,
    });
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
      reclaim: (nodeName, options) => this.#reclaimer.reclaim(nodeName, options),
    });
  }

  #every(ms: number, fn: () => void): void {
    this.#timers.push(setInterval(fn, ms));
  }

  /**
   * Brings the node up once the IPAM can allocate the gateway address (see NodeSetup); called
   * on a timer until the node is up.
   */
  async #bringUp(): Promise<void> {
    const ipam = this.#ipam;
    if (this.#setup.phase.kind === "up") return;
    if (!ipam) {
      this.#setup.wait(AWAITING_NODE_LIST.reason, [AWAITING_NODE_LIST.diagnostic]);
      return;
    }
    const phase = await this.#setup.bringUp(ipam);
    if (phase.kind !== "up" || this.#stopping.signal.aborted) return;
    this.#setup.startSync(ipam.list());
    this.#stopPublishingPaths = publishPaths(this.#meshNode, {
      datapath: () => this.#setup.datapath,
      mode: this.config.datapathMode,
    });
    this.#whenUp?.();
    this.#whenUp = undefined;
    const { hostname, port } = this.config.apiAddr;
    this.#log(
      `agent ${VERSION} ready: peer ${this.#meshNode.name} (${this.#meshNode.nickname}), bridge ` +
        `${this.config.bridge} ${this.#setup.gatewayCidr()}, range ${
          formatCidr(this.config.ipallocRange)
        }, API http://${hostname}:${port}`,
    );
  }

  expose(): Promise<{ exposed: boolean; address: string }> {
    return this.#setup.expose();
  }

  hide(): Promise<{ exposed: boolean; address: string }> {
    return this.#setup.hide();
  }

  #serveApi(): void {
    const app = createApi(this, { log: this.#log });
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
      this.#stopPublishingPaths?.();
      await this.#server?.shutdown();
      await this.#policy?.stop();
      await this.#setup.stop();
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

  httpErrorOf(error: unknown) {
    return httpErrorOf(error);
  }

  #notReady(): UnavailableError {
    const phase = this.#setup.phase;
    return new UnavailableError(`Not ready: ${phase.kind === "waiting" ? phase.reason : ""}`);
  }

  #requireIpam(): ClusterIpam {
    if (!this.#ipam) throw this.#notReady();
    return this.#ipam;
  }

  #view(allocation: Allocation): AllocationView {
    return allocationView(allocation, {
      range: this.config.ipallocRange,
      gateway: this.#setup.phase.gateway,
    });
  }

  ipamStatus(): IpamStatusView {
    const phase = this.#setup.phase;
    const view = ipamStatusView(this.#ipam, {
      range: this.config.ipallocRange,
      mesh: this.#meshNode,
      reason: phase.kind === "waiting" ? phase.reason : undefined,
    });
    // not open: what it waits for is node set-up's to say (the Kubernetes Node list)
    const problems = this.#ipam ? ipamDiagnostics(this.#ipam, view) : this.#setup.diagnostics();
    return { ...view, problems };
  }

  status(): StatusView {
    const phase = this.#setup.phase;
    const ipam = this.ipamStatus();
    return statusView({
      config: this.config,
      phase,
      gatewayCidr: this.#setup.gatewayCidr(),
      ipam,
      mesh: this.#meshNode,
      problems: (reason) =>
        nodeProblems([
          this.#setup,
          fixed(ipam.problems ?? []),
          this.#meshNode,
          this.#setup.datapath,
          this.#reclaimer,
          this.#policy,
        ], { reason }),
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
    });
  }

  /** The cluster as the topology page draws it (see topology.ts). */
  topology(): TopologyView {
    return agentTopology({
      mesh: this.#meshNode,
      ipam: this.#ipam,
      datapath: this.#setup.datapath,
      datapathMode: this.config.datapathMode,
      status: this.status(),
    });
  }

  async allocate(
    containerID: string,
    options: { ifname: string; subnet?: string; network?: string; pod?: PodRef },
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
      // the IPAM never gives out a subnet's first and last address, so a /31 or /32 holds no
      // pod address at all (and a /32 named the one address it would have handed out)
      if (subnet.prefix > 30) {
        throw new BadRequestError(
          `Invalid subnet "${options.subnet}": too small to hold a pod address (a subnet's ` +
            `first and last addresses are never given out; use /30 or larger)`,
        );
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
    if (this.#setup.phase.kind !== "up") throw this.#notReady();
    const allocation = await ipam.allocate(containerID, {
      ifname: options.ifname,
      subnet,
      network: options.network,
    });
    const undo = () => ipam.release(containerID, options.ifname);
    await this.#policy?.admit(allocation, options.pod, undo);
    this.#publishEndpoints();
    return this.#view(allocation);
  }

  #publishEndpoints(): void {
    if (this.#ipam) this.#setup.publishEndpoints(this.#ipam.list());
  }

  lookup(containerID: string, ifname?: string): AllocationView[] {
    return (this.#ipam?.lookup(containerID, ifname) ?? []).map((a) => this.#view(a));
  }

  async release(containerID: string, ifname?: string): Promise<AllocationView[]> {
    if (containerID === BRIDGE_CONTAINER_ID) {
      throw new BadRequestError(`Container ID "${containerID}" is reserved for the bridge`);
    }
    const ipam = this.#requireIpam();
    // out of the policy sets, connections forgotten, before the address can be handed out again
    await this.#policy?.forget(ipam.lookup(containerID, ifname));
    const released = ipam.release(containerID, ifname);
    if (released.length) this.#publishEndpoints();
    return released.map((a) => this.#view(a));
  }

  async retainOnly(
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
    await this.#policy?.forget(released);
    return released.map((a) => this.#view(a));
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
    return removePeer(nameOrNickname, { ipam: this.#requireIpam(), peers: this.#meshNode.peers() });
  }

  report(options: { redact: boolean }): Promise<ReportView> {
    const mesh = this.mesh!;
    return buildReport({
      config: this.config,
      status: () => this.status(),
      peers: () => this.#meshNode.peers(),
      connections: () => mesh.connections(),
      targets: () => mesh.targets(),
      ring: () => mesh.ring?.(),
      allocations: () => this.allocations(),
      logs: this.#logs,
      kernel: this.#kernel,
    }, options);
  }

  /** `weft ipam adopt`: this node takes the space no live peer owns (run on ONE node). */
  adoptOrphans(): Promise<{ orphaned: number }> {
    const result = this.#requireIpam().adoptOrphans();
    this.#log(
      result.orphaned
        ? `adopting ${result.orphaned} orphaned addresses (weft ipam adopt)`
        : "weft ipam adopt: no orphaned space to adopt",
    );
    return Promise.resolve(result);
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

  policyStatus() {
    return this.#policy?.status() ?? disabledPolicyView(this.config);
  }

  metrics() {
    return this.#metrics.render();
  }

  countRequest(route: string, method: string, status: number): void {
    this.#metrics.countRequest(route, method, status);
  }
}
