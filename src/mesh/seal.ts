/**
 * Integrity for every frame after the handshake. Each direction has its own key (from the
 * handshake) and its own sequence number; a sealed frame is
 *
 *     <tag: 16 base64url chars><seq: decimal>:<frame JSON>
 *
 * where the tag is HMAC-SHA256(key, "<seq>:<frame JSON>") cut to 96 bits. A frame whose tag
 * does not verify (tampered, spliced in from another connection or direction, or forged without
 * the key) closes the connection. A frame whose sequence number is not above the last accepted
 * one (a replay, or a copy that overtook nothing) is dropped. A gap is accepted: on TCP it means
 * a frame was deleted in transit, which is no worse than the connection being cut, and gossip
 * repairs what was lost; the in-memory network of the tests loses frames on purpose.
 */
import { Buffer } from "node:buffer";
import { createHash, type Hash, timingSafeEqual } from "node:crypto";
import { MalformedFrameError } from "./errors.ts";

const TAG_CHARS = 16;
const TAG_BYTES = 12;
const SEQ = /^(\d{1,15}):/;

/** A frame that fails its integrity check: the connection is not to be trusted any more. */
export class IntegrityError extends MalformedFrameError {
  override name = "IntegrityError";
}

export class FrameSealer {
  #sendKey: FrameMac;
  #receiveKey: FrameMac;
  #sent = 0;
  #received = 0;
  /** Frames dropped as replays or reordered copies. */
  replays = 0;

  constructor(keys: { send: Uint8Array; receive: Uint8Array }) {
    this.#sendKey = new FrameMac(keys.send);
    this.#receiveKey = new FrameMac(keys.receive);
  }

  seal(frame: string): string {
    const body = `${++this.#sent}:${frame}`;
    return this.#sendKey.tag(body) + body;
  }

  /** The frame inside a sealed text, or undefined for a replay; throws on a bad tag. */
  open(text: string): string | undefined {
    const body = text.slice(TAG_CHARS);
    const match = SEQ.exec(body.slice(0, 17));
    if (text.length < TAG_CHARS + 3 || !match) {
      throw new IntegrityError("Integrity check failed: frame not sealed");
    }
    const given = Buffer.from(text.slice(0, TAG_CHARS), "base64url");
    const expected = Buffer.from(this.#receiveKey.tag(body), "base64url");
    if (given.length !== TAG_BYTES || !timingSafeEqual(given, expected)) {
      throw new IntegrityError("Integrity check failed: bad frame tag");
    }
    const seq = Number(match[1]);
    if (seq <= this.#received) {
      this.replays++;
      return undefined;
    }
    this.#received = seq;
    return body.slice(match[0].length);
  }
}

/**
 * HMAC-SHA256 (RFC 2104) with the padded key absorbed once: each tag copies the two prepared
 * hash states instead of keying a new HMAC, which halves the cost per frame (every ping pays it).
 */
export class FrameMac {
  #inner: Hash;
  #outer: Hash;

  constructor(key: Uint8Array) {
    const block = Buffer.alloc(64);
    Buffer.from(key.length > 64 ? createHash("sha256").update(key).digest() : key).copy(block);
    const pad = (byte: number) => block.map((b) => b ^ byte);
    this.#inner = createHash("sha256").update(pad(0x36));
    this.#outer = createHash("sha256").update(pad(0x5c));
  }

  /** The full 32-byte HMAC of `text` (UTF-8). */
  digest(text: string): Buffer {
    const inner = this.#inner.copy().update(text).digest();
    return this.#outer.copy().update(inner).digest();
  }

  /** The tag a sealed frame carries: the HMAC cut to 96 bits, base64url. */
  tag(body: string): string {
    return this.digest(body).subarray(0, TAG_BYTES).toString("base64url");
  }
}
