/**
 * The timers and retries of moving space between two peers. A requester asks donors in turn,
 * with one shared request per scope so that concurrent allocations wait for the same donation;
 * a donor resends a give until the recipient acknowledges it. What to ask for and what to give
 * is decided in space.ts; messages go out through `send`.
 */
import { type Cidr, formatCidr } from "../net/cidr.ts";
import type { Outgoing } from "./protocol.ts";

export interface ExchangeIo {
  send(peer: string, message: Outgoing): void;
  newId(): string;
  now(): number;
}

interface PendingRequest {
  id: string;
  sentAt: number;
  rest: string[];
  asked: string[];
  subnet: Cidr | undefined;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The requester's side: asks donors one after another until one gives. */
export class SpaceRequests {
  #io: ExchangeIo;
  #timeoutMs: number;
  #noSpace: (subnet: Cidr | undefined, asked: string[]) => Error;
  #pending = new Map<string, PendingRequest>();
  #wanted = new Map<string, Promise<void>>();

  constructor(
    io: ExchangeIo,
    options: {
      timeoutMs: number;
      /** The error when nobody gave: who was asked, and what each answered. */
      noSpace: (subnet: Cidr | undefined, asked: string[]) => Error;
    },
  ) {
    this.#io = io;
    this.#timeoutMs = options.timeoutMs;
    this.#noSpace = options.noSpace;
  }

  /** Requests in flight (a metric). */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Resolves once a donor gave space in `subnet` (or anywhere), rejects when all said no.
   * `donors` is asked for the candidates only when no request for this scope is running.
   */
  want(subnet: Cidr | undefined, donors: () => string[]): Promise<void> {
    const key = subnet ? formatCidr(subnet) : "*";
    const running = this.#wanted.get(key);
    if (running) return running;
    const request = this.#start(subnet, donors()).finally(() => this.#wanted.delete(key));
    this.#wanted.set(key, request);
    return request;
  }

  /** A give answered request `id`. */
  given(id: string): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    pending.resolve();
  }

  /** Donor `from` said no to request `id`, saying why: ask the next one. */
  refused(from: string, id: string, why: string | undefined): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    if (why) pending.asked[pending.asked.length - 1] = `${from} (${why})`;
    this.#next(pending);
  }

  /** A donor that does not answer in time is skipped. */
  tick(now: number): void {
    for (const pending of [...this.#pending.values()]) {
      if (now - pending.sentAt >= this.#timeoutMs) this.#next(pending);
    }
  }

  /** Fails every request in flight with `error`. */
  close(error: Error): void {
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }

  #start(subnet: Cidr | undefined, donors: string[]): Promise<void> {
    if (donors.length === 0) return Promise.reject(this.#noSpace(subnet, []));
    return new Promise((resolve, reject) => {
      this.#next({ id: "", sentAt: 0, rest: donors, asked: [], subnet, resolve, reject });
    });
  }

  #next(pending: PendingRequest): void {
    this.#pending.delete(pending.id);
    const donor = pending.rest.shift();
    if (donor === undefined) {
      pending.reject(this.#noSpace(pending.subnet, pending.asked));
      return;
    }
    pending.id = this.#io.newId();
    pending.sentAt = this.#io.now();
    pending.asked.push(donor);
    this.#pending.set(pending.id, pending);
    this.#io.send(donor, {
      t: "req",
      id: pending.id,
      ...(pending.subnet ? { subnet: formatCidr(pending.subnet) } : {}),
    });
  }
}

interface Handover {
  peer: string;
  sentAt: number;
  tries: number;
  maxTries: number;
  /** Called once: on the acknowledgement, or when the resends are given up. */
  done?: () => void;
}

/**
 * The donor's side: a give is already written into the donor's own state, so resending it is
 * only about the recipient hearing of it sooner than by gossip.
 */
export class Handovers {
  #io: ExchangeIo;
  #resendMs: number;
  #gives = new Map<string, Handover>();

  constructor(io: ExchangeIo, options: { resendMs: number }) {
    this.#io = io;
    this.#resendMs = options.resendMs;
  }

  /** A give with id `id` went to `peer`; resend it until acknowledged (at most `maxTries`). */
  sent(id: string, peer: string, options: { maxTries?: number; done?: () => void } = {}): void {
    this.#gives.set(id, {
      peer,
      sentAt: this.#io.now(),
      tries: 1,
      maxTries: options.maxTries ?? 10,
      done: options.done,
    });
  }

  acked(id: string): void {
    const give = this.#gives.get(id);
    this.#gives.delete(id);
    give?.done?.();
  }

  /** Resends what is due, each time with `message(id)` (the donor's current state). */
  tick(now: number, message: (id: string) => Outgoing): void {
    for (const [id, give] of this.#gives) {
      if (now - give.sentAt < this.#resendMs) continue;
      if (give.tries >= give.maxTries) {
        this.#gives.delete(id);
        give.done?.();
        continue;
      }
      give.sentAt = now;
      give.tries++;
      this.#io.send(give.peer, message(id));
    }
  }
}
