/**
 * Best-effort messages other modules send through the mesh: to one peer hop by hop along the
 * routes (TTL-bounded, so a loop while views disagree still ends), or to every peer along the
 * broadcast tree. Nothing here is retried: the IPAM, the only user, resends on its own.
 *
 * The originator signs each message (source, destination, id, channel, payload), so the `from`
 * a handler receives is proven, however many peers relayed it: a receiver delivers a message
 * only if the key bound to its source signed it. Ids are the originator's incarnation and a
 * counter; a sliding window per source drops copies (disagreeing broadcast trees) and replays
 * of old messages alike, in bounded memory. Relays forward without checking: only the
 * destination acts on a unicast, and the TTL bounds what a forger can make them carry.
 */
import {
  type BroadcastFrame,
  MESSAGE_ID,
  type MessageFrame,
  messageSigningBytes,
} from "./protocol.ts";
import type { RouteTable } from "./routes.ts";
import type { Session } from "./session.ts";
import type { MessageHandler } from "./types.ts";

const MESSAGE_TTL = 32;
/** Message ids this far below the newest from a source are too old to accept. */
const WINDOW = 1024;

export interface MessengerOptions {
  name: string;
  /** The current incarnation: message ids are unique across restarts. */
  incarnation(): string;
  /** Connected peers and their sessions. */
  neighbours(): ReadonlyMap<string, Session>;
  /** The neighbour to hand a message for `peer` to, if any. */
  nextHop(peer: string): string | undefined;
  /** Up-to-date routes (for the broadcast tree). */
  routes(): RouteTable;
  sign(data: Uint8Array): string;
  /** Whether the key bound to `name` made `signature` over `data`. */
  verify(name: string, data: Uint8Array, signature: string): boolean;
  log(message: string): void;
}

/** The ids seen from one source (in its current incarnation). */
interface Window {
  incarnation: string;
  highest: number;
  seen: Set<number>;
}

export class Messenger {
  #options: MessengerOptions;
  #handlers = new Map<string, MessageHandler[]>();
  #seq = 0;
  #windows = new Map<string, Window>();
  /** Messages dropped because their signature did not check out. */
  forged = 0;

  constructor(options: MessengerOptions) {
    this.#options = options;
  }

  onMessage(channel: string, handler: MessageHandler): void {
    const list = this.#handlers.get(channel) ?? [];
    list.push(handler);
    this.#handlers.set(channel, list);
  }

  send(peer: string, channel: string, payload: string): boolean {
    const name = this.#options.name;
    if (peer === name) {
      this.#deliver(channel, payload, name);
      return true;
    }
    const message = { src: name, dst: peer, id: this.#newId(), ch: channel, p: payload };
    const sig = this.#options.sign(messageSigningBytes(message));
    return this.#forward({ t: "msg", ...message, ttl: MESSAGE_TTL, sig });
  }

  broadcast(channel: string, payload: string): void {
    const message = { src: this.#options.name, id: this.#newId(), ch: channel, p: payload };
    const sig = this.#options.sign(messageSigningBytes(message));
    this.#fanOut({ t: "bcast", ...message, sig }, undefined);
  }

  receiveMessage(frame: MessageFrame): void {
    const { dst, ttl } = frame;
    if (dst === this.#options.name) {
      if (this.#accept(frame)) this.#deliver(frame.ch, frame.p, frame.src);
    } else if (ttl > 1) {
      // A hostile TTL is capped so a routing loop during convergence still ends quickly.
      this.#forward({ ...frame, ttl: Math.min(ttl, MESSAGE_TTL) - 1 });
    }
  }

  receiveBroadcast(session: Session, frame: BroadcastFrame): void {
    if (frame.src === this.#options.name || !this.#accept(frame)) return;
    this.#deliver(frame.ch, frame.p, frame.src);
    this.#fanOut(frame, session.remote!.name);
  }

  #newId(): string {
    return `${this.#options.incarnation()}.${++this.#seq}`;
  }

  /** New (by the source's window) and signed by the source's key; then remembered. */
  #accept(frame: MessageFrame | BroadcastFrame): boolean {
    const [, incarnation, counter] = MESSAGE_ID.exec(frame.id)!;
    const seq = Number(counter);
    const window = this.#windows.get(frame.src);
    const fresh = !window || incarnation > window.incarnation ||
      (incarnation === window.incarnation && seq > window.highest - WINDOW &&
        !window.seen.has(seq));
    if (!fresh) return false;
    const dst = frame.t === "msg" ? frame.dst : undefined;
    if (!this.#options.verify(frame.src, messageSigningBytes({ ...frame, dst }), frame.sig)) {
      if (this.forged++ === 0 || this.forged % 1000 === 0) {
        this.#options.log(
          `dropped a ${frame.t} on "${frame.ch}" in the name of ${frame.src}: not signed by ` +
            `the key bound to that name, or the name is not known here yet (${this.forged} so far)`,
        );
      }
      return false;
    }
    this.#remember(frame.src, incarnation, seq);
    return true;
  }

  #remember(src: string, incarnation: string, seq: number): void {
    let window = this.#windows.get(src);
    if (!window || incarnation > window.incarnation) {
      window = { incarnation, highest: 0, seen: new Set() };
      this.#windows.set(src, window);
    }
    window.seen.add(seq);
    if (seq > window.highest) window.highest = seq;
    if (window.seen.size > 2 * WINDOW) {
      for (const s of window.seen) if (s <= window.highest - WINDOW) window.seen.delete(s);
    }
  }

  #forward(frame: MessageFrame): boolean {
    const hop = this.#options.nextHop(frame.dst);
    const session = hop === undefined ? undefined : this.#options.neighbours().get(hop);
    if (!session) return false;
    session.send(frame);
    return true;
  }

  /** Sends a frame to the broadcast tree neighbours and unplaced neighbours, except `from`. */
  #fanOut(frame: BroadcastFrame, from: string | undefined): void {
    const { treeNeighbors, reachable } = this.#options.routes();
    const text = JSON.stringify(frame);
    for (const [peer, session] of this.#options.neighbours()) {
      if (peer === from || (!treeNeighbors.has(peer) && reachable.has(peer))) continue;
      session.sendText(text);
    }
  }

  #deliver(channel: string, payload: string, from: string): void {
    for (const handler of this.#handlers.get(channel) ?? []) {
      try {
        handler(payload, from);
      } catch (error) {
        this.#options.log(`handler for channel "${channel}" failed: ${(error as Error).message}`);
      }
    }
  }
}
