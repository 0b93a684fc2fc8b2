/**
 * What this peer says to the others, in one place: its ring state, broadcast when it changed
 * (or when the periodic gossip forces it), and unicast messages stamped with its generation
 * and a fresh id. Everything goes through the `IpamTransport` the agent adapts from the mesh.
 */
import type { IpamTransport } from "./cluster_types.ts";
import { encodeMessage, type Outgoing } from "./protocol.ts";
import { encodeRing, type RingState } from "./ring.ts";

export class IpamWire {
  #transport: IpamTransport;
  #me: string;
  #gen: () => number;
  #now: () => number;
  #random: () => number;
  #lastBroadcast = "";
  #lastGossipAt = -Infinity;

  constructor(
    transport: IpamTransport,
    options: { me: string; gen: () => number; now: () => number; random: () => number },
  ) {
    this.#transport = transport;
    this.#me = options.me;
    this.#gen = options.gen;
    this.#now = options.now;
    this.#random = options.random;
  }

  /** When our state last went out (the periodic gossip counts from it). */
  get lastGossipAt(): number {
    return this.#lastGossipAt;
  }

  /** Gossips `state`; unless `force`d, only when it differs from what we last sent. */
  broadcast(state: RingState, force: boolean): void {
    const encoded = encodeRing(state);
    if (!force && encoded === this.#lastBroadcast) return;
    this.#lastBroadcast = encoded;
    this.#lastGossipAt = this.#now();
    this.#transport.broadcast(encoded);
  }

  send(peer: string, message: Outgoing): void {
    this.#transport.send(peer, encodeMessage(message, this.#gen()));
  }

  /** A request id nobody else uses: our name and 48 random bits. */
  newId(): string {
    return `${this.#me}-${Math.floor(this.#random() * 2 ** 48).toString(36)}`;
  }

  now(): number {
    return this.#now();
  }

  /** The peers the mesh can reach now. */
  reachable(): Set<string> {
    return new Set(this.#transport.peers().filter((p) => p.reachable).map((p) => p.name));
  }
}
