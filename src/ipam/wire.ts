/**
 * What this peer says to the others, in one place: its ring state, broadcast when it changed
 * (or when the periodic gossip forces it), and unicast messages stamped with its generation
 * and a fresh id. Everything goes through the `IpamTransport` the agent adapts from the mesh.
 *
 * A unicast message travels in an envelope signed by its sender, and is opened only when the
 * signature is the named sender's and the mesh says it came from that sender: a relaying peer
 * cannot ask for space, acknowledge a give or answer in another peer's name. A space request
 * is answered once per id (a replayed one is dropped). States need no envelope: every part of
 * them is signed by its writer (authority.ts).
 */
import type { PeerSigner } from "./authority.ts";
import type { IpamTransport } from "./cluster_types.ts";
import { decodeMessage, encodeMessage, type Message, type Outgoing } from "./protocol.ts";
import type { RingState } from "./ring.ts";
import { encodeRing } from "./ring_codec.ts";

const encoder = new TextEncoder();
/** How many request ids are remembered to drop replays. */
const SEEN_REQUESTS = 4096;

function envelopeBytes(from: string, body: string): Uint8Array {
  return encoder.encode(`weft-ipam-message-v1\n${from}\n${body}`);
}

export class IpamWire {
  #transport: IpamTransport;
  #me: string;
  #gen: () => number;
  #now: () => number;
  #random: () => number;
  #signer: PeerSigner;
  #seenRequests = new Set<string>();
  #lastBroadcast = "";
  #lastGossipAt = -Infinity;

  constructor(
    transport: IpamTransport,
    options: {
      me: string;
      gen: () => number;
      now: () => number;
      random: () => number;
      signer: PeerSigner;
    },
  ) {
    this.#signer = options.signer;
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
    const body = encodeMessage(message, this.#gen());
    const sig = this.#signer.sign(envelopeBytes(this.#me, body));
    this.#transport.send(peer, JSON.stringify({ from: this.#me, body, sig }));
  }

  /**
   * The message in envelope `text` that the mesh delivered from `from`, or why it is refused:
   * not an envelope, not signed by `from`, not a message, or a request answered before.
   */
  open(from: string, text: string): Message | { refused: string } {
    let envelope: { from?: unknown; body?: unknown; sig?: unknown };
    try {
      envelope = JSON.parse(text);
    } catch {
      return { refused: "not an IPAM message" };
    }
    const { body, sig } = envelope ?? {};
    if (envelope?.from !== from || typeof body !== "string" || typeof sig !== "string") {
      return { refused: "not an IPAM message from this peer" };
    }
    if (!this.#signer.verify(from, envelopeBytes(from, body), sig)) {
      return { refused: "not signed by this peer" };
    }
    const message = decodeMessage(body);
    if (!message) return { refused: "not an IPAM message" };
    if (message.t === "req") {
      const key = `${from}\u0000${message.id}`;
      if (this.#seenRequests.has(key)) return { refused: `request ${message.id} answered before` };
      this.#seenRequests.add(key);
      if (this.#seenRequests.size > SEEN_REQUESTS) {
        this.#seenRequests.delete(this.#seenRequests.values().next().value!);
      }
    }
    return message;
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
