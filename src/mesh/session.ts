/**
 * One connection's life: handshake, heartbeats, framing. The handshake is lock-step (each side
 * waits for the other's message before sending its next), so anything arriving out of turn is a
 * protocol violation and closes that connection alone; nothing about the mesh's state is sent
 * until both sides are proven. Frames are JSON text; size and shape are checked here so the mesh
 * only ever sees well-formed objects.
 */
import type { Clock, TimerId } from "./clock.ts";
import { HandshakeError, MalformedFrameError } from "./errors.ts";
import {
  checkAuthModes,
  deriveSessionKey,
  type HandshakeTranscript,
  helloMessage,
  makeProof,
  negotiateVersion,
  newNonce,
  verifyProof,
} from "./handshake.ts";
import {
  type AuthFrame,
  decodeFrame,
  encodeFrame,
  type Frame,
  type HandshakeFrame,
  PROTOCOL_RANGE,
} from "./protocol.ts";
import type { Link } from "./transport.ts";

export interface LocalPeer {
  name: string;
  nickname: string;
  incarnation: string;
  port: number;
}

export interface RemotePeer {
  name: string;
  nickname: string;
  incarnation: string;
  port: number;
}

export interface SessionOptions {
  direction: "outbound" | "inbound";
  local: () => LocalPeer;
  secret?: Uint8Array;
  clock: Clock;
  heartbeatMs: number;
  deadAfterMs: number;
  handshakeTimeoutMs: number;
  maxFrameBytes: number;
  onEstablished: (session: Session) => void;
  /** A frame after the handshake (never hello, auth, error or ping: the session handles those). */
  onFrame: (session: Session, frame: Frame) => void;
  onClosed: (session: Session, reason: string) => void;
  onBytes: (sent: number, received: number) => void;
}

type Step = "open" | "hello" | "auth" | "established" | "closed";

export class Session {
  readonly link: Link;
  readonly direction: "outbound" | "inbound";
  remote?: RemotePeer;
  sessionKey?: Uint8Array;
  protocol = 0;
  since: number;
  establishedAt?: number;
  closeReason?: string;
  #options: SessionOptions;
  #step: Step;
  #nonce = newNonce();
  #theirNonce = "";
  #lastReceived: number;
  #timer?: TimerId;

  constructor(link: Link, options: SessionOptions) {
    this.link = link;
    this.direction = options.direction;
    this.#options = options;
    this.since = this.#lastReceived = options.clock.now();
    this.#step = options.direction === "outbound" ? "open" : "hello";
    link.onOpen = () => this.#opened();
    link.onMessage = (frame) => this.#received(frame);
    link.onClose = (reason) => this.#finish(reason);
    this.#timer = options.clock.setTimeout(
      () => this.close(`handshake timed out after ${options.handshakeTimeoutMs} ms`),
      options.handshakeTimeoutMs,
    );
  }

  get established(): boolean {
    return this.#step === "established";
  }

  get closed(): boolean {
    return this.#step === "closed";
  }

  /** Sends an already-encoded frame (used to share one encoding among many neighbours). */
  sendText(text: string): void {
    if (this.#step === "closed") return;
    this.#options.onBytes(text.length, 0);
    this.link.send(text);
  }

  send(frame: Frame): void {
    this.sendText(encodeFrame(frame));
  }

  close(reason: string): void {
    if (this.#step === "closed") return;
    this.link.close(reason);
    this.#finish(reason);
  }

  #opened(): void {
    if (this.#step !== "open") return;
    this.#step = "hello";
    this.send(helloMessage(this.#nonce, { auth: this.#options.secret !== undefined }));
  }

  #received(raw: string | Uint8Array): void {
    if (this.#step === "closed") return;
    let frame: Frame;
    try {
      frame = this.#parse(raw);
    } catch (error) {
      this.close((error as Error).message);
      return;
    }
    this.#lastReceived = this.#options.clock.now();
    try {
      if (frame.t === "error") {
        throw new HandshakeError(`Refused by peer: ${String(frame.message).slice(0, 200)}`);
      }
      if (this.#step === "established") this.#established(frame);
      else this.#handshake(frame);
    } catch (error) {
      const message = (error as Error).message;
      if (error instanceof HandshakeError && frame.t !== "error") {
        this.send({ t: "error", message });
      }
      this.close(message);
    }
  }

  #parse(raw: string | Uint8Array): Frame {
    const size = typeof raw === "string" ? raw.length : raw.byteLength;
    this.#options.onBytes(0, size);
    if (typeof raw !== "string") throw new MalformedFrameError("Binary frame refused");
    if (size > this.#options.maxFrameBytes) {
      throw new MalformedFrameError(
        `Oversized frame: ${size} bytes, limit ${this.#options.maxFrameBytes}`,
      );
    }
    return decodeFrame(raw);
  }

  #transcript(clientName: string, serverName?: string): HandshakeTranscript {
    const outbound = this.direction === "outbound";
    return {
      clientNonce: outbound ? this.#nonce : this.#theirNonce,
      serverNonce: outbound ? this.#theirNonce : this.#nonce,
      clientName,
      serverName,
    };
  }

  #handshake(frame: Frame): void {
    if (this.#step === "open" || frame.t !== this.#step) {
      throw new HandshakeError(
        `Out-of-order handshake: got "${frame.t}" while expecting ${this.#step}`,
      );
    }
    this.#handshakeStep(frame as HandshakeFrame);
  }

  #handshakeStep(frame: HandshakeFrame): void {
    const secret = this.#options.secret;
    if (frame.t === "hello") {
      const hello = frame;
      this.protocol = negotiateVersion(PROTOCOL_RANGE, hello.proto);
      checkAuthModes(secret !== undefined, hello.auth);
      this.#theirNonce = hello.nonce;
      if (hello.nonce === this.#nonce) throw new HandshakeError("Peer echoed our nonce");
      this.#step = "auth";
      if (this.direction === "inbound") {
        this.send(helloMessage(this.#nonce, { auth: secret !== undefined }));
      } else {
        const local = this.#options.local();
        const auth: AuthFrame = { t: "auth", ...local };
        if (secret) {
          auth.proof = makeProof(secret, {
            role: "client",
            transcript: this.#transcript(local.name),
          });
        }
        this.send(auth);
      }
      return;
    }
    const auth = frame;
    const local = this.#options.local();
    const [clientName, serverName] = this.direction === "inbound"
      ? [auth.name, local.name]
      : [local.name, auth.name];
    if (secret) {
      const role = this.direction === "inbound" ? "client" : "server";
      const transcript = this.#transcript(clientName, role === "server" ? serverName : undefined);
      if (!verifyProof(secret, auth.proof, { role, transcript })) {
        throw new HandshakeError(`Authentication failed for peer "${auth.name}": wrong password`);
      }
      this.sessionKey = deriveSessionKey(secret, this.#transcript(clientName, serverName));
    }
    if (this.direction === "inbound") {
      const reply: AuthFrame = { t: "auth", ...local };
      if (secret) {
        reply.proof = makeProof(secret, {
          role: "server",
          transcript: this.#transcript(clientName, serverName),
        });
      }
      this.send(reply);
    }
    this.remote = {
      name: auth.name,
      nickname: auth.nickname,
      incarnation: auth.incarnation,
      port: auth.port,
    };
    this.#step = "established";
    this.establishedAt = this.#options.clock.now();
    this.#options.clock.clearTimeout(this.#timer);
    this.link.markAuthenticated?.();
    this.#heartbeat();
    this.#options.onEstablished(this);
  }

  #established(frame: Frame): void {
    // Both ends ping on their own schedule, so a ping is all the liveness either side needs;
    // no pong is sent (one accepted, for tools that send them).
    if (frame.t === "ping" || frame.t === "pong") return;
    else if (frame.t === "hello" || frame.t === "auth") {
      throw new HandshakeError(`Out-of-order handshake: "${frame.t}" after the handshake`);
    } else this.#options.onFrame(this, frame);
  }

  #heartbeat(): void {
    const { clock, heartbeatMs, deadAfterMs } = this.#options;
    if (this.#step !== "established") return;
    const silent = clock.now() - this.#lastReceived;
    if (silent >= deadAfterMs) {
      this.close(`Heartbeat timeout: nothing received for ${silent} ms`);
      return;
    }
    this.send({ t: "ping" });
    this.#timer = clock.setTimeout(() => this.#heartbeat(), heartbeatMs);
  }

  #finish(reason: string): void {
    if (this.#step === "closed") return;
    this.#step = "closed";
    this.closeReason = reason;
    this.#options.clock.clearTimeout(this.#timer);
    this.#options.onClosed(this, reason);
  }
}

/**
 * Whether `candidate` should replace `existing` as the connection to the same peer. Both ends
 * apply the same rule, so they keep the same one: a newer incarnation wins (the other is a
 * previous life's), else the connection the lower-named peer initiated.
 */
export function preferConnection(
  candidate: Session,
  existing: Session,
  options: { self: string },
): boolean {
  const a = candidate.remote!, b = existing.remote!;
  if (a.incarnation !== b.incarnation) return a.incarnation > b.incarnation;
  const initiator = (s: Session) => (s.direction === "outbound" ? options.self : s.remote!.name);
  const lower = options.self < a.name ? options.self : a.name;
  return initiator(candidate) === lower && initiator(existing) !== lower;
}
