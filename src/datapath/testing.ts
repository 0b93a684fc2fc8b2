/**
 * Test doubles of the data path, for tests and simulations elsewhere (import this file, never
 * mod.ts, for them): production code has no use for a data path that moves no frames.
 */
import { decodePeerBlob, encodePeerBlob, type PeerBlob } from "./blob.ts";
import type { Datapath, DatapathPeer, Endpoint, PeerPathStatus } from "./types.ts";

export interface MemoryDatapathOptions {
  /** Underlay address put in our blob. */
  ip?: string;
  bridgeMac?: string;
  bridgeIp?: string;
  mtu?: number;
  /** Require encryption with every peer, as the kernel data path's `encrypt`. */
  encrypt?: boolean;
}

/**
 * A data path that moves no frames: it keeps what the agent told it and reports paths by the
 * same rules as the kernel one (encrypted pairs on sleeve, mesh next hops as relays), so the
 * agent's wiring can be tested without namespaces. Blobs are decoded for real, so an agent that
 * passes the wrong string fails here as it would on a node.
 */
export class MemoryDatapath implements Datapath {
  #options: Required<MemoryDatapathOptions>;
  #endpoints: Endpoint[] = [];
  #peers = new Map<string, { peer: DatapathPeer; blob: PeerBlob }>();
  #started = false;

  constructor(options: MemoryDatapathOptions = {}) {
    this.#options = {
      ip: options.ip ?? "192.0.2.1",
      bridgeMac: options.bridgeMac ?? "0a:58:0a:20:00:01",
      bridgeIp: options.bridgeIp ?? "10.32.0.1",
      mtu: options.mtu ?? 1450,
      encrypt: options.encrypt ?? false,
    };
  }

  get started(): boolean {
    return this.#started;
  }

  start(): Promise<void> {
    this.#started = true;
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#started = false;
    this.#peers.clear();
    return Promise.resolve();
  }

  localData(): string {
    return encodePeerBlob({
      v: 1,
      ip: this.#options.ip,
      vxlanPort: 6784,
      udpPort: 6783,
      vni: 1,
      bridgeMac: this.#options.bridgeMac,
      bridgeIp: this.#options.bridgeIp,
      underlayMtu: this.#options.mtu + 50,
      endpoints: this.#endpoints,
    });
  }

  setLocalEndpoints(entries: Endpoint[]): void {
    this.#endpoints = entries.map((e) => ({ ...e }));
  }

  upsertPeer(peer: DatapathPeer): Promise<void> {
    try {
      this.#peers.set(peer.name, { peer: { ...peer }, blob: decodePeerBlob(peer.data) });
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  removePeer(name: string): Promise<void> {
    this.#peers.delete(name);
    return Promise.resolve();
  }

  /** The endpoints a peer announced, as the kernel data path would program them. */
  peerEndpoints(name: string): Endpoint[] | undefined {
    return this.#peers.get(name)?.blob.endpoints;
  }

  status(): PeerPathStatus[] {
    return [...this.#peers.values()].map(({ peer, blob }) => {
      const encrypted = this.#options.encrypt || peer.sessionKey !== undefined;
      const relayed = peer.nextHop !== undefined && peer.nextHop !== peer.name;
      return {
        peer: peer.name,
        path: relayed ? "relay" : encrypted ? "sleeve" : "fastdp",
        encrypted,
        reason: relayed
          ? `relayed via ${peer.nextHop} (in memory)`
          : encrypted
          ? "encryption required and VXLAN is not encrypted (in memory)"
          : "in memory",
        mtu: Math.min(this.#options.mtu, blob.underlayMtu - 50),
        healthy: true,
      };
    });
  }

  mtu(): number {
    return this.#options.mtu;
  }
}
