/**
 * An in-memory network for tests and the simulation: links are pairs of objects, frames are
 * delivered by timers on a passed-in clock, and faults (loss, latency, jitter that reorders
 * frames, partitions) are injected here rather than in the mesh. Like TCP, each link carries its
 * first few frames per direction faithfully (the handshake); faults apply to the frames after, so
 * the tests exercise gossip's tolerance of loss and reordering rather than a handshake that a real
 * ordered stream would never see scrambled.
 */
import type { Clock } from "./clock.ts";
import type { Link, Transport } from "./transport.ts";

export interface NetworkFaults {
  /** Probability that a frame is lost. */
  drop?: number;
  /** Base one-way delay. */
  latencyMs?: number;
  /** Extra uniformly random delay; frames overtake each other when it exceeds their spacing. */
  jitterMs?: number;
}

export interface MemoryNetworkOptions extends NetworkFaults {
  clock: Clock;
  random?: () => number;
  /** Frames per direction that faults never touch. */
  faultFreeFrames?: number;
  /** How long a dial into a partition hangs before failing. */
  connectTimeoutMs?: number;
}

function hostOf(address: string): string {
  const colon = address.lastIndexOf(":");
  return colon < 0 ? address : address.slice(0, colon);
}

class MemoryLink implements Link {
  other?: MemoryLink;
  closed = false;
  sent = 0;
  onOpen?: () => void;
  onMessage?: (frame: string | Uint8Array) => void;
  onClose?: (reason: string) => void;

  constructor(
    readonly network: MemoryNetwork,
    readonly localAddress: string,
    readonly remoteAddress: string,
    readonly owner: MemoryTransport,
  ) {}

  send(frame: string | Uint8Array): void {
    if (this.closed || !this.other) return;
    this.network.deliver(this, frame);
  }

  close(reason = "closed locally"): void {
    if (this.closed) return;
    this.closed = true;
    this.owner.links.delete(this);
    const clock = this.network.clock;
    clock.setTimeout(() => this.onClose?.(reason), 0);
    const other = this.other;
    if (other && !other.closed && !this.network.blocked(this.localAddress, other.localAddress)) {
      clock.setTimeout(() => other.close("closed by peer"), this.network.latency());
    }
  }
}

/** One endpoint of a MemoryNetwork, addressed like `10.0.0.1:6783`. */
export class MemoryTransport implements Transport {
  readonly links = new Set<MemoryLink>();
  onAccept?: (link: Link) => void;
  #ephemeral = 40000;

  constructor(readonly network: MemoryNetwork, readonly address: string) {}

  listen(onAccept: (link: Link) => void): Promise<string> {
    this.onAccept = onAccept;
    this.network.listeners.set(this.address, this);
    return Promise.resolve(this.address);
  }

  dial(address: string): Link {
    const network = this.network;
    const local = `${hostOf(this.address)}:${this.#ephemeral++}`;
    const link = new MemoryLink(network, local, address, this);
    this.links.add(link);
    // The listener is looked up when the "SYN" arrives, as on a real network.
    network.clock.setTimeout(() => {
      const server = network.listeners.get(address);
      if (link.closed) return;
      if (!server) {
        link.close("connection refused");
        return;
      }
      if (network.blocked(this.address, address)) {
        network.clock.setTimeout(() => link.close("connect timeout"), network.connectTimeoutMs);
        return;
      }
      const accepted = new MemoryLink(network, address, local, server);
      link.other = accepted;
      accepted.other = link;
      server.links.add(accepted);
      server.onAccept?.(accepted);
      network.clock.setTimeout(() => {
        if (!link.closed) link.onOpen?.();
      }, network.latency());
    }, network.latency());
    return link;
  }

  close(): Promise<void> {
    if (this.network.listeners.get(this.address) === this) {
      this.network.listeners.delete(this.address);
    }
    for (const link of [...this.links]) link.close("transport closed");
    return Promise.resolve();
  }
}

/** The shared medium; make one per test or simulation. */
export class MemoryNetwork {
  readonly clock: Clock;
  readonly listeners = new Map<string, MemoryTransport>();
  readonly connectTimeoutMs: number;
  #random: () => number;
  #faults: Required<NetworkFaults>;
  #faultFree: number;
  #partitions: Array<[Set<string>, Set<string>]> = [];
  /** Frames and bytes handed to the network, for the simulation's accounting. */
  frames = 0;
  bytes = 0;

  constructor(options: MemoryNetworkOptions) {
    this.clock = options.clock;
    this.#random = options.random ?? Math.random;
    this.#faultFree = options.faultFreeFrames ?? 2;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3000;
    this.#faults = { drop: 0, latencyMs: 1, jitterMs: 0 };
    this.setFaults(options);
  }

  transport(address: string): MemoryTransport {
    return new MemoryTransport(this, address);
  }

  setFaults(faults: NetworkFaults): void {
    this.#faults = {
      drop: faults.drop ?? this.#faults.drop,
      latencyMs: faults.latencyMs ?? this.#faults.latencyMs,
      jitterMs: faults.jitterMs ?? this.#faults.jitterMs,
    };
  }

  /** Cuts every path between the two sets of hosts (addresses or bare hosts) until `heal()`. */
  partition(a: string[], b: string[]): void {
    this.#partitions.push([new Set(a.map(hostOf)), new Set(b.map(hostOf))]);
  }

  heal(): void {
    this.#partitions = [];
  }

  blocked(from: string, to: string): boolean {
    const x = hostOf(from), y = hostOf(to);
    return this.#partitions.some(([a, b]) => (a.has(x) && b.has(y)) || (a.has(y) && b.has(x)));
  }

  latency(): number {
    return this.#faults.latencyMs;
  }

  /** Carries one frame from a link end to its other end, applying the faults. */
  deliver(from: MemoryLink, frame: string | Uint8Array): void {
    const to = from.other!;
    this.frames++;
    this.bytes += typeof frame === "string" ? frame.length : frame.byteLength;
    const faulty = ++from.sent > this.#faultFree;
    if (this.blocked(from.localAddress, to.localAddress)) return;
    if (faulty && this.#faults.drop > 0 && this.#random() < this.#faults.drop) return;
    const jitter = faulty ? this.#random() * this.#faults.jitterMs : 0;
    this.clock.setTimeout(() => {
      if (!to.closed) to.onMessage?.(frame);
    }, this.#faults.latencyMs + jitter);
  }
}
