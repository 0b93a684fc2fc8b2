/**
 * The data path that touches the kernel: VXLAN fast path + userspace sleeve over a TAP, with
 * per-peer heartbeats deciding which one carries each peer's frames.
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
import { routeMtu, underlayEndpoint } from "../net/mtu.ts";
import { TapDevice, VNET_HEADER_BYTES } from "../net/tap.ts";
import { UdpSocket } from "../net/udp.ts";
import { applyFdb, ensureVxlan, setBridgePort } from "../net/vxlan.ts";
import { decodePeerBlob, encodePeerBlob, type PeerBlob } from "./blob.ts";
import { deriveDirectionKeys, type DirectionKeys, TAG_BYTES } from "./crypto.ts";
import { diffFdb, type FdbEntry, peerMacs, planFdb } from "./fdb_plan.ts";
import {
  choosePath,
  DEFAULT_TIMINGS,
  type HealthTimings,
  type PathChoice,
  PathHealth,
} from "./health.ts";
import {
  addCounters,
  emptyCounters,
  type SleeveConfig,
  type SleeveCounters,
  SleeveEngine,
  type SleeveEvent,
} from "./sleeve.ts";
import {
  CONTROL_GENERATION,
  CONTROL_STOP,
  SLEEVE_WORKER_NAME,
  type WorkerInit,
} from "./sleeve_thread.ts";
import type { Datapath, DatapathMode, DatapathPeer, Endpoint, PeerPathStatus } from "./types.ts";
import { HEADER_BYTES, MAX_BODY, peerId, RECORD_HEADER_BYTES } from "./wire.ts";

/** Outer IPv4 + UDP + VXLAN + inner Ethernet. */
export const VXLAN_OVERHEAD = 20 + 8 + 8 + 14;
/** Outer IPv4 + UDP + sleeve header + AEAD tag + record length + virtio-net header + Ethernet. */
export const SLEEVE_OVERHEAD = 20 + 8 + HEADER_BYTES + TAG_BYTES + RECORD_HEADER_BYTES +
  VNET_HEADER_BYTES + 14;

export interface KernelDatapathOptions {
  /** Our mesh name: identifies us on the wire and in key derivation. */
  name: string;
  bridge: string;
  underlayIp?: string;
  vxlanPort?: number;
  udpPort?: number;
  vni?: number;
  /** Pod MTU override (WEAVE_MTU); otherwise derived from the underlay. */
  mtu?: number;
  /** Require encryption with every peer (no plaintext fallback, no fast path). */
  encrypt?: boolean;
  mode?: DatapathMode;
  vxlanDevice?: string;
  tapDevice?: string;
  heartbeatMs?: number;
  timings?: HealthTimings;
  /**
   * Module the sleeve worker threads run. Default: sleeve_worker.ts beside this file (running
   * from source). A bundle has no such file: pass `Deno.mainModule` and make the entry call
   * `installSleeveWorker()` instead of its normal work when `self.name === SLEEVE_WORKER_NAME`.
   */
  workerUrl?: string;
  now?: () => number;
  log?: (message: string) => void;
}

type ResolvedOptions = Required<Omit<KernelDatapathOptions, "underlayIp" | "mtu">> & {
  underlayIp?: string;
  mtu?: number;
};

export class DatapathStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatapathStateError";
  }
}

interface PeerState {
  name: string;
  id: string;
  blob: PeerBlob;
  nextHop?: string;
  sessionKey?: Uint8Array;
  keys?: DirectionKeys;
  counter?: SharedArrayBuffer;
  fastdp: PathHealth;
  sleeve: PathHealth;
  relay: PathHealth;
  choice: PathChoice;
  seq: number;
  /** MTU of our route to the peer's underlay address (a route `mtu` lock can lower it). */
  routeMtu?: number;
}

export type DatapathCounters = SleeveCounters;

/** sleeve_worker.ts when the source tree is here; "" in a bundle (start() then says why). */
function defaultWorkerUrl(): string {
  const beside = new URL("./sleeve_worker.ts", import.meta.url);
  try {
    Deno.statSync(beside);
    return beside.href;
  } catch {
    return "";
  }
}

function sameKey(a?: Uint8Array, b?: Uint8Array): boolean {
  return a === b || (a !== undefined && b !== undefined && a.length === b.length &&
    a.every((value, i) => value === b[i]));
}

export class KernelDatapath implements Datapath {
  #options: ResolvedOptions;
  #id: string;
  #peers = new Map<string, PeerState>();
  #byId = new Map<string, PeerState>();
  #endpoints: Endpoint[] = [];
  #underlay?: { ip: string; mtu: number };
  #bridge?: { mac: string; ip: string };
  #podMtu = 0;
  #udp?: UdpSocket;
  #tap?: TapDevice;
  #engine?: SleeveEngine;
  #workers: Worker[] = [];
  #stopped: Promise<void>[] = [];
  #control = new Int32Array(new SharedArrayBuffer(8));
  #generation = 0;
  #published = "";
  #timer?: ReturnType<typeof setInterval>;
  #running = false;
  #applied: FdbEntry[] = [];
  #fdbQueue: Promise<void> = Promise.resolve();
  #counters = emptyCounters();
  #restarts = new Map<WorkerInit["role"], number>();
  #gsoBytes = 0;
  #restartTimers = new Set<ReturnType<typeof setTimeout>>();

  constructor(options: KernelDatapathOptions) {
    const vxlanPort = options.vxlanPort ?? 6784;
    this.#options = {
      vxlanPort,
      udpPort: options.udpPort ?? 6783,
      vni: options.vni ?? 1,
      encrypt: options.encrypt ?? false,
      mode: options.mode ?? "auto",
      vxlanDevice: options.vxlanDevice ?? `vxlan-${vxlanPort}`,
      tapDevice: options.tapDevice ?? "weft-sleeve",
      heartbeatMs: options.heartbeatMs ?? 500,
      workerUrl: options.workerUrl ?? defaultWorkerUrl(),
      timings: options.timings ?? DEFAULT_TIMINGS,
      now: options.now ?? (() => performance.now()),
      log: options.log ?? (() => {}),
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as ResolvedOptions;
    this.#id = peerId(options.name);
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
    if (!o.workerUrl) {
      // Guessing the main module would run the whole program again in each worker thread.
      throw new DatapathStateError(
        `No sleeve worker module: ${new URL("./sleeve_worker.ts", import.meta.url).href} ` +
          `does not exist (a bundled build?); pass workerUrl: Deno.mainModule and call ` +
          `installSleeveWorker() from the entry when self.name === "${SLEEVE_WORKER_NAME}"`,
      );
    }
    const bridge = await readBridge(o.bridge);
    if (!bridge) throw new DatapathStateError(`Bridge "${o.bridge}" does not exist`);
    const bridgeIp = bridge.addresses[0]?.split("/")[0];
    if (!bridgeIp) throw new DatapathStateError(`Bridge "${o.bridge}" has no IPv4 address`);
    this.#bridge = { mac: bridge.mac, ip: bridgeIp };
    this.#underlay = await underlayEndpoint(o.underlayIp);
    const overhead = this.#usesFastdp ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
    this.#podMtu = o.mtu ?? this.#underlay.mtu - overhead;
    try {
      await this.#createDevices();
    } catch (error) {
      // Leave nothing half-made behind: a retry must start from a clean node.
      this.#tap?.close();
      this.#tap = undefined;
      this.#udp?.close();
      this.#udp = undefined;
      if (this.#usesFastdp) await ip(["link", "del", o.vxlanDevice]).catch(() => {});
      throw error;
    }
    this.#control = new Int32Array(new SharedArrayBuffer(8));
    this.#engine = new SleeveEngine(this.#udp!);
    const config = this.#sleeveConfig();
    this.#engine.configure(config);
    this.#published = this.#fingerprint(config);
    this.#running = true;
    this.#startWorker("socket", config);
    if (this.#tap) this.#startWorker("tap", config);
    this.#timer = setInterval(() => this.#tick(), o.heartbeatMs);
    // Peers added before start() are programmed now that the devices exist.
    for (const state of this.#peers.values()) {
      state.routeMtu = await routeMtu(state.blob.ip).catch(() => undefined);
      this.#heartbeat(state);
    }
    await this.#syncFdb();
  }

  async #createDevices(): Promise<void> {
    const o = this.#options;
    if (this.#usesFastdp) {
      await ensureVxlan(o.vxlanDevice, {
        vni: o.vni,
        port: o.vxlanPort,
        local: this.#underlay!.ip,
        mtu: this.#podMtu,
        bridge: o.bridge,
        // Our entry bookkeeping starts empty, so the device must too: no stale entries survive.
        fresh: true,
      });
    }
    if (this.#usesSleeve) {
      this.#tap = TapDevice.open(o.tapDevice);
      await ip(["link", "set", o.tapDevice, "mtu", String(this.#podMtu), "master", o.bridge, "up"]);
      await setBridgePort(o.tapDevice, { learning: false, isolated: true });
      // A superframe must fit one sleeve datagram with its record and vnet headers; anything
      // bigger (BIG TCP) is segmented by the kernel before it reaches us instead of dropped.
      const limit = String(MAX_BODY - RECORD_HEADER_BYTES - VNET_HEADER_BYTES - 1);
      await ip(["link", "set", o.tapDevice, "gso_max_size", limit]).catch(() => {});
      await ip(["link", "set", o.tapDevice, "gso_ipv4_max_size", limit]).catch(() => {});
    }
    await ip(["link", "set", o.bridge, "mtu", String(this.#podMtu)]);
    this.#udp = UdpSocket.bind(o.udpPort);
    const offloads = this.#udp.enableOffloads(this.#underlay!.mtu - 28);
    this.#gsoBytes = offloads.gso ? this.#underlay!.mtu - 28 : 0;
    if (!offloads.gso || !offloads.gro) {
      o.log(`UDP offloads refused (gso ${offloads.gso}, gro ${offloads.gro}): sleeve is slower`);
    }
  }

  #startWorker(role: WorkerInit["role"], config: SleeveConfig): void {
    const worker = new Worker(this.#options.workerUrl, {
      type: "module",
      name: SLEEVE_WORKER_NAME,
    });
    let stopped!: () => void;
    this.#stopped.push(new Promise((resolve) => stopped = resolve));
    worker.onmessage = (event: MessageEvent) => {
      const message = event.data;
      if (message.type === "answered") this.#onAnswered(message as SleeveEvent);
      else if (message.type === "counters") {
        addCounters(this.#counters, message.counters);
        this.#restarts.set(role, 0); // it runs: a later crash starts the back-off afresh
      } else if (message.type === "stopped") stopped();
      else if (message.type === "error") this.#options.log(`sleeve ${role}: ${message.error}`);
    };
    worker.onerror = (event) => {
      // Never leave a path that answers heartbeats but moves no frames: start a new thread,
      // backing off so a worker that cannot even load does not spin.
      event.preventDefault();
      stopped();
      this.#workers = this.#workers.filter((w) => w !== worker);
      worker.terminate();
      const attempt = (this.#restarts.get(role) ?? 0) + 1;
      this.#restarts.set(role, attempt);
      const delay = Math.min(30_000, 250 * 2 ** attempt);
      this.#options.log(
        `sleeve ${role} worker (${this.#options.workerUrl}) crashed: ${event.message}; ` +
          `restarting it in ${delay} ms`,
      );
      const timer = setTimeout(() => {
        this.#restartTimers.delete(timer);
        if (this.#running) this.#startWorker(role, this.#sleeveConfigForWorkers());
      }, delay);
      this.#restartTimers.add(timer);
    };
    const init: WorkerInit = {
      type: "init",
      role,
      tapName: this.#options.tapDevice,
      tapFd: this.#tap?.fd ?? -1,
      udpFd: this.#udp!.fd,
      control: this.#control.buffer as SharedArrayBuffer,
      config,
    };
    worker.postMessage(init);
    this.#workers.push(worker);
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    Atomics.store(this.#control, CONTROL_STOP, 1);
    // Workers notice within one poll timeout; never close fds under a thread still using them.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#stopped),
      new Promise((resolve) => timer = setTimeout(resolve, 3000)),
    ]);
    clearTimeout(timer);
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
    this.#stopped = [];
    this.#tap?.close();
    this.#tap = undefined;
    this.#udp?.close();
    this.#udp = undefined;
    this.#peers.clear();
    this.#byId.clear();
    await this.#syncFdb();
    if (this.#usesFastdp) {
      await ip(["link", "del", this.#options.vxlanDevice]).catch(() => {});
    }
  }

  localData(): string {
    if (!this.#underlay || !this.#bridge) {
      throw new DatapathStateError("localData() needs start() first: the underlay is not known");
    }
    return encodePeerBlob({
      v: 1,
      ip: this.#underlay.ip,
      vxlanPort: this.#options.vxlanPort,
      udpPort: this.#options.udpPort,
      vni: this.#options.vni,
      bridgeMac: this.#bridge.mac,
      bridgeIp: this.#bridge.ip,
      underlayMtu: this.#underlay.mtu,
      endpoints: this.#endpoints,
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
    if (this.#engine) addCounters(this.#counters, this.#engine.takeCounters());
    return structuredClone(this.#counters);
  }

  async upsertPeer(peer: DatapathPeer): Promise<void> {
    const blob = decodePeerBlob(peer.data);
    let state = this.#peers.get(peer.name);
    if (!state) {
      const timings = this.#options.timings;
      state = {
        name: peer.name,
        id: peerId(peer.name),
        blob,
        fastdp: new PathHealth(timings),
        sleeve: new PathHealth(timings),
        relay: new PathHealth(timings),
        choice: { path: "down", encrypted: false, healthy: false, reason: "no heartbeat yet" },
        seq: 0,
      };
      this.#peers.set(peer.name, state);
      this.#byId.set(state.id, state);
    }
    if (state.blob.ip !== blob.ip || state.routeMtu === undefined) {
      state.routeMtu = this.#running ? await routeMtu(blob.ip).catch(() => undefined) : undefined;
    }
    state.blob = blob;
    state.nextHop = peer.nextHop === peer.name ? undefined : peer.nextHop;
    if (!sameKey(state.sessionKey, peer.sessionKey)) {
      state.sessionKey = peer.sessionKey;
      state.keys = peer.sessionKey
        ? deriveDirectionKeys(peer.sessionKey, { local: this.#options.name, remote: peer.name })
        : undefined;
      // A new key starts a new nonce sequence (and the receiver a new replay window).
      state.counter = peer.sessionKey ? new SharedArrayBuffer(8) : undefined;
    }
    this.#evaluate();
    this.#publish();
    if (!this.#running) return;
    this.#heartbeat(state);
    await this.#syncFdb();
  }

  async removePeer(name: string): Promise<void> {
    const state = this.#peers.get(name);
    if (!state) return;
    this.#peers.delete(name);
    this.#byId.delete(state.id);
    this.#publish();
    if (this.#running) await this.#syncFdb();
  }

  status(): PeerPathStatus[] {
    const underlay = this.#underlay?.mtu ?? 0;
    return [...this.#peers.values()].map((state) => {
      const { path, encrypted, reason, healthy } = state.choice;
      const pathUnderlay = Math.min(underlay, state.blob.underlayMtu, state.routeMtu ?? Infinity);
      const overhead = path === "fastdp" ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
      return { peer: state.name, path, encrypted, reason, mtu: pathUnderlay - overhead, healthy };
    });
  }

  #mustEncrypt(state: PeerState): boolean {
    return this.#options.encrypt || state.sessionKey !== undefined;
  }

  #relayVia(state: PeerState): string | undefined {
    return state.nextHop && this.#peers.has(state.nextHop) ? state.nextHop : undefined;
  }

  #onAnswered(event: SleeveEvent): void {
    const state = this.#byId.get(event.peer);
    if (!state) return;
    const now = this.#options.now();
    state[event.path].answered(now);
    // React at once when a path comes up (or back), rather than at the next tick.
    if (state.choice.path === "down" && this.#evaluate()) {
      this.#publish();
      this.#syncFdb().catch((e) => this.#options.log(`fdb sync: ${e}`));
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

  #sleeveConfig(): SleeveConfig {
    const now = this.#options.now();
    return {
      generation: this.#generation,
      self: this.#id,
      vni: this.#options.vni,
      udpPort: this.#options.udpPort,
      bridgeMac: this.#bridge!.mac,
      bridgeIp: this.#bridge!.ip,
      gsoBytes: this.#gsoBytes,
      peers: [...this.#peers.values()].map((state) => ({
        id: state.id,
        name: state.name,
        ip: state.blob.ip,
        udpPort: state.blob.udpPort,
        vxlanPort: state.blob.vxlanPort,
        bridgeIp: state.blob.bridgeIp,
        bridgeMac: state.blob.bridgeMac,
        macs: peerMacs(state.blob),
        path: state.choice.path,
        hop: this.#hopId(state, now),
        mustEncrypt: this.#mustEncrypt(state),
        segmentBytes: Math.min(
          this.#underlay!.mtu,
          state.blob.underlayMtu,
          state.routeMtu ?? Infinity,
        ) - 28,
        keys: state.keys,
        counter: state.counter,
      })),
    };
  }

  /** What identifies a configuration, minus the generation; keys are named by their counter. */
  #fingerprint(config: SleeveConfig): string {
    return JSON.stringify(config.peers.map((p) => ({
      ...p,
      keys: undefined,
      counter: p.counter ? this.#keyEpoch(p.counter) : undefined,
    })));
  }

  #epochs = new WeakMap<SharedArrayBuffer, number>();
  #nextEpoch = 1;
  #keyEpoch(counter: SharedArrayBuffer): number {
    let epoch = this.#epochs.get(counter);
    if (epoch === undefined) {
      epoch = this.#nextEpoch++;
      this.#epochs.set(counter, epoch);
    }
    return epoch;
  }

  /** The configuration last published, for a worker that starts late. */
  #sleeveConfigForWorkers(): SleeveConfig {
    return { ...this.#sleeveConfig(), generation: this.#generation };
  }

  /** Sends the sleeve configuration to the workers when it changed. */
  #publish(): void {
    if (!this.#engine || !this.#bridge) return;
    const candidate = this.#sleeveConfig();
    const fingerprint = this.#fingerprint(candidate);
    if (fingerprint === this.#published) return;
    this.#published = fingerprint;
    candidate.generation = ++this.#generation;
    this.#engine.configure(candidate);
    for (const worker of this.#workers) worker.postMessage({ type: "config", config: candidate });
    Atomics.store(this.#control, CONTROL_GENERATION, candidate.generation);
  }

  #syncFdb(): Promise<void> {
    const run = async () => {
      const desired = planFdb(
        [...this.#peers.values()].map((s) => ({ name: s.name, path: s.choice.path, blob: s.blob })),
        {
          vxlan: this.#options.vxlanDevice,
          tap: this.#usesSleeve ? this.#options.tapDevice : undefined,
          vxlanPort: this.#options.vxlanPort,
        },
      );
      const changes = diffFdb(this.#applied, desired);
      if (!this.#usesFastdp) {
        changes.add = changes.add.filter((e) => e.device !== this.#options.vxlanDevice);
      }
      const refused = await applyFdb(changes);
      for (const line of refused) this.#options.log(`fdb: ${line}`);
      this.#applied = desired;
    };
    this.#fdbQueue = this.#fdbQueue.then(run, run);
    return this.#fdbQueue;
  }

  #tick(): void {
    if (!this.#running) return;
    for (const state of this.#peers.values()) this.#heartbeat(state);
    const changed = this.#evaluate();
    this.#publish();
    if (changed) this.#syncFdb().catch((e) => this.#options.log(`fdb sync: ${e}`));
  }

  #heartbeat(state: PeerState): void {
    this.#engine?.heartbeat(state.id, ++state.seq, {
      sleeve: this.#usesSleeve,
      relayVia: this.#usesSleeve && this.#relayVia(state)
        ? peerId(this.#relayVia(state)!)
        : undefined,
      fastdp: this.#usesFastdp && !this.#mustEncrypt(state),
    });
  }
}
