import assert from "node:assert/strict";
import type { Datagram } from "../net/udp.ts";
import { deriveDirectionKeys } from "./crypto.ts";
import { SleeveEngine } from "./sleeve.ts";
import type {
  DatagramPort,
  FramePort,
  SleeveConfig,
  SleeveEvent,
  SleevePeerConfig,
} from "./sleeve_types.ts";
import type { PathKind } from "./types.ts";
import { decodeDatagram, encodeDatagram, encodeSequence, Kind, peerId } from "./wire.ts";

/** An underlay in memory; port 6784 plays the peer's kernel VXLAN: decapsulate, deliver up. */
class Underlay {
  queues = new Map<string, Array<{ data: Uint8Array; from: Datagram }>>();
  bridgeOf = new Map<string, string>();

  deliver(to: string, data: Uint8Array, from: Datagram): void {
    const [address, port] = to.split(":");
    if (port === "6784") {
      const bridgeIp = this.bridgeOf.get(address)!;
      const inner = data.subarray(8 + 14 + 20 + 8);
      const innerSource = `${data[34]}.${data[35]}.${data[36]}.${data[37]}`;
      return this.deliver(`${bridgeIp}:6783`, inner.slice(), { ...from, address: innerSource });
    }
    const queue = this.queues.get(to) ?? [];
    queue.push({ data: data.slice(), from });
    this.queues.set(to, queue);
  }
}

class MemorySocket implements DatagramPort {
  constructor(readonly underlay: Underlay, readonly addresses: string[]) {}

  sent: number[] = [];

  /** Like the kernel with UDP GRO on: a GSO train arrives as one read, coalesced. */
  sendTo(data: Uint8Array, { address, port }: { address: string; port: number }): number {
    this.sent.push(data.length);
    this.underlay.deliver(`${address}:${port}`, data, {
      length: data.length,
      address: this.addresses[0],
      port: 6783,
    });
    return 0;
  }

  receiveInto(buffer: Uint8Array): Datagram | undefined {
    for (const address of this.addresses) {
      const next = this.underlay.queues.get(`${address}:6783`)?.shift();
      if (next) {
        buffer.set(next.data);
        return { ...next.from, length: next.data.length };
      }
    }
    return undefined;
  }
}

class MemoryTap implements FramePort {
  inbound: Uint8Array[] = [];
  written: Uint8Array[] = [];

  readInto(buffer: Uint8Array): number {
    const frame = this.inbound.shift();
    if (!frame) return -1;
    buffer.set(frame);
    return frame.length;
  }

  write(frame: Uint8Array): boolean {
    this.written.push(frame.slice());
    return true;
  }
}

interface NodeSpec {
  name: string;
  ip: string;
  bridgeIp: string;
  bridgeMac: string;
  podMac: string;
}

const specs: NodeSpec[] = [1, 2, 3].map((i) => ({
  name: `n${i}`,
  ip: `192.0.2.${i}`,
  bridgeIp: `10.32.0.${i}`,
  bridgeMac: `0a:58:0a:20:00:0${i}`,
  podMac: `0a:58:0a:20:0${i}:01`,
}));

function frame(destination: string, source: string, text: string): Uint8Array {
  const mac = (m: string) => m.split(":").map((p) => parseInt(p, 16));
  const body = new TextEncoder().encode(text);
  return new Uint8Array([
    ...new Array(10).fill(0),
    ...mac(destination),
    ...mac(source),
    8,
    0,
    ...body,
  ]);
}

interface PairPolicy {
  path: PathKind;
  hop?: string;
  key?: Uint8Array;
  /** Seal data too (default: whenever there is a key); false is --no-encrypt. */
  encrypt?: boolean;
}

class Node {
  engine: SleeveEngine;
  tap = new MemoryTap();
  events: Extract<SleeveEvent, { type: "answered" }>[] = [];
  /** "traffic" events: pod traffic met by an engine that reports it. */
  traffic = 0;
  socket: MemorySocket;

  constructor(
    readonly spec: NodeSpec,
    underlay: Underlay,
    options: { mainThread?: boolean } = {},
  ) {
    underlay.bridgeOf.set(spec.ip, spec.bridgeIp);
    this.socket = new MemorySocket(underlay, [spec.ip, spec.bridgeIp]);
    // The main thread's engine has no TAP and reports traffic (see sleeve_supervisor.ts).
    this.engine = new SleeveEngine(this.socket, {
      tap: options.mainThread ? undefined : this.tap,
      reportTraffic: options.mainThread,
      emit: (event) => event.type === "answered" ? this.events.push(event) : this.traffic++,
    });
  }

  configure(
    policies: Record<string, PairPolicy>,
    counters: Map<string, SharedArrayBuffer>,
    sizes: { segmentBytes: number; gsoBytes: number } = { segmentBytes: 1472, gsoBytes: 1472 },
  ): void {
    const peers: SleevePeerConfig[] = specs.filter((s) => s !== this.spec).map((s) => {
      const policy = policies[s.name] ?? { path: "sleeve" };
      let counter = counters.get(`${this.spec.name}>${s.name}`);
      if (!counter) counters.set(`${this.spec.name}>${s.name}`, counter = new SharedArrayBuffer(8));
      return {
        id: peerId(s.name),
        name: s.name,
        ip: s.ip,
        udpPort: 6783,
        vxlanPort: 6784,
        bridgeIp: s.bridgeIp,
        bridgeMac: s.bridgeMac,
        macs: [s.bridgeMac, s.podMac],
        path: policy.path,
        hop: peerId(policy.hop ?? s.name),
        mustEncrypt: policy.encrypt ?? policy.key !== undefined,
        segmentBytes: sizes.segmentBytes,
        keys: policy.key
          ? deriveDirectionKeys(policy.key, { local: this.spec.name, remote: s.name })
          : undefined,
        counter: policy.key ? counter : undefined,
      };
    });
    const config: SleeveConfig = {
      generation: 1,
      self: peerId(this.spec.name),
      vni: 1,
      udpPort: 6783,
      bridgeMac: this.spec.bridgeMac,
      bridgeIp: this.spec.bridgeIp,
      gsoBytes: sizes.gsoBytes,
      peers,
    };
    this.engine.configure(config);
  }

  /** Runs the engine until neither the TAP nor the socket has anything left. */
  pump(): void {
    const scratch = new Uint8Array(70000);
    this.engine.pumpTap(scratch);
    this.engine.pumpSocket(scratch);
  }
}

function lab(
  policies: Record<string, Record<string, PairPolicy>>,
  sizes?: { segmentBytes: number; gsoBytes: number },
  mainThread: string[] = [],
): Node[] {
  const underlay = new Underlay();
  const counters = new Map<string, SharedArrayBuffer>();
  const nodes = specs.map((spec) =>
    new Node(spec, underlay, { mainThread: mainThread.includes(spec.name) })
  );
  for (const node of nodes) node.configure(policies[node.spec.name] ?? {}, counters, sizes);
  return nodes;
}

function settle(nodes: Node[]): void {
  for (let round = 0; round < 5; round++) for (const node of nodes) node.pump();
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes.subarray(24));

Deno.test("a unicast frame reaches the owner's TAP intact", () => {
  const [a, b, c] = lab({});
  const sent = frame(specs[1].podMac, specs[0].podMac, "hello b");
  a.tap.inbound.push(sent);
  settle([a, b, c]);
  assert.deepEqual(b.tap.written, [sent]);
  assert.deepEqual(c.tap.written, []);
});

Deno.test("broadcast goes to sleeve peers only; fast-path peers get it from the kernel", () => {
  const [a, b, c] = lab({ n1: { n3: { path: "fastdp" } } });
  a.tap.inbound.push(frame("ff:ff:ff:ff:ff:ff", specs[0].podMac, "who has"));
  settle([a, b, c]);
  assert.equal(b.tap.written.length, 1);
  assert.equal(c.tap.written.length, 0);
});

Deno.test("a frame from a remote MAC is never sent back out (split horizon)", () => {
  const [a, b, c] = lab({});
  a.tap.inbound.push(frame("ff:ff:ff:ff:ff:ff", specs[2].podMac, "echo?"));
  settle([a, b, c]);
  assert.equal(b.tap.written.length + c.tap.written.length, 0);
  assert.equal(a.engine.takeCounters().dropped["remote source on tap"], 1);
});

Deno.test("many small frames share one datagram", () => {
  const [a, b, c] = lab({});
  for (let i = 0; i < 50; i++) a.tap.inbound.push(frame(specs[1].podMac, specs[0].podMac, `f${i}`));
  a.pump();
  assert.equal(a.engine.takeCounters().datagramsSent, 1);
  settle([a, b, c]);
  assert.deepEqual(b.tap.written.map(text), [...Array(50).keys()].map((i) => `f${i}`));
});

Deno.test("relay: node2 forwards between node1 and node3, re-sealing per hop", () => {
  const k12 = new Uint8Array(32).fill(12);
  const k23 = new Uint8Array(32).fill(23);
  const k13 = new Uint8Array(32).fill(13);
  const [a, b, c] = lab({
    n1: { n2: { path: "sleeve", key: k12 }, n3: { path: "relay", hop: "n2", key: k13 } },
    n2: { n1: { path: "sleeve", key: k12 }, n3: { path: "sleeve", key: k23 } },
    n3: { n2: { path: "sleeve", key: k23 }, n1: { path: "relay", hop: "n2", key: k13 } },
  });
  a.tap.inbound.push(frame(specs[2].podMac, specs[0].podMac, "via b"));
  c.tap.inbound.push(frame(specs[0].podMac, specs[2].podMac, "back via b"));
  settle([a, b, c]);
  assert.deepEqual(c.tap.written.map(text), ["via b"]);
  assert.deepEqual(a.tap.written.map(text), ["back via b"]);
  assert.equal(b.tap.written.length, 0);
  assert.equal(b.engine.takeCounters().relayed, 2);
});

Deno.test("heartbeats prove sleeve, relay and fast path, each only by its own route", () => {
  const [a, b, c] = lab({ n1: { n3: { path: "relay", hop: "n2" } } });
  a.engine.heartbeat(peerId("n2"), 1, { sleeve: true, fastdp: true });
  a.engine.heartbeat(peerId("n3"), 2, { sleeve: false, relayVia: peerId("n2"), fastdp: false });
  settle([a, b, c]);
  const seen = a.events.map((e) => `${e.path}:${e.peer === peerId("n2") ? "n2" : "n3"}`).sort();
  assert.deepEqual(seen, ["fastdp:n2", "relay:n3", "sleeve:n2"]);
});

Deno.test("the main thread answers heartbeats itself and asks for threads when frames come", () => {
  const [a, b, c] = lab({ n1: { n3: { path: "relay", hop: "n2" } } }, undefined, ["n2"]);
  a.engine.heartbeat(peerId("n2"), 1, { sleeve: true, fastdp: true });
  settle([a, b, c]);
  assert.deepEqual(a.events.map((e) => e.path).sort(), ["fastdp", "sleeve"]);
  assert.equal(b.traffic, 0, "heartbeats and probes are no reason to start threads");
  a.tap.inbound.push(frame(specs[1].podMac, specs[0].podMac, "to b"));
  a.tap.inbound.push(frame(specs[2].podMac, specs[0].podMac, "to c, relayed by b"));
  settle([a, b, c]);
  assert.equal(b.traffic, 1, "one event for the drain that met both");
  assert.equal(b.engine.takeCounters().dropped["no tap on this thread"], 1);
  assert.deepEqual(c.tap.written.map(text), ["to c, relayed by b"]);
});

Deno.test("a probe that did not come through the peer's bridge proves nothing", () => {
  const [a, b] = lab({});
  // Replay a probe straight to the underlay address: it must not be answered.
  const underlay = a.socket.underlay;
  a.engine.heartbeat(peerId("n2"), 7, { sleeve: false, fastdp: true });
  const probe = underlay.queues.get(`${specs[1].bridgeIp}:6783`)!.shift()!;
  underlay.deliver(`${specs[1].ip}:6783`, probe.data, { ...probe.from, address: specs[0].ip });
  settle([a, b]);
  assert.deepEqual(a.events, []);
  assert.equal(b.engine.takeCounters().dropped["probe not via fastdp"], 1);
});

Deno.test("with a key but plain data, probes and heartbeats are sealed; forgeries prove nothing", () => {
  const key = new Uint8Array(32).fill(8);
  const pair = { path: "sleeve" as const, key, encrypt: false };
  const [a, b, c] = lab({ n1: { n2: pair }, n2: { n1: pair } });
  a.engine.heartbeat(peerId("n2"), 3, { sleeve: true, fastdp: true });
  const underlay = a.socket.underlay;
  const toBridge = underlay.queues.get(`${specs[1].bridgeIp}:6783`)!;
  const toUnderlay = underlay.queues.get(`${specs[1].ip}:6783`)!;
  assert.equal(decodeDatagram(toBridge[0].data)?.encrypted, true, "the probe is sealed");
  assert.equal(decodeDatagram(toUnderlay[0].data)?.encrypted, true, "the heartbeat is sealed");
  settle([a, b, c]);
  assert.deepEqual(a.events.map((e) => e.path).sort(), ["fastdp", "sleeve"]);
  // Data stays plain for this pair (the pair does not require encryption).
  a.tap.inbound.push(frame(specs[1].podMac, specs[0].podMac, "plain data"));
  a.pump();
  assert.equal(new TextDecoder().decode(toUnderlay[0].data).includes("plain data"), true);
  settle([a, b, c]);
  assert.deepEqual(b.tap.written.map(text), ["plain data"]);

  // A forger without the key answers a probe from n2's bridge address: nothing counts.
  a.events = [];
  const forged = encodeDatagram(
    {
      kind: Kind.ProbeAck,
      ttl: 1,
      sender: peerId("n2"),
      origin: peerId("n2"),
      destination: peerId("n1"),
    },
    encodeSequence(4),
  );
  const fromBridge = { length: forged.length, address: specs[1].bridgeIp, port: 6783 };
  underlay.deliver(`${specs[0].bridgeIp}:6783`, forged, fromBridge);
  const heartbeatAck = encodeDatagram(
    {
      kind: Kind.HeartbeatAck,
      ttl: 8,
      sender: peerId("n2"),
      origin: peerId("n2"),
      destination: peerId("n1"),
    },
    encodeSequence(4),
  );
  underlay.deliver(`${specs[0].ip}:6783`, heartbeatAck, { ...fromBridge, address: specs[1].ip });
  settle([a, b, c]);
  assert.deepEqual(a.events, []);
  assert.equal(a.engine.takeCounters().dropped["unauthenticated control message"], 2);
});

Deno.test("an encrypted pair refuses plaintext, and replays", () => {
  const key = new Uint8Array(32).fill(5);
  const [a, b, c] = lab({ n2: { n1: { path: "sleeve", key } } });
  a.tap.inbound.push(frame(specs[1].podMac, specs[0].podMac, "plain"));
  settle([a, b, c]);
  assert.deepEqual(b.tap.written, []);
  assert.equal(b.engine.takeCounters().dropped["plaintext from encrypted peer"], 1);

  const [x, y] = lab({ n1: { n2: { path: "sleeve", key } }, n2: { n1: { path: "sleeve", key } } });
  x.tap.inbound.push(frame(specs[1].podMac, specs[0].podMac, "sealed"));
  x.pump();
  const queued = x.socket.underlay.queues.get(`${specs[1].ip}:6783`)!;
  assert.equal(new TextDecoder().decode(queued[0].data).includes("sealed"), false);
  queued.push({ ...queued[0], data: queued[0].data.slice() });
  settle([x, y]);
  assert.deepEqual(y.tap.written.map(text), ["sealed"]);
  assert.equal(y.engine.takeCounters().dropped["failed authentication or replay"], 1);
});

function bigFrame(size: number, seed: number): Uint8Array {
  const out = frame(specs[1].podMac, specs[0].podMac, "");
  const big = new Uint8Array(size);
  big.set(out);
  for (let i = out.length; i < size; i++) big[i] = (i * 31 + seed) & 255;
  return big;
}

for (const gso of [true, false]) {
  Deno.test(`a superframe is cut into segments and put back together (GSO ${gso})`, () => {
    const key = new Uint8Array(32).fill(9);
    const sizes = { segmentBytes: 1472, gsoBytes: gso ? 1472 : 0 };
    const [a, b, c] = lab({
      n1: { n2: { path: "sleeve", key } },
      n2: { n1: { path: "sleeve", key } },
    }, sizes);
    const sent = [bigFrame(64_000, 1), bigFrame(3_000, 2)];
    a.tap.inbound.push(...sent);
    a.pump();
    // One send per train of up to 44 full segments with GSO; one per segment without it.
    assert.ok(a.socket.sent.every((n) => n <= (gso ? 65507 : 1472)), `${a.socket.sent}`);
    assert.equal(a.socket.sent.length > 40, !gso);
    settle([a, b, c]);
    assert.deepEqual(b.tap.written, sent);
  });
}

Deno.test("a message with a lost segment is dropped alone, later ones still arrive", () => {
  const [a, b, c] = lab({}, { segmentBytes: 1472, gsoBytes: 0 });
  a.tap.inbound.push(bigFrame(10_000, 3));
  a.pump();
  const queue = a.socket.underlay.queues.get(`${specs[1].ip}:6783`)!;
  queue.splice(2, 1);
  settle([a, b, c]);
  assert.deepEqual(b.tap.written, []);
  const next = bigFrame(10_000, 4);
  a.tap.inbound.push(next);
  settle([a, b, c]);
  assert.deepEqual(b.tap.written, [next]);
});
