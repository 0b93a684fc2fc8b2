/**
 * The sleeve engine: what happens to a frame read from the TAP and to a datagram read from the
 * sleeve socket. The same engine runs in three places, each with its own copy of the
 * configuration the control loop (kernel.ts) publishes: a worker draining the TAP, a worker
 * draining the socket, and the main thread sending heartbeats. Nothing here blocks or waits;
 * the callers own the loops.
 *
 * Nonces: every engine seals with ciphers that draw from one shared atomic counter per peer, so
 * three threads can encrypt for the same peer without ever reusing a nonce. One thread at a time
 * opens datagrams (the socket worker, or the main thread while no worker runs), and the replay
 * window is in shared memory, so the one that takes over continues it.
 *
 * Control messages (heartbeats, fast-path probes and their answers) are sealed whenever the pair
 * has a key, even when its data is not (--no-encrypt): a forged answer must not keep a pair on a
 * path that carries nothing. Data is sealed when the pair must be encrypted.
 */
import { EAGAIN } from "../net/libc.ts";
import { VNET_HEADER_BYTES } from "../net/tap.ts";
import type { Datagram } from "../net/udp.ts";
import { SleeveCipher } from "./crypto.ts";
import {
  type DatagramPort,
  emptyCounters,
  type FramePort,
  type SleeveConfig,
  type SleeveCounters,
  type SleeveEvent,
  type SleevePeerConfig,
} from "./sleeve_types.ts";
import type { PathKind } from "./types.ts";
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
  Reassembler,
  RECORD_HEADER_BYTES,
  segmentDatagram,
  setWireLength,
  splitReceived,
  unpackRecords,
  writeHeader,
} from "./wire.ts";

const RELAY_TTL = 8;
/** Frames drained per wake-up before yielding, so config changes are never starved. */
const DRAIN_LIMIT = 256;

export function macKey(bytes: Uint8Array, offset: number): number {
  let key = 0;
  for (let i = 0; i < 6; i++) key = key * 256 + bytes[offset + i];
  return key;
}

export function macTextKey(mac: string): number {
  return macKey(new Uint8Array(mac.split(":").map((part) => parseInt(part, 16))), 0);
}

interface PeerEntry {
  config: SleevePeerConfig;
  cipher?: SleeveCipher;
}

/** One datagram being filled for one peer: header room, then records, reused after each send. */
interface Batch {
  buffer: Uint8Array;
  view: DataView;
  /** End of the records written so far (starts at HEADER_BYTES). */
  end: number;
}

const BATCH_BYTES = HEADER_BYTES + MAX_BODY;

function onSleeve(path: PathKind): boolean {
  return path === "sleeve" || path === "relay";
}

export class SleeveEngine {
  #udp: DatagramPort;
  #tap?: FramePort;
  #emit: (event: SleeveEvent) => void;
  #config?: SleeveConfig;
  #peers = new Map<string, PeerEntry>();
  #macOwner = new Map<number, PeerEntry>();
  #sleevePeers: PeerEntry[] = [];
  #counters = emptyCounters();
  #reportTraffic: boolean;
  #sawTraffic = false;

  /**
   * `reportTraffic`: emit a "traffic" event after a drain that met pod traffic (data for us or
   * to relay): the main thread's engine, draining while no worker runs, asks for the workers so.
   */
  constructor(
    udp: DatagramPort,
    options: { tap?: FramePort; emit?: (event: SleeveEvent) => void; reportTraffic?: boolean } = {},
  ) {
    this.#udp = udp;
    this.#tap = options.tap;
    this.#emit = options.emit ?? (() => {});
    this.#reportTraffic = options.reportTraffic ?? false;
  }

  get generation(): number {
    return this.#config?.generation ?? -1;
  }

  /** Takes the counters gathered since the last call. */
  takeCounters(): SleeveCounters {
    const out = this.#counters;
    this.#counters = emptyCounters();
    return out;
  }

  configure(config: SleeveConfig): void {
    const previous = this.#peers;
    this.#config = config;
    this.#peers = new Map();
    for (const peer of config.peers) {
      const old = previous.get(peer.id);
      // Keep the cipher (and its replay window) while the session key is unchanged.
      const cipher = peer.keys && peer.counter
        ? (old?.cipher && old.config.counter === peer.counter
          ? old.cipher
          : new SleeveCipher(peer.keys, { counter: peer.counter, window: peer.window }))
        : undefined;
      this.#peers.set(peer.id, { config: peer, cipher });
    }
    this.#macOwner.clear();
    for (const entry of this.#peers.values()) {
      for (const mac of entry.config.macs) this.#macOwner.set(macTextKey(mac), entry);
    }
    this.#sleevePeers = [...this.#peers.values()].filter((e) => onSleeve(e.config.path));
    this.#batches.clear();
  }

  #drop(reason: string): void {
    this.#counters.dropped[reason] = (this.#counters.dropped[reason] ?? 0) + 1;
  }

  #gsoFailed = false;
  #reassembler = new Reassembler();
  #idTag = Math.floor(Math.random() * 0xffff) * 2 ** 32;
  #idSeq = 0;

  /** An id for a plain message: unique per sending thread (a random tag) and message. */
  #nextId(): number {
    this.#idSeq = (this.#idSeq + 1) % 2 ** 32;
    return this.#idTag + this.#idSeq;
  }

  #send(datagram: Uint8Array, to: { address: string; port: number; segmentBytes?: number }): void {
    this.#counters.datagramsSent++;
    const segmentBytes = to.segmentBytes ?? datagram.length;
    if (datagram.length <= segmentBytes) {
      if (this.#udp.sendTo(datagram, to) !== 0) this.#drop("udp send refused");
      return;
    }
    const train = segmentDatagram(datagram, segmentBytes);
    const segments = splitReceived(train);
    const gso = this.#config!.gsoBytes;
    if (gso === segmentBytes && !this.#gsoFailed) {
      // One call per train of full segments (the kernel splits at gsoBytes); at most 64
      // segments and 64 KB per call.
      const perCall = Math.min(64, Math.floor(65507 / segmentBytes));
      for (let i = 0; i < segments.length; i += perCall) {
        const first = segments[i];
        const last = segments[Math.min(i + perCall, segments.length) - 1];
        const start = first.byteOffset - train.byteOffset;
        const end = last.byteOffset - train.byteOffset + last.length;
        const error = this.#udp.sendTo(train.subarray(start, end), to);
        if (error === 0) continue;
        if (error === EAGAIN) return this.#drop("udp send refused");
        // EIO/EINVAL: this route cannot do UDP GSO; send segments one by one from now on.
        this.#gsoFailed = true;
        for (const segment of segments.slice(i)) this.#udp.sendTo(segment, to);
        return;
      }
      return;
    }
    for (const segment of segments) {
      if (this.#udp.sendTo(segment, to) !== 0) return this.#drop("udp send refused");
    }
  }

  #to(peer: PeerEntry, port = peer.config.udpPort) {
    return { address: peer.config.ip, port, segmentBytes: peer.config.segmentBytes };
  }

  /** Sends to the hop `hop`, sealed with the hop's key when that pair is encrypted. */
  #sendVia(
    hop: PeerEntry,
    message: { kind: Kind; destination: string; body: Uint8Array; origin?: string; ttl?: number },
  ): void {
    const self = this.#config!.self;
    if (hop.config.mustEncrypt && !hop.cipher) return this.#drop("no key for encrypted hop");
    const seal = hop.config.mustEncrypt || message.kind !== Kind.Data;
    const datagram = encodeDatagram(
      {
        kind: message.kind,
        ttl: message.ttl ?? RELAY_TTL,
        sender: self,
        origin: message.origin ?? self,
        destination: message.destination,
      },
      message.body,
      { cipher: seal ? hop.cipher : undefined, id: this.#nextId() },
    );
    this.#send(datagram, this.#to(hop));
  }

  #hopFor(target: PeerEntry): PeerEntry {
    return this.#peers.get(target.config.hop) ?? target;
  }

  /** One heartbeat round for `peerId`: sleeve direct, sleeve via the relay, fast-path probe. */
  heartbeat(
    peerId: string,
    seq: number,
    paths: { sleeve: boolean; relayVia?: string; fastdp: boolean },
  ): void {
    const target = this.#peers.get(peerId);
    if (!target || !this.#config) return;
    const body = encodeSequence(seq);
    if (paths.sleeve && (!target.config.mustEncrypt || target.cipher)) {
      this.#sendVia(target, { kind: Kind.Heartbeat, destination: peerId, body });
    }
    const via = paths.relayVia ? this.#peers.get(paths.relayVia) : undefined;
    if (via && via !== target) {
      this.#sendVia(via, { kind: Kind.Heartbeat, destination: peerId, body });
    }
    if (paths.fastdp) this.#probe(target, Kind.Probe, seq);
  }

  #probe(target: PeerEntry, kind: Kind, seq: number): void {
    const config = this.#config!;
    const inner = encodeDatagram(
      { kind, ttl: 1, sender: config.self, origin: config.self, destination: target.config.id },
      encodeSequence(seq),
      { cipher: target.cipher },
    );
    const packet = encodeVxlanProbe(inner, {
      vni: config.vni,
      sourceMac: config.bridgeMac,
      destinationMac: target.config.bridgeMac,
      sourceIp: config.bridgeIp,
      destinationIp: target.config.bridgeIp,
      sourcePort: config.udpPort,
      destinationPort: target.config.udpPort,
    });
    this.#send(packet, { address: target.config.ip, port: target.config.vxlanPort });
  }

  /** Drains ready frames from the TAP and sends them to their sleeve peers, batched. */
  pumpTap(scratch: Uint8Array): void {
    const tap = this.#tap;
    if (!tap || !this.#config) return;
    const pending = new Set<PeerEntry>();
    for (let i = 0; i < DRAIN_LIMIT; i++) {
      const length = tap.readInto(scratch);
      if (length < 0) break;
      this.#counters.framesFromTap++;
      this.#counters.bytesFromTap += length;
      this.#steer(scratch.subarray(0, length), pending);
    }
    for (const target of pending) this.#flush(target);
  }

  #batches = new Map<PeerEntry, Batch>();

  #batchFor(target: PeerEntry): Batch {
    let batch = this.#batches.get(target);
    if (!batch) {
      const buffer = new Uint8Array(BATCH_BYTES);
      batch = { buffer, view: new DataView(buffer.buffer), end: HEADER_BYTES };
      this.#batches.set(target, batch);
    }
    return batch;
  }

  #steer(frame: Uint8Array, pending: Set<PeerEntry>): void {
    const eth = VNET_HEADER_BYTES;
    if (frame.length < eth + 14) return this.#drop("runt frame");
    // A remote MAC as source means the frame came in over the other path: never echo it.
    if (this.#macOwner.has(macKey(frame, eth + 6))) return this.#drop("remote source on tap");
    let targets: PeerEntry[];
    const owner = frame[eth] & 1 ? undefined : this.#macOwner.get(macKey(frame, eth));
    if (owner) {
      if (!onSleeve(owner.config.path)) return this.#drop("no sleeve peer for MAC");
      targets = [owner];
    } else {
      // Broadcast, and unicast to a MAC no peer has announced yet (a pod created a moment ago
      // on another node): replicate to every sleeve peer, as the kernel's VXLAN path does with
      // its all-zero entries. Overlay ports are isolated on every bridge, so this cannot loop.
      targets = this.#sleevePeers;
    }
    const record = RECORD_HEADER_BYTES + frame.length;
    if (record > MAX_BODY) return this.#drop("frame too big");
    for (const target of targets) {
      let batch = this.#batchFor(target);
      if (batch.end + record > BATCH_BYTES) {
        this.#flush(target);
        batch = this.#batchFor(target);
      }
      batch.view.setUint32(batch.end, frame.length);
      batch.buffer.set(frame, batch.end + RECORD_HEADER_BYTES);
      batch.end += record;
      pending.add(target);
    }
  }

  #flush(target: PeerEntry): void {
    const batch = this.#batches.get(target);
    if (!batch || batch.end === HEADER_BYTES) return;
    const end = batch.end;
    batch.end = HEADER_BYTES;
    const hop = this.#hopFor(target);
    const header = {
      kind: Kind.Data,
      ttl: RELAY_TTL,
      sender: this.#config!.self,
      origin: this.#config!.self,
      destination: target.config.id,
    };
    if (hop.config.mustEncrypt) {
      if (!hop.cipher) return this.#drop("no key for encrypted hop");
      const body = batch.buffer.subarray(HEADER_BYTES, end);
      this.#send(encodeDatagram(header, body, { cipher: hop.cipher }), this.#to(hop));
      return;
    }
    // Plain: the header goes in front of the records already in place; sendto copies, so the
    // buffer is free again as soon as it returns.
    writeHeader(batch.buffer, header, { counter: this.#nextId(), encrypted: false });
    setWireLength(batch.buffer, end);
    this.#send(batch.buffer.subarray(0, end), this.#to(hop));
  }

  /** Drains ready datagrams from the socket and handles each. */
  pumpSocket(scratch: Uint8Array): void {
    for (let i = 0; i < DRAIN_LIMIT; i++) {
      const from = this.#udp.receiveInto(scratch);
      if (!from) break;
      // With UDP GRO one read may hold many datagrams back to back.
      const pieces = splitReceived(scratch.subarray(0, from.length));
      if (pieces.length === 0) this.#drop("not weft");
      for (const piece of pieces) {
        this.#counters.datagramsReceived++;
        try {
          this.handleDatagram(piece, from);
        } catch (error) {
          this.#drop(`bad datagram: ${(error as Error).name}`);
        }
      }
    }
    if (this.#sawTraffic) {
      this.#sawTraffic = false;
      this.#emit({ type: "traffic" });
    }
  }

  /** Handles one datagram or segment (segments wait until their message is whole). */
  handleDatagram(message: Uint8Array, from: Datagram): void {
    const config = this.#config;
    if (!config) return;
    let datagram = decodeDatagram(message);
    if (!datagram) return this.#drop("not weft");
    if (datagram.segment) {
      const dropped = this.#reassembler.dropped;
      datagram = this.#reassembler.add(datagram);
      if (this.#reassembler.dropped > dropped) this.#drop("incomplete message");
      if (!datagram) return;
    }
    const sender = this.#peers.get(datagram.sender);
    if (!sender) return this.#drop("unknown sender");
    if (datagram.kind === Kind.Probe || datagram.kind === Kind.ProbeAck) {
      // Only a probe that came through the peer's VXLAN and our bridge proves the fast path.
      if (from.address !== sender.config.bridgeIp || datagram.destination !== config.self) {
        return this.#drop("probe not via fastdp");
      }
      const body = sender.cipher ? this.#unseal(sender, datagram) : datagram.payload;
      if (!body) return;
      const seq = decodeSequence(body);
      if (seq === undefined) return this.#drop("short probe");
      if (datagram.kind === Kind.Probe) this.#probe(sender, Kind.ProbeAck, seq);
      else this.#emit({ type: "answered", peer: sender.config.id, path: "fastdp" });
      return;
    }
    const body = this.#open(sender, datagram, from);
    if (!body) return;
    if (datagram.kind === Kind.Data && this.#reportTraffic) this.#sawTraffic = true;
    if (datagram.destination !== config.self) return this.#relay(datagram, body);
    switch (datagram.kind) {
      case Kind.Data:
        if (!this.#tap) return this.#drop("no tap on this thread");
        for (const frame of unpackRecords(body)) {
          if (this.#tap.write(frame)) this.#counters.framesToTap++;
          else this.#drop("tap write refused");
        }
        return;
      case Kind.Heartbeat:
        if (!this.#peers.has(datagram.origin)) return this.#drop("heartbeat from unknown origin");
        // Answer the way it came, so a relayed heartbeat proves the relay in both directions.
        this.#sendVia(sender, { kind: Kind.HeartbeatAck, destination: datagram.origin, body });
        return;
      case Kind.HeartbeatAck: {
        const origin = this.#peers.get(datagram.origin);
        if (!origin) return this.#drop("ack from unknown origin");
        const path = origin === sender ? "sleeve" : "relay";
        this.#emit({ type: "answered", peer: origin.config.id, path });
        return;
      }
    }
  }

  /** Authenticates the hop; plaintext from a peer we must encrypt with is refused outright. */
  #open(sender: PeerEntry, datagram: DecodedDatagram, from: Datagram): Uint8Array | undefined {
    const control = datagram.kind !== Kind.Data;
    if (control && sender.cipher) return this.#unseal(sender, datagram);
    if (sender.config.mustEncrypt || datagram.encrypted) {
      if (!datagram.encrypted) return void this.#drop("plaintext from encrypted peer");
      return this.#unseal(sender, datagram);
    }
    if (from.address !== sender.config.ip) return void this.#drop("plaintext from wrong address");
    return datagram.payload;
  }

  /** Opens a sealed datagram with the sender's key; anything else from it is refused. */
  #unseal(sender: PeerEntry, datagram: DecodedDatagram): Uint8Array | undefined {
    if (!datagram.encrypted) return void this.#drop("unauthenticated control message");
    if (!sender.cipher) return void this.#drop("encrypted datagram without key");
    const body = sender.cipher.open(datagram.payload, {
      header: datagram.header,
      counter: datagram.counter,
    });
    if (!body) return void this.#drop("failed authentication or replay");
    return body;
  }

  #relay(datagram: DecodedDatagram, body: Uint8Array): void {
    const target = this.#peers.get(datagram.destination);
    if (!target) return this.#drop("relay to unknown peer");
    if (datagram.ttl <= 1) return this.#drop("relay ttl expired");
    const hop = this.#hopFor(target);
    if (hop.config.id === datagram.sender) return this.#drop("relay would bounce");
    this.#counters.relayed++;
    this.#sendVia(hop, {
      kind: datagram.kind,
      destination: datagram.destination,
      origin: datagram.origin,
      ttl: datagram.ttl - 1,
      body,
    });
  }
}
