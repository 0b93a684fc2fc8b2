/**
 * The data path that touches the kernel, as a per-peer switch: for every peer, heartbeats on
 * each path decide whether its frames go by kernel VXLAN (vxlan_device.ts) or by the userspace
 * sleeve (sleeve_supervisor.ts), and this module programs the forwarding entries and the sleeve
 * configuration to match. It owns the peers' state; the two paths own their devices.
 *
 * Split horizon: the VXLAN device and the TAP are both "isolated" bridge ports, so a frame that
 * came in over one overlay path is never forwarded out of the other; every node sends its own
 * frames to every peer directly (or through the mesh's next hop, in userspace), so no frame ever
 * needs a second overlay hop in the kernel, and broadcast loops are impossible.
 *
 * Fast-path health is measured on the real thing: a probe is a VXLAN packet to the peer's VXLAN
 * port whose inner frame is addressed to the peer's bridge MAC/IP and our UDP port, so the answer
 * proves that port is open and the peer's kernel decapsulates and delivers. Sleeve health is a
 * heartbeat on the sleeve socket, encrypted like the data when the pair is encrypted.
 */
import { ip } from "../net/exec.ts";
import { readBridge } from "../net/bridge.ts";
import { likelyUnderlayMtu, routeMtu } from "../net/mtu.ts";
import { decodePeerBlob, encodePeerBlob } from "./blob.ts";
import { choosePath } from "./health.ts";
import {
  type KernelDatapathOptions,
  overheadOf,
  type ResolvedOptions,
  resolveOptions,
  SLEEVE_OVERHEAD,
  VXLAN_OVERHEAD,
} from "./kernel_options.ts";
import {
  newPeerState,
  peerDiagnostics,
  type PeerState,
  peerStatus,
  setSessionKey,
  sleevePeerConfig,
} from "./peer_state.ts";
import { type SleeveSettings, SleeveSupervisor } from "./sleeve_supervisor.ts";
import type { SleeveCounters, SleeveEvent } from "./sleeve_types.ts";
import {
  type Datapath,
  type DatapathPeer,
  DatapathStateError,
  type Diagnostic,
  type Endpoint,
  type PeerPathStatus,
} from "./types.ts";
import { ipv4Of, type UnderlayCandidate, UnderlayChoice } from "./underlay.ts";
import { ForwardingEntries, VxlanDevice } from "./vxlan_device.ts";
import { type GuardElements, UnderlayGuard } from "./underlay_guard.ts";
import { peerId } from "./wire.ts";

export { type KernelDatapathOptions, SLEEVE_OVERHEAD, VXLAN_OVERHEAD };

export type DatapathCounters = SleeveCounters;

export class KernelDatapath implements Datapath {
  #options: ResolvedOptions;
  #id: string;
  #peers = new Map<string, PeerState>();
  #byId = new Map<string, PeerState>();
  #endpoints: Endpoint[] = [];
  #underlay: UnderlayChoice;
  /** Peer addresses from the mesh, for the route lookup that finds our underlay address. */
  #hints: UnderlayCandidate[] = [];
  /** The underlay MTU the pod MTU was derived from when no peer was known yet. */
  #guessedUnderlayMtu?: number;
  #bridge?: { mac: string; ip: string };
  #podMtu = 0;
  #vxlan: VxlanDevice;
  #forwarding: ForwardingEntries;
  #sleeve: SleeveSupervisor;
  #guard?: UnderlayGuard;
  #timer?: ReturnType<typeof setInterval>;
  #running = false;

  constructor(options: KernelDatapathOptions) {
    this.#options = resolveOptions(options);
    const o = this.#options;
    this.#id = peerId(options.name);
    this.#underlay = new UnderlayChoice(o.underlayIp, { now: o.now });
    this.#vxlan = new VxlanDevice({
      name: o.vxlanDevice,
      vni: o.vni,
      port: o.vxlanPort,
      bridge: o.bridge,
    });
    this.#forwarding = new ForwardingEntries(this.#vxlan, {
      tap: this.#usesSleeve ? o.tapDevice : undefined,
      vxlanPort: o.vxlanPort,
      log: o.log,
    });
    this.#sleeve = new SleeveSupervisor({
      workerUrl: o.workerUrl,
      tapDevice: o.tapDevice,
      bridge: o.bridge,
      udpPort: o.udpPort,
      onAnswered: (event) => this.#onAnswered(event),
      log: o.log,
      now: o.now,
      idleMs: o.sleeveIdleMs,
    });
    if (o.firewall) {
      this.#guard = new UnderlayGuard({
        bridge: o.bridge,
        vxlanDevice: o.vxlanDevice,
        tapDevice: o.tapDevice,
        vxlanPort: o.vxlanPort,
        sleevePort: o.udpPort,
        meshPort: o.meshPort,
        apiPort: o.apiPort,
      }, { log: o.log, now: o.now });
    }
  }

  get #usesFastdp(): boolean {
    return this.#options.mode !== "sleeve" && !this.#options.encrypt;
  }

  get #usesSleeve(): boolean {
    return this.#options.mode !== "fastdp";
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const o = this.#options;
    this.#sleeve.checkWorkerModule();
    const bridge = await readBridge(o.bridge);
    if (!bridge) throw new DatapathStateError(`Bridge "${o.bridge}" does not exist`);
    const bridgeIp = bridge.addresses[0]?.split("/")[0];
    if (!bridgeIp) throw new DatapathStateError(`Bridge "${o.bridge}" has no IPv4 address`);
    this.#bridge = { mac: bridge.mac, ip: bridgeIp };
    const underlay = await this.#underlay.resolve(this.#candidates());
    // Without a peer yet there is no route to ask; the pod MTU then comes from the links.
    const underlayMtu = underlay?.mtu ?? await likelyUnderlayMtu([o.bridge]);
    if (!underlay) this.#guessedUnderlayMtu = underlayMtu;
    const overhead = this.#usesFastdp ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
    this.#podMtu = o.mtu ?? underlayMtu - overhead;
    try {
      if (this.#usesFastdp && underlay) {
        await this.#vxlan.create({ local: underlay.ip, mtu: this.#podMtu });
      }
      await this.#sleeve.open({
        tap: this.#usesSleeve,
        podMtu: this.#podMtu,
        segmentBytes: underlayMtu - 28,
      });
      await ip(["link", "set", o.bridge, "mtu", String(this.#podMtu)]);
    } catch (error) {
      // Leave nothing half-made behind: a retry must start from a clean node.
      await this.#sleeve.close();
      if (this.#usesFastdp) await this.#vxlan.remove();
      this.#underlay.reset();
      throw error;
    }
    this.#publish();
    this.#running = true;
    this.#timer = setInterval(() => this.#tick(), o.heartbeatMs);
    // Peers added before start() are programmed now that the devices exist.
    for (const state of this.#peers.values()) {
      state.fastdpGraceUntil = o.now() + o.timings.settleMs;
      await this.#lookUpRoute(state);
      this.#heartbeat(state);
    }
    await this.#apply();
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    await this.#underlayQueue;
    await this.#sleeve.close();
    this.#peers.clear();
    this.#byId.clear();
    await this.#forwarding.sync(() => []);
    if (this.#usesFastdp) await this.#vxlan.remove();
    this.#underlay.reset();
    this.#guard?.reset();
    this.#guessedUnderlayMtu = undefined;
  }

  /** Where our underlay address may be learnt from: the peers' addresses, then the mesh's. */
  #candidates(): UnderlayCandidate[] {
    const peers = [...this.#peers.values()].map((s) => ({
      address: s.blob.ip,
      from: `peer ${s.name}`,
    }));
    return [...peers, ...this.#hints];
  }

  #underlayQueue: Promise<void> = Promise.resolve();

  /**
   * Looks for the underlay address again if it is not known yet; once found (after start),
   * the VXLAN device is made with it and the sleeve learns the underlay's MTU.
   */
  #settleUnderlay(): Promise<void> {
    const run = async () => {
      if (!this.#running || this.#underlay.endpoint) return;
      const underlay = await this.#underlay.resolve(this.#candidates());
      if (!underlay || !this.#running) return;
      const o = this.#options;
      o.log(`underlay address ${underlay.ip} (${underlay.device}, mtu ${underlay.mtu})`);
      if (this.#usesFastdp) {
        await this.#vxlan.create({ local: underlay.ip, mtu: this.#podMtu });
      }
      this.#sleeve.setSegmentBytes(underlay.mtu - 28);
      for (const state of this.#peers.values()) await this.#lookUpRoute(state);
      this.#publish();
      await this.#apply();
    };
    this.#underlayQueue = this.#underlayQueue.then(run, run);
    return this.#underlayQueue;
  }

  async setUnderlayHints(addresses: string[]): Promise<void> {
    this.#hints = addresses.flatMap((address) => {
      const ip = ipv4Of(address);
      return ip ? [{ address: ip, from: `mesh address ${address}` }] : [];
    });
    await this.#settleUnderlay();
  }

  async #lookUpRoute(state: PeerState): Promise<void> {
    try {
      state.routeMtu = await routeMtu(state.blob.ip);
      state.routeError = undefined;
    } catch (error) {
      state.routeMtu = undefined;
      state.routeError = (error as Error).message;
    }
  }

  localData(): string {
    if (!this.#bridge) throw new DatapathStateError("localData() needs start() first");
    const underlay = this.#underlay.endpoint;
    if (!underlay) return "";
    return encodePeerBlob({
      v: 1,
      ip: underlay.ip,
      vxlanPort: this.#options.vxlanPort,
      udpPort: this.#options.udpPort,
      vni: this.#options.vni,
      bridgeMac: this.#bridge.mac,
      bridgeIp: this.#bridge.ip,
      underlayMtu: underlay.mtu,
      endpoints: this.#endpoints,
      ...(this.#options.encrypt ? { encrypt: true as const } : {}),
    });
  }

  setLocalEndpoints(entries: Endpoint[]): void {
    this.#endpoints = entries.map((e) => ({ mac: e.mac.toLowerCase(), ip: e.ip }));
  }

  mtu(): number {
    if (!this.#podMtu) throw new DatapathStateError("mtu() needs start() first");
    return this.#podMtu;
  }

  /** Frame and datagram counts of the sleeve, and why frames were dropped. */
  counters(): DatapathCounters {
    return this.#sleeve.counters();
  }

  /** True while the userspace path's worker threads run (only while it has work). */
  get sleeveThreadsRunning(): boolean {
    return this.#sleeve.threadsRunning;
  }

  async upsertPeer(peer: DatapathPeer): Promise<void> {
    const blob = decodePeerBlob(peer.data);
    let state = this.#peers.get(peer.name);
    if (!state) {
      const o = this.#options;
      state = newPeerState(peer.name, blob, { timings: o.timings, now: o.now() });
      this.#peers.set(peer.name, state);
      this.#byId.set(state.id, state);
    }
    const moved = state.blob.ip !== blob.ip;
    state.blob = blob;
    if (this.#running && (moved || (state.routeMtu === undefined && !state.routeError))) {
      await this.#lookUpRoute(state);
    }
    state.nextHop = peer.nextHop === peer.name ? undefined : peer.nextHop;
    setSessionKey(state, peer.sessionKey, this.#options.name);
    this.#evaluate();
    this.#publish();
    if (!this.#running) return;
    await this.#settleUnderlay();
    // The peer's address is in the guard's set before its first answer can arrive.
    await this.#apply();
    this.#heartbeat(state);
  }

  async removePeer(name: string): Promise<void> {
    const state = this.#peers.get(name);
    if (!state) return;
    this.#peers.delete(name);
    this.#byId.delete(state.id);
    this.#publish();
    if (this.#running) await this.#apply();
  }

  status(): PeerPathStatus[] {
    const underlayMtu = this.#underlay.endpoint?.mtu;
    return [...this.#peers.values()].map((state) =>
      peerStatus(state, { underlayMtu, overhead: overheadOf })
    );
  }

  diagnostics(): Diagnostic[] {
    const o = this.#options;
    const now = o.now();
    const out = [...this.#underlay.diagnostics(), ...this.#guard?.diagnostics() ?? []];
    for (const state of this.#peers.values()) {
      out.push(...peerDiagnostics(state, {
        now,
        deadAfterMs: o.timings.deadAfterMs,
        vxlanPort: o.vxlanPort,
        udpPort: o.udpPort,
      }));
    }
    if (this.#guessedUnderlayMtu !== undefined) {
      const overhead = this.#usesFastdp ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
      out.push(...this.#underlay.mtuDiagnostics({ podMtu: this.#podMtu, overhead }));
    }
    return out;
  }

  /**
   * A pair is encrypted when either end requires it. A session key alone does not: with a
   * password and --no-encrypt the mesh still derives one (it authenticates the fast path's
   * probes), and traffic may take kernel VXLAN.
   */
  #mustEncrypt(state: PeerState): boolean {
    return this.#options.encrypt || state.blob.encrypt === true;
  }

  #relayVia(state: PeerState): string | undefined {
    return state.nextHop && this.#peers.has(state.nextHop) ? state.nextHop : undefined;
  }

  #onAnswered(event: Extract<SleeveEvent, { type: "answered" }>): void {
    const state = this.#byId.get(event.peer);
    if (!state) return;
    const now = this.#options.now();
    state[event.path].answered(now);
    // React at once when a path comes up (or back), rather than at the next tick.
    if (state.choice.path === "down" && this.#evaluate()) {
      this.#publish();
      this.#apply().catch((e) => this.#options.log(`fdb sync: ${e}`));
    }
  }

  #evaluate(): boolean {
    const now = this.#options.now();
    let changed = false;
    for (const state of this.#peers.values()) {
      const choice = choosePath(now, {
        mode: this.#options.mode,
        mustEncrypt: this.#mustEncrypt(state),
        hasKey: state.keys !== undefined,
        current: state.choice.path,
        fastdp: state.fastdp,
        sleeve: state.sleeve,
        relay: state.relay,
        relayVia: this.#relayVia(state),
        fastdpGraceUntil: state.fastdpGraceUntil,
      });
      if (choice.path !== state.choice.path) {
        this.#options.log(
          `peer ${state.name}: ${state.choice.path} -> ${choice.path} (${choice.reason})`,
        );
        changed = true;
      }
      state.choice = choice;
    }
    return changed;
  }

  /** Where datagrams for `state` go: the peer itself, or the mesh's next hop when relaying. */
  #hopId(state: PeerState, now: number): string {
    const via = this.#relayVia(state);
    if (via && (state.choice.path === "relay" || !state.sleeve.alive(now))) return peerId(via);
    return state.id;
  }

  #sleeveSettings(): SleeveSettings {
    const now = this.#options.now();
    const underlayMtu = this.#underlay.endpoint?.mtu ?? this.#guessedUnderlayMtu;
    return {
      self: this.#id,
      vni: this.#options.vni,
      udpPort: this.#options.udpPort,
      bridgeMac: this.#bridge!.mac,
      bridgeIp: this.#bridge!.ip,
      peers: [...this.#peers.values()].map((state) =>
        sleevePeerConfig(state, {
          hop: this.#hopId(state, now),
          mustEncrypt: this.#mustEncrypt(state),
          underlayMtu,
        })
      ),
    };
  }

  /** Hands the sleeve its configuration (it forwards it to the threads only when it changed). */
  #publish(): void {
    if (!this.#sleeve.engine || !this.#bridge) return;
    this.#sleeve.configure(this.#sleeveSettings());
  }

  /**
   * Programs the node for the current choices, in an order that never drops a legitimate
   * peer's packets: guard additions first, the sleeve's threads before an entry points at the
   * TAP, the forwarding entries, then (the threads after their idle time) the guard's removals.
   */
  async #apply(): Promise<void> {
    const peers = [...this.#peers.values()];
    const guarded = this.#guardElements();
    await this.#guard?.sync(guarded, { remove: false });
    const wanted = this.#usesSleeve &&
      peers.some((s) => s.choice.path === "sleeve" || s.choice.path === "relay");
    if (wanted) await this.#sleeve.demand(true);
    await this.#forwarding.sync(() =>
      [...this.#peers.values()].map((s) => ({ name: s.name, path: s.choice.path, blob: s.blob }))
    );
    if (!wanted) await this.#sleeve.demand(false);
    await this.#guard?.sync(guarded, { remove: true });
  }

  /** The addresses the guard lets in: every known peer's, and every gateway's. */
  #guardElements(): GuardElements {
    const peers = [...this.#peers.values()];
    const peerBridges = peers.map((s) => s.blob.bridgeIp);
    return {
      peers: peers.map((s) => s.blob.ip),
      peerBridges,
      bridges: [...peerBridges, ...(this.#bridge ? [this.#bridge.ip] : [])],
    };
  }

  #tick(): void {
    if (!this.#running) return;
    for (const state of this.#peers.values()) this.#heartbeat(state);
    this.#evaluate();
    this.#publish();
    // Every tick, not only on a change: the threads' idle time runs out between changes.
    this.#apply().catch((e) => this.#options.log(`fdb sync: ${e}`));
  }

  #heartbeat(state: PeerState): void {
    this.#sleeve.engine?.heartbeat(state.id, ++state.seq, {
      sleeve: this.#usesSleeve,
      relayVia: this.#usesSleeve && this.#relayVia(state)
        ? peerId(this.#relayVia(state)!)
        : undefined,
      fastdp: this.#usesFastdp && !this.#mustEncrypt(state),
    });
  }
}
