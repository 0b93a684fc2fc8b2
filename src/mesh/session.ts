/**
 * One connection's life: handshake, heartbeats, framing. The handshake is lock-step (each side
 * waits for the other's message before sending its next), so anything arriving out of turn is a
 * protocol violation and closes that connection alone; nothing about the mesh's state is sent
 * until both sides are proven. Every frame after the handshake is sealed (`seal.ts`) with the
 * connection's keys: a frame that fails the check closes the connection, a replay is dropped.
 * Frames are JSON text; size and shape are checked here (through `protocol.ts`) so the mesh
 * only ever sees well-formed, authentic frames.
 *
 *     client                                   server
 *     hello {proto, nonce_c, auth, dh_c}   ->
 *                                          <-  hello {proto, nonce_s, auth, dh_s}
 *     auth {name, incarnation, port, key_c,
 *           sig_c, proof_c?}               ->  (checks sig_c and proof_c first)
 *                                          <-  auth {..., key_s, sig_s, proof_s?}
 *     sealed frames both ways
 */
import type { Clock, TimerId } from "./clock.ts";
import { HandshakeError, MalformedFrameError } from "./errors.ts";
import {
  checkAuthModes,
  type ConnectionKeys,
  deriveKeys,
  type Ephemeral,
  type HandshakeTranscript,
  helloMessage,
  makeProof,
  negotiateVersion,
  newEphemeral,
  newNonce,
  type PeerClaims,
  sharedSecret,
  transcriptBytes,
  verifyProof,
} from "./handshake.ts";
import type { SignatureScheme } from "./keys.ts";
import {
  type AuthFrame,
  decodeFrame,
  encodeFrame,
  type Frame,
  type HelloFrame,
  PROTOCOL_RANGE,
} from "./protocol.ts";
import { FrameSealer } from "./seal.ts";
import type { Link } from "./transport.ts";

export interface LocalPeer {
  name: string;
  nickname: string;
  incarnation: string;
  port: number;
}

export interface RemotePeer extends LocalPeer {
  /** Its identity key, proven in the handshake (whether it may use that name is the mesh's call). */
  key: string;
}

export interface SessionOptions {
  direction: "outbound" | "inbound";
  local: () => LocalPeer;
  /** This peer's identity key (signs the transcript) and how others' signatures are checked. */
  identity: SignatureScheme;
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
  /** The data path's key for this connection; only with a password. */
  sessionKey?: Uint8Array;
  protocol = 0;
  since: number;
  establishedAt?: number;
  closeReason?: string;
  /** What the other side said when it refused this connection (its error frame's code). */
  refusal?: string;
  #options: SessionOptions;
  #step: Step;
  #nonce = newNonce();
  #ephemeral: Ephemeral = newEphemeral();
  #hello?: HelloFrame;
  #clientClaims?: PeerClaims;
  #sealer?: FrameSealer;
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

  /** Frames dropped as replays or reordered copies on this connection. */
  get replays(): number {
    return this.#sealer?.replays ?? 0;
  }

  /** Sends an already-encoded frame (used to share one encoding among many neighbours). */
  sendText(text: string): void {
    if (this.#step === "closed") return;
    const wire = this.#sealer ? this.#sealer.seal(text) : text;
    this.#options.onBytes(wire.length, 0);
    this.link.send(wire);
  }

  send(frame: Frame): void {
    this.sendText(encodeFrame(frame));
  }

  close(reason: string): void {
    if (this.#step === "closed") return;
    this.link.close(reason);
    this.#finish(reason);
  }

  /** Tells the other side why (with a code it can act on), then closes. */
  refuse(code: string, message: string): void {
    this.send({ t: "error", code, message });
    this.close(message);
  }

  #opened(): void {
    if (this.#step !== "open") return;
    this.#step = "hello";
    this.send(this.#helloFrame());
  }

  #helloFrame(): HelloFrame {
    const auth = this.#options.secret !== undefined;
    return helloMessage(this.#nonce, { auth, dh: this.#ephemeral.publicKey });
  }

  #received(raw: string | Uint8Array): void {
    if (this.#step === "closed") return;
    let frame: Frame;
    try {
      const text = this.#open(raw);
      if (text === undefined) return;
      frame = decodeFrame(text);
    } catch (error) {
      this.close((error as Error).message);
      return;
    }
    this.#lastReceived = this.#options.clock.now();
    try {
      if (frame.t === "error") {
        this.refusal = frame.code;
        throw new HandshakeError(`Refused by peer: ${frame.message.slice(0, 200)}`);
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

  /** The frame's text: size-checked, and unsealed once the handshake is done. */
  #open(raw: string | Uint8Array): string | undefined {
    const size = typeof raw === "string" ? raw.length : raw.byteLength;
    this.#options.onBytes(0, size);
    if (typeof raw !== "string") throw new MalformedFrameError("Binary frame refused");
    if (size > this.#options.maxFrameBytes) {
      throw new MalformedFrameError(
        `Oversized frame: ${size} bytes, limit ${this.#options.maxFrameBytes}`,
      );
    }
    return this.#sealer ? this.#sealer.open(raw) : raw;
  }

  #handshake(frame: Frame): void {
    if (this.#step === "open" || frame.t !== this.#step) {
      throw new HandshakeError(
        `Out-of-order handshake: got "${frame.t}" while expecting ${this.#step}`,
      );
    }
    if (frame.t === "hello") this.#receiveHello(frame);
    else this.#receiveAuth(frame as AuthFrame);
  }

  #receiveHello(hello: HelloFrame): void {
    this.protocol = negotiateVersion(PROTOCOL_RANGE, hello.proto);
    checkAuthModes(this.#options.secret !== undefined, hello.auth);
    if (hello.nonce === this.#nonce) throw new HandshakeError("Peer echoed our nonce");
    this.#hello = hello;
    this.#step = "auth";
    if (this.direction === "inbound") {
      this.send(this.#helloFrame());
      return;
    }
    const claims = this.#claims();
    this.send(this.#authFrame("client", this.#transcript(claims)));
  }

  #receiveAuth(auth: AuthFrame): void {
    const remote: PeerClaims = {
      name: auth.name,
      incarnation: auth.incarnation,
      port: auth.port,
      key: auth.key,
    };
    const inbound = this.direction === "inbound";
    const client = inbound ? remote : this.#clientClaims!;
    const transcript = this.#transcript(client, inbound ? undefined : remote);
    const role = inbound ? "client" : "server";
    const secret = this.#options.secret;
    // The password first: without it, nothing about this peer (not even its name) is revealed.
    if (secret && !verifyProof(secret, auth.proof, { role, transcript })) {
      throw new HandshakeError(`Authentication failed for peer "${auth.name}": wrong password`);
    }
    if (!this.#options.identity.verify(auth.key, transcriptBytes(role, transcript), auth.sig)) {
      throw new HandshakeError(`Identity proof failed for peer "${auth.name}": bad signature`);
    }
    const full = inbound ? { ...transcript, server: this.#claims() } : transcript;
    if (inbound) this.send(this.#authFrame("server", full));
    const keys: ConnectionKeys = deriveKeys(
      sharedSecret(this.#ephemeral, this.#hello!.dh),
      { secret, transcript: full },
    );
    this.#sealer = new FrameSealer(
      inbound
        ? { send: keys.serverToClient, receive: keys.clientToServer }
        : { send: keys.clientToServer, receive: keys.serverToClient },
    );
    this.sessionKey = keys.session;
    this.remote = { ...remote, nickname: auth.nickname };
    this.#step = "established";
    this.establishedAt = this.#options.clock.now();
    this.#options.clock.clearTimeout(this.#timer);
    // CONTRACTS #3: the transport moves this socket to the authenticated budget.
    this.link.markAuthenticated?.();
    this.#heartbeat();
    this.#options.onEstablished(this);
  }

  /** This side's claims; remembered on the client, which signs them before the server names itself. */
  #claims(): PeerClaims {
    const local = this.#options.local();
    const claims = {
      name: local.name,
      incarnation: local.incarnation,
      port: local.port,
      key: this.#options.identity.publicKey,
    };
    if (this.direction === "outbound") this.#clientClaims = claims;
    return claims;
  }

  #transcript(client: PeerClaims, server?: PeerClaims): HandshakeTranscript {
    const outbound = this.direction === "outbound";
    const ours = this.#ephemeral.publicKey, theirs = this.#hello!.dh;
    return {
      clientNonce: outbound ? this.#nonce : this.#hello!.nonce,
      serverNonce: outbound ? this.#hello!.nonce : this.#nonce,
      clientDh: outbound ? ours : theirs,
      serverDh: outbound ? theirs : ours,
      client,
      server,
    };
  }

  #authFrame(role: "client" | "server", transcript: HandshakeTranscript): AuthFrame {
    const local = this.#options.local();
    const { identity, secret } = this.#options;
    const auth: AuthFrame = {
      t: "auth",
      ...local,
      key: identity.publicKey,
      sig: identity.sign(transcriptBytes(role, transcript)),
    };
    if (secret) auth.proof = makeProof(secret, { role, transcript });
    return auth;
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
