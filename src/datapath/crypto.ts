/**
 * Sleeve encryption. ChaCha20-Poly1305 rather than AES-GCM: on the runtime we ship, ChaCha is
 * about ten times faster (measured: 6.4 vs 0.6 Gbit/s per core for 64 KB datagrams).
 *
 * Each direction of a peer pair gets its own key, derived with HKDF from the mesh session key and
 * the two names, so the two ends never encrypt under the same (key, nonce) even though both
 * count from 1. The nonce is that 64-bit counter, carried in clear in the datagram header and
 * covered by the tag; a sliding window rejects replays and very old datagrams. A new session key
 * (a new mesh handshake) gives new keys and restarts the counters.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";

const CIPHER = "chacha20-poly1305";
export const TAG_BYTES = 16;
const SALT = "weft sleeve v1";

export interface DirectionKeys {
  send: Uint8Array;
  receive: Uint8Array;
}

function derive(sessionKey: Uint8Array, info: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", sessionKey, SALT, info, 32));
}

/** Keys for `local` talking to `remote`; `remote` derives the mirror image from the same secret. */
export function deriveDirectionKeys(
  sessionKey: Uint8Array,
  names: { local: string; remote: string },
): DirectionKeys {
  if (sessionKey.length < 16) {
    throw new RangeError(`Session key too short: ${sessionKey.length} bytes, need at least 16`);
  }
  return {
    send: derive(sessionKey, `${names.local}>${names.remote}`),
    receive: derive(sessionKey, `${names.remote}>${names.local}`),
  };
}

/** Window size of a ReplayWindow, in counters. */
export const REPLAY_WINDOW = 4096;
/** Bytes of shared memory one ReplayWindow needs: its highest counter, then its bitmap. */
export const REPLAY_WINDOW_BYTES = 8 + REPLAY_WINDOW / 8;

/**
 * Remembers which counters were seen recently; anything older than the window is refused. Kept
 * in a SharedArrayBuffer when given one, so the thread that takes over receiving from another
 * (the main thread hands the socket to a worker and back) continues the same window: a restart
 * of the receiver must not reopen the door to datagrams that were already accepted.
 */
export class ReplayWindow {
  #highest: Float64Array;
  #bits: Uint32Array;
  #size = REPLAY_WINDOW;

  constructor(shared?: SharedArrayBuffer) {
    const memory = shared ?? new ArrayBuffer(REPLAY_WINDOW_BYTES);
    if (memory.byteLength < REPLAY_WINDOW_BYTES) {
      throw new RangeError(`Replay window memory too small: ${memory.byteLength} bytes`);
    }
    this.#highest = new Float64Array(memory, 0, 1);
    this.#bits = new Uint32Array(memory, 8, REPLAY_WINDOW / 32);
  }

  #bit(counter: number): [number, number] {
    const slot = counter % this.#size;
    return [slot >>> 5, 1 << (slot & 31)];
  }

  /** True when `counter` is new and inside the window (does not record it). */
  fresh(counter: number): boolean {
    const highest = this.#highest[0];
    if (counter <= 0) return false;
    if (counter > highest) return true;
    if (highest - counter >= this.#size) return false;
    const [word, mask] = this.#bit(counter);
    return (this.#bits[word] & mask) === 0;
  }

  /** Records `counter`; call only after the datagram authenticated. */
  record(counter: number): void {
    const highest = this.#highest[0];
    if (counter > highest) {
      if (counter - highest >= this.#size) {
        this.#bits.fill(0);
      } else {
        for (let c = highest + 1; c < counter; c++) {
          const [word, mask] = this.#bit(c);
          this.#bits[word] &= ~mask;
        }
      }
      this.#highest[0] = counter;
    }
    const [word, mask] = this.#bit(counter);
    this.#bits[word] |= mask;
  }
}

function nonceFor(counter: number): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, BigInt(counter));
  return nonce;
}

/** The clear datagram header (authenticated, not encrypted) and the nonce counter in it. */
export interface SealContext {
  header: Uint8Array;
  counter: number;
}

/** One peer pair's sealing state: a send counter, the receive window, both keys. */
export class SleeveCipher {
  #keys: DirectionKeys;
  #counter: BigInt64Array;
  #window: ReplayWindow;

  /**
   * `counter` (8 bytes) lets several threads seal for the same peer: they draw nonces from one
   * atomic counter, so no nonce is ever used twice under a key. `window` (REPLAY_WINDOW_BYTES)
   * carries the receive window from one receiving thread to the next.
   */
  constructor(
    keys: DirectionKeys,
    options: { counter?: SharedArrayBuffer; window?: SharedArrayBuffer } = {},
  ) {
    this.#keys = keys;
    this.#counter = new BigInt64Array(options.counter ?? new ArrayBuffer(8));
    this.#window = new ReplayWindow(options.window);
  }

  nextCounter(): number {
    return Number(Atomics.add(this.#counter, 0, 1n)) + 1;
  }

  /** Encrypts `plaintext` under `counter`, authenticating `header`; returns ciphertext + tag. */
  seal(plaintext: Uint8Array, { header, counter }: SealContext): Uint8Array {
    const cipher = createCipheriv(CIPHER, this.#keys.send, nonceFor(counter), {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(header, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    const last = cipher.final();
    const tag = cipher.getAuthTag();
    const out = new Uint8Array(body.length + last.length + TAG_BYTES);
    out.set(body, 0);
    out.set(last, body.length);
    out.set(tag, body.length + last.length);
    return out;
  }

  /** Decrypts and checks; undefined for a forged, corrupted, replayed or too old datagram. */
  open(sealed: Uint8Array, { header, counter }: SealContext): Uint8Array | undefined {
    if (sealed.length < TAG_BYTES || !this.#window.fresh(counter)) return undefined;
    const decipher = createDecipheriv(CIPHER, this.#keys.receive, nonceFor(counter), {
      authTagLength: TAG_BYTES,
    });
    const bodyLength = sealed.length - TAG_BYTES;
    decipher.setAAD(header, { plaintextLength: bodyLength });
    decipher.setAuthTag(sealed.subarray(bodyLength));
    let plain: Uint8Array;
    try {
      const first = decipher.update(sealed.subarray(0, bodyLength));
      const last = decipher.final();
      // A plain view, not a Buffer: callers compare and slice it as a Uint8Array.
      plain = last.length === 0
        ? new Uint8Array(first.buffer, first.byteOffset, first.length)
        : new Uint8Array([...first, ...last]);
    } catch {
      return undefined;
    }
    this.#window.record(counter);
    return plain;
  }
}
