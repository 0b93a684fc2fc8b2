/**
 * A test double that plays an insider: it knows the password and has an identity key of its own,
 * and speaks the mesh protocol with its own small state machine (not Session), so tests can make
 * it do what an honest peer never would: gossip records in another peer's name, replay old
 * ones, tamper with sealed frames, claim a name with another key. Only the cryptographic
 * primitives (handshake.ts, seal.ts) are shared with the real thing.
 */
import {
  deriveKeys,
  type Ephemeral,
  type HandshakeTranscript,
  helloMessage,
  makeProof,
  newEphemeral,
  newNonce,
  type PeerClaims,
  sharedSecret,
  transcriptBytes,
} from "./handshake.ts";
import { IdentityKey } from "./keys.ts";
import { decodeFrame, type Frame, type HelloFrame } from "./protocol.ts";
import { FrameSealer } from "./seal.ts";
import type { Link, Transport } from "./transport.ts";

export interface InsiderOptions {
  name: string;
  password?: string;
  key?: IdentityKey;
  incarnation?: string;
  port?: number;
}

export class InsiderClient {
  readonly key: IdentityKey;
  /** Frames received after the handshake, decoded. */
  readonly received: Frame[] = [];
  /** Set once the handshake completed. */
  ready = false;
  /** Why the link closed, once it has. */
  closed?: string;
  #link: Link;
  #options: InsiderOptions;
  #nonce = newNonce();
  #ephemeral: Ephemeral = newEphemeral();
  #claims: PeerClaims;
  #hello?: HelloFrame;
  #sealer?: FrameSealer;
  #queue: string[] = [];

  constructor(transport: Transport, address: string, options: InsiderOptions) {
    this.#options = options;
    this.key = options.key ?? IdentityKey.generate();
    this.#claims = {
      name: options.name,
      incarnation: options.incarnation ?? "00000001aaaaaaaa",
      port: options.port ?? 6783,
      key: this.key.publicKey,
    };
    this.#link = transport.dial(address);
    this.#link.onOpen = () => this.#raw(JSON.stringify(this.#helloFrame()));
    this.#link.onMessage = (data) => this.#received(String(data));
    this.#link.onClose = (reason) => (this.closed = reason);
  }

  /** Sends a frame (sealed once the handshake is done; queued until then). */
  send(frame: unknown): void {
    const text = JSON.stringify(frame);
    if (this.#sealer) this.#raw(this.#sealer.seal(text));
    else this.#queue.push(text);
  }

  /** Seals a frame without sending it (to replay or tamper with it later). */
  seal(frame: unknown): string {
    return this.#sealer!.seal(JSON.stringify(frame));
  }

  /** Sends text exactly as given. */
  sendRaw(text: string): void {
    this.#raw(text);
  }

  close(): void {
    this.#link.close("insider done");
  }

  #raw(text: string): void {
    this.#link.send(text);
  }

  #helloFrame(): HelloFrame {
    const auth = this.#options.password !== undefined;
    return helloMessage(this.#nonce, { auth, dh: this.#ephemeral.publicKey });
  }

  #transcript(server?: PeerClaims): HandshakeTranscript {
    return {
      clientNonce: this.#nonce,
      serverNonce: this.#hello!.nonce,
      clientDh: this.#ephemeral.publicKey,
      serverDh: this.#hello!.dh,
      client: this.#claims,
      server,
    };
  }

  #received(text: string): void {
    if (this.#sealer) {
      const opened = this.#sealer.open(text);
      if (opened !== undefined) this.received.push(decodeFrame(opened));
      return;
    }
    const frame = decodeFrame(text);
    const secret = this.#options.password === undefined
      ? undefined
      : new TextEncoder().encode(this.#options.password);
    if (frame.t === "hello") {
      this.#hello = frame;
      const transcript = this.#transcript();
      this.#raw(JSON.stringify({
        t: "auth",
        name: this.#claims.name,
        nickname: "insider",
        incarnation: this.#claims.incarnation,
        port: this.#claims.port,
        key: this.key.publicKey,
        sig: this.key.sign(transcriptBytes("client", transcript)),
        ...(secret ? { proof: makeProof(secret, { role: "client", transcript }) } : {}),
      }));
    } else if (frame.t === "auth") {
      const server = {
        name: frame.name,
        incarnation: frame.incarnation,
        port: frame.port,
        key: frame.key,
      };
      const keys = deriveKeys(sharedSecret(this.#ephemeral, this.#hello!.dh), {
        secret,
        transcript: this.#transcript(server),
      });
      this.#sealer = new FrameSealer({ send: keys.clientToServer, receive: keys.serverToClient });
      this.ready = true;
      for (const queued of this.#queue) this.#raw(this.#sealer.seal(queued));
      this.#queue = [];
    } else {
      this.received.push(frame);
    }
  }
}
