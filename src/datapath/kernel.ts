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
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { ip } from "../net/exec.ts";
import { readBridge } from "../net/bridge.ts";
import { underlayEndpoint } from "../net/mtu.ts";
import { TapDevice, VNET_HEADER_BYTES } from "../net/tap.ts";
import { applyFdb, ensureVxlan, setBridgePort } from "../net/vxlan.ts";
import { decodePeerBlob, encodePeerBlob, type PeerBlob } from "./blob.ts";
import { deriveDirectionKeys, SleeveCipher, TAG_BYTES } from "./crypto.ts";
import { diffFdb, type FdbEntry, planFdb } from "./fdb_plan.ts";
import {
  choosePath,
  DEFAULT_TIMINGS,
  type HealthTimings,
  type PathChoice,
  PathHealth,
} from "./health.ts";
import type {
  Datapath,
  DatapathMode,
  DatapathPeer,
  Endpoint,
  PathKind,
  PeerPathStatus,
} from "./types.ts";
import {
  decodeDatagram,
  type DecodedDatagram,
  decodeSequence,
  encodeDatagram,
  encodeSequence,
  encodeVxlanProbe,
  HEADER_BYTES,
  Kind,
  MAX_BODY,
  packRecords,
  peerId,
  RECORD_HEADER_BYTES,
  unpackRecords,
} from "./wire.ts";

/** Outer IPv4 + UDP + VXLAN + inner Ethernet. */
export const VXLAN_OVERHEAD = 20 + 8 + 8 + 14;
/** Outer IPv4 + UDP + sleeve header + AEAD tag + record length + virtio-net header + Ethernet. */
export const SLEEVE_OVERHEAD = 20 + 8 + HEADER_BYTES + TAG_BYTES + RECORD_HEADER_BYTES +
  VNET_HEADER_BYTES + 14;
const RELAY_TTL = 8;

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
  cipher?: SleeveCipher;
  fastdp: PathHealth;
  sleeve: PathHealth;
  relay: PathHealth;
  choice: PathChoice;
  seq: number;
}

interface Batch {
  frames: Uint8Array[];
  size: number;
}

export interface DatapathCounters {
  framesFromTap: number;
  framesToTap: number;
  datagramsSent: number;
  datagramsReceived: number;
  relayed: number;
  dropped: Record<string, number>;
}

function macKey(bytes: Uint8Array, offset: number): number {
  let key = 0;
  for (let i = 0; i < 6; i++) key = key * 256 + bytes[offset + i];
  return key;
}

function macTextKey(mac: string): number {
  return macKey(new Uint8Array(mac.split(":").map((part) => parseInt(part, 16))), 0);
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
  #macOwner = new Map<number, PeerState>();
  #endpoints: Endpoint[] = [];
  #underlay?: { ip: string; mtu: number };
  #bridge?: { mac: string; ip: string };
  #podMtu = 0;
  #socket?: Socket;
  #tap?: TapDevice;
  #timer?: ReturnType<typeof setInterval>;
  #running = false;
  #reader?: Promise<void>;
  #applied: FdbEntry[] = [];
  #fdbQueue: Promise<void> = Promise.resolve();
  #counters: DatapathCounters = {
    framesFromTap: 0,
    framesToTap: 0,
    datagramsSent: 0,
    datagramsReceived: 0,
    relayed: 0,
    dropped: {},
  };

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
    const bridge = await readBridge(o.bridge);
    if (!bridge) throw new DatapathStateError(`Bridge "${o.bridge}" does not exist`);
    const bridgeIp = bridge.addresses[0]?.split("/")[0];
    if (!bridgeIp) throw new DatapathStateError(`Bridge "${o.bridge}" has no IPv4 address`);
    this.#bridge = { mac: bridge.mac, ip: bridgeIp };
    this.#underlay = await underlayEndpoint(o.underlayIp);
    const overhead = this.#usesFastdp ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
    this.#podMtu = o.mtu ?? this.#underlay.mtu - overhead;
    if (this.#usesFastdp) {
      await ensureVxlan(o.vxlanDevice, {
        vni: o.vni,
        port: o.vxlanPort,
        local: this.#underlay.ip,
        mtu: this.#podMtu,
        bridge: o.bridge,
      });
    }
    if (this.#usesSleeve) {
      this.#tap = TapDevice.open(o.tapDevice);
      await ip(["link", "set", o.tapDevice, "mtu", String(this.#podMtu), "master", o.bridge, "up"]);
      await setBridgePort(o.tapDevice, { learning: false, isolated: true });
    }
    await ip(["link", "set", o.bridge, "mtu", String(this.#podMtu)]);
    this.#socket = await this.#openSocket();
    this.#running = true;
    if (this.#tap) this.#reader = this.#readLoop(this.#tap);
    this.#timer = setInterval(() => this.#tick(), o.heartbeatMs);
  }

  async #openSocket(): Promise<Socket> {
    const socket = createSocket({ type: "udp4" });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(this.#options.udpPort, "0.0.0.0", () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // Large buffers absorb the bursts a 64 KB superframe per datagram produces.
    socket.setRecvBufferSize(8 << 20);
    socket.setSendBufferSize(8 << 20);
    socket.on("message", (message: Uint8Array, remote: RemoteInfo) => {
      this.#counters.datagramsReceived++;
      try {
        this.#onDatagram(message, remote);
      } catch (error) {
        this.#drop(`bad datagram: ${(error as Error).name}`);
      }
    });
    socket.on("error", (error) => this.#options.log(`sleeve socket error: ${error.message}`));
    return socket;
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    await this.#reader;
    await this.#tap?.close();
    this.#tap = undefined;
    await new Promise<void>((resolve) =>
      this.#socket ? this.#socket.close(() => resolve()) : resolve()
    );
    this.#socket = undefined;
    this.#peers.clear();
    this.#byId.clear();
    this.#macOwner.clear();
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

  counters(): DatapathCounters {
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
    state.blob = blob;
    state.nextHop = peer.nextHop === peer.name ? undefined : peer.nextHop;
    if (!sameKey(state.sessionKey, peer.sessionKey)) {
      state.sessionKey = peer.sessionKey;
      state.cipher = peer.sessionKey
        ? new SleeveCipher(
          deriveDirectionKeys(peer.sessionKey, { local: this.#options.name, remote: peer.name }),
        )
        : undefined;
    }
    this.#indexMacs();
    if (this.#running) this.#heartbeat(state);
    this.#evaluate();
    await this.#syncFdb();
  }

  async removePeer(name: string): Promise<void> {
    const state = this.#peers.get(name);
    if (!state) return;
    this.#peers.delete(name);
    this.#byId.delete(state.id);
    this.#indexMacs();
    await this.#syncFdb();
  }

  status(): PeerPathStatus[] {
    const underlay = this.#underlay?.mtu ?? 0;
    return [...this.#peers.values()].map((state) => {
      const { path, encrypted, reason, healthy } = state.choice;
      const pathUnderlay = Math.min(underlay, state.blob.underlayMtu);
      const overhead = path === "fastdp" ? VXLAN_OVERHEAD : SLEEVE_OVERHEAD;
      return {
        peer: state.name,
        path,
        encrypted,
        reason,
        mtu: pathUnderlay - overhead,
        healthy,
      };
    });
  }

  #indexMacs(): void {
    this.#macOwner.clear();
    for (const state of this.#peers.values()) {
      this.#macOwner.set(macTextKey(state.blob.bridgeMac), state);
      for (const endpoint of state.blob.endpoints) {
        this.#macOwner.set(macTextKey(endpoint.mac), state);
      }
    }
  }

  #mustEncrypt(state: PeerState): boolean {
    return this.#options.encrypt || state.sessionKey !== undefined;
  }

  #evaluate(): boolean {
    const now = this.#options.now();
    let changed = false;
    for (const state of this.#peers.values()) {
      const choice = choosePath(now, {
        mode: this.#options.mode,
        mustEncrypt: this.#mustEncrypt(state),
        hasKey: state.cipher !== undefined,
        current: state.choice.path,
        fastdp: state.fastdp,
        sleeve: state.sleeve,
        relay: state.relay,
        relayVia: state.nextHop && this.#peers.has(state.nextHop) ? state.nextHop : undefined,
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
    if (this.#evaluate()) this.#syncFdb().catch((e) => this.#options.log(`fdb sync: ${e}`));
  }

  #heartbeat(state: PeerState): void {
    const seq = ++state.seq;
    const body = encodeSequence(seq);
    if (this.#usesSleeve && (!this.#mustEncrypt(state) || state.cipher)) {
      this.#sendVia(state, { kind: Kind.Heartbeat, destination: state.id, body });
    }
    const via = state.nextHop ? this.#peers.get(state.nextHop) : undefined;
    if (this.#usesSleeve && via && via !== state) {
      this.#sendVia(via, { kind: Kind.Heartbeat, destination: state.id, body });
    }
    if (this.#usesFastdp && !this.#mustEncrypt(state)) this.#sendProbe(state, Kind.Probe, seq);
  }

  #sendProbe(state: PeerState, kind: Kind, seq: number): void {
    if (!this.#socket || !this.#bridge) return;
    const inner = encodeDatagram(
      { kind, ttl: 1, sender: this.#id, origin: this.#id, destination: state.id },
      encodeSequence(seq),
    );
    const packet = encodeVxlanProbe(inner, {
      vni: this.#options.vni,
      sourceMac: this.#bridge.mac,
      destinationMac: state.blob.bridgeMac,
      sourceIp: this.#bridge.ip,
      destinationIp: state.blob.bridgeIp,
      sourcePort: this.#options.udpPort,
      destinationPort: state.blob.udpPort,
    });
    this.#send(packet, state.blob.ip, state.blob.vxlanPort);
  }

  /** Sends one datagram to the hop `hop`, sealed with the hop's key when the pair is encrypted. */
  #sendVia(
    hop: PeerState,
    message: { kind: Kind; destination: string; body: Uint8Array; origin?: string; ttl?: number },
  ): boolean {
    if (this.#mustEncrypt(hop) && !hop.cipher) {
      this.#drop("no key for encrypted hop");
      return false;
    }
    const datagram = encodeDatagram(
      {
        kind: message.kind,
        ttl: message.ttl ?? RELAY_TTL,
        sender: this.#id,
        origin: message.origin ?? this.#id,
        destination: message.destination,
      },
      message.body,
      { cipher: this.#mustEncrypt(hop) ? hop.cipher : undefined },
    );
    this.#send(datagram, hop.blob.ip, hop.blob.udpPort);
    return true;
  }

  #send(datagram: Uint8Array, address: string, port: number): void {
    if (!this.#socket) return;
    this.#counters.datagramsSent++;
    this.#socket.send(datagram, port, address, (error) => {
      if (error) this.#drop(`send: ${(error as NodeJS.ErrnoException).code ?? error.message}`);
    });
  }

  #drop(reason: string): void {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + 1;
  }

  /** The hop for traffic to `target`: direct when its sleeve answers, else the mesh's next hop. */
  #hopFor(target: PeerState): PeerState {
    if (
      target.choice.path === "relay" ||
      (!target.sleeve.alive(this.#options.now()) && target.nextHop)
    ) {
      const via = target.nextHop ? this.#peers.get(target.nextHop) : undefined;
      if (via) return via;
    }
    return target;
  }

  #onDatagram(message: Uint8Array, remote: RemoteInfo): void {
    const datagram = decodeDatagram(message);
    if (!datagram) return this.#drop("not weft");
    const sender = this.#byId.get(datagram.sender);
    if (!sender) return this.#drop("unknown sender");
    if (datagram.kind === Kind.Probe || datagram.kind === Kind.ProbeAck) {
      // Only a probe that came through the peer's VXLAN and our bridge proves the fast path.
      if (remote.address !== sender.blob.bridgeIp || datagram.destination !== this.#id) {
        return this.#drop("probe not via fastdp");
      }
      const seq = decodeSequence(datagram.payload);
      if (seq === undefined) return this.#drop("short probe");
      if (datagram.kind === Kind.Probe) this.#sendProbe(sender, Kind.ProbeAck, seq);
      else sender.fastdp.answered(this.#options.now());
      return;
    }
    const body = this.#open(sender, datagram, remote);
    if (!body) return;
    if (datagram.destination !== this.#id) return this.#relay(datagram, body);
    switch (datagram.kind) {
      case Kind.Data:
        for (const frame of unpackRecords(body)) {
          if (this.#tap?.write(frame)) this.#counters.framesToTap++;
          else this.#drop("tap write refused");
        }
        return;
      case Kind.Heartbeat: {
        const origin = this.#byId.get(datagram.origin);
        if (!origin) return this.#drop("heartbeat from unknown origin");
        // Answer along the way it came, so a relayed heartbeat proves the relay both ways.
        this.#sendVia(sender, { kind: Kind.HeartbeatAck, destination: origin.id, body });
        return;
      }
      case Kind.HeartbeatAck: {
        const origin = this.#byId.get(datagram.origin);
        if (!origin) return this.#drop("ack from unknown origin");
        const now = this.#options.now();
        if (origin === sender) origin.sleeve.answered(now);
        else origin.relay.answered(now);
        return;
      }
    }
  }

  /** Authenticates the hop; plaintext from a peer we share a key with is refused outright. */
  #open(sender: PeerState, datagram: DecodedDatagram, remote: RemoteInfo): Uint8Array | undefined {
    if (this.#mustEncrypt(sender) || datagram.encrypted) {
      if (!datagram.encrypted) return void this.#drop("plaintext from encrypted peer");
      if (!sender.cipher) return void this.#drop("encrypted datagram without key");
      const body = sender.cipher.open(datagram.header, datagram.counter, datagram.payload);
      if (!body) return void this.#drop("failed authentication or replay");
      return body;
    }
    if (remote.address !== sender.blob.ip) return void this.#drop("plaintext from wrong address");
    return datagram.payload;
  }

  #relay(datagram: DecodedDatagram, body: Uint8Array): void {
    const target = this.#byId.get(datagram.destination);
    if (!target) return this.#drop("relay to unknown peer");
    if (datagram.ttl <= 1) return this.#drop("relay ttl expired");
    const hop = this.#hopFor(target);
    if (hop.id === datagram.sender) return this.#drop("relay would bounce");
    this.#counters.relayed++;
    this.#sendVia(hop, {
      kind: datagram.kind,
      destination: datagram.destination,
      origin: datagram.origin,
      ttl: datagram.ttl - 1,
      body,
    });
  }

  async #readLoop(tap: TapDevice): Promise<void> {
    const scratch = new Uint8Array(65536 + VNET_HEADER_BYTES + 64);
    while (this.#running) {
      let ready: boolean;
      try {
        ready = await tap.waitReadable(200);
      } catch (error) {
        this.#options.log(`tap poll failed: ${error}`);
        return;
      }
      if (!ready) continue;
      const batches = new Map<PeerState, Batch>();
      // Drain what is queued, but yield now and then so received datagrams are not starved.
      for (let i = 0; i < 256; i++) {
        const length = tap.readInto(scratch);
        if (length < 0) break;
        this.#counters.framesFromTap++;
        this.#steer(scratch.subarray(0, length), batches);
      }
      for (const [target, batch] of batches) this.#flush(target, batch);
    }
  }

  #steer(frame: Uint8Array, batches: Map<PeerState, Batch>): void {
    const eth = VNET_HEADER_BYTES;
    if (frame.length < eth + 14) return this.#drop("runt frame");
    // A frame from a remote MAC reached us over the other path; never send it back out.
    if (this.#macOwner.has(macKey(frame, eth + 6))) return this.#drop("remote source on tap");
    let targets: PeerState[];
    if (frame[eth] & 1) {
      targets = [...this.#peers.values()].filter((s) => this.#onSleeve(s.choice.path));
    } else {
      const owner = this.#macOwner.get(macKey(frame, eth));
      if (!owner || !this.#onSleeve(owner.choice.path)) return this.#drop("no sleeve peer for MAC");
      targets = [owner];
    }
    if (frame.length + RECORD_HEADER_BYTES > MAX_BODY) {
      return this.#drop("frame too big for sleeve");
    }
    const copy = frame.slice();
    for (const target of targets) {
      let batch = batches.get(target);
      if (batch && batch.size + RECORD_HEADER_BYTES + copy.length > MAX_BODY) {
        this.#flush(target, batch);
        batch = undefined;
      }
      if (!batch) {
        batch = { frames: [], size: 0 };
        batches.set(target, batch);
      }
      batch.frames.push(copy);
      batch.size += RECORD_HEADER_BYTES + copy.length;
    }
  }

  #onSleeve(path: PathKind): boolean {
    return path === "sleeve" || path === "relay";
  }

  #flush(target: PeerState, batch: Batch): void {
    if (batch.frames.length === 0) return;
    const body = packRecords(batch.frames);
    batch.frames = [];
    batch.size = 0;
    this.#sendVia(this.#hopFor(target), { kind: Kind.Data, destination: target.id, body });
  }
}
