/**
 * Best-effort messages other modules send through the mesh: to one peer hop by hop along the
 * routes (TTL-bounded, so a loop while views disagree still ends), or to every peer along the
 * broadcast tree (each peer drops ids it has seen, so disagreeing trees cannot make a broadcast
 * loop or arrive twice). Nothing here is retried: the IPAM, the only user, resends on its own.
 */
import type { BroadcastFrame, Frame, MessageFrame } from "./protocol.ts";
import type { RouteTable } from "./routes.ts";
import type { Session } from "./session.ts";
import type { MessageHandler } from "./types.ts";

const MESSAGE_TTL = 32;
/** Broadcast ids remembered to drop copies that arrive twice while trees disagree. */
const SEEN_BROADCASTS = 4096;

export interface MessengerOptions {
  name: string;
  /** The current incarnation: broadcast ids are unique across restarts. */
  incarnation(): string;
  /** Connected peers and their sessions. */
  neighbours(): ReadonlyMap<string, Session>;
  /** The neighbour to hand a message for `peer` to, if any. */
  nextHop(peer: string): string | undefined;
  /** Up-to-date routes (for the broadcast tree). */
  routes(): RouteTable;
  log(message: string): void;
}

export class Messenger {
  #options: MessengerOptions;
  #handlers = new Map<string, MessageHandler[]>();
  #broadcastSeq = 0;
  #seenBroadcasts = new Set<string>();

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
    return this.#forward({
      t: "msg",
      src: name,
      dst: peer,
      ch: channel,
      p: payload,
      ttl: MESSAGE_TTL,
    });
  }

  broadcast(channel: string, payload: string): void {
    const name = this.#options.name;
    const id = `${this.#options.incarnation()}.${++this.#broadcastSeq}`;
    this.#remember(`${name}/${id}`);
    this.#fanOut({ t: "bcast", src: name, id, ch: channel, p: payload }, undefined);
  }

  receiveMessage(frame: MessageFrame): void {
    const { dst, ttl } = frame;
    if (dst === this.#options.name) this.#deliver(frame.ch, frame.p, frame.src);
    // A hostile TTL is capped so a routing loop during convergence still ends quickly.
    else if (ttl > 1) this.#forward({ ...frame, ttl: Math.min(ttl, MESSAGE_TTL) - 1 });
  }

  receiveBroadcast(session: Session, frame: BroadcastFrame): void {
    const { src, id } = frame;
    if (src === this.#options.name || !this.#remember(`${src}/${id}`)) return;
    this.#deliver(frame.ch, frame.p, src);
    this.#fanOut(frame, session.remote!.name);
  }

  #forward(frame: MessageFrame): boolean {
    const hop = this.#options.nextHop(frame.dst);
    const session = hop === undefined ? undefined : this.#options.neighbours().get(hop);
    if (!session) return false;
    session.send(frame);
    return true;
  }

  /** Records a broadcast id; false if it was already seen. Oldest ids are forgotten first. */
  #remember(key: string): boolean {
    if (this.#seenBroadcasts.has(key)) return false;
    this.#seenBroadcasts.add(key);
    if (this.#seenBroadcasts.size > SEEN_BROADCASTS) {
      this.#seenBroadcasts.delete(this.#seenBroadcasts.values().next().value!);
    }
    return true;
  }

  /** Sends a frame to the broadcast tree neighbours and unplaced neighbours, except `from`. */
  #fanOut(frame: Frame, from: string | undefined): void {
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
