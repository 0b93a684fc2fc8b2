/**
 * RFC 6455 framing, pure: an incremental decoder fed whatever bytes the socket returned, and an
 * encoder. No extensions are negotiated, so every frame must have its RSV bits clear.
 *
 * The decoder is strict because the bytes come from anyone who reaches the port: a server
 * requires masked frames and a client unmasked ones, control frames are at most 125 bytes and
 * unfragmented, lengths use their shortest encoding, text is valid UTF-8, close codes are ones
 * the protocol allows. Every violation is a `WebSocketProtocolError` carrying the close code to
 * answer with. Size is judged from the header alone: a frame that would take its message past
 * `maxMessageBytes` fails before one byte of its payload is read, and payloads are kept as the
 * pieces actually received, so memory follows what a sender really sent, never what it claimed.
 */

export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

const KNOWN_OPCODES = new Set<number>(Object.values(Opcode));

export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  noStatus: 1005,
  invalidData: 1007,
  policy: 1008,
  tooBig: 1009,
  internalError: 1011,
} as const;

/** Control frame payloads (ping, pong, close) are at most this long. */
export const MAX_CONTROL_PAYLOAD = 125;
/** A close reason is what is left of a control payload after the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2;

/** The other side broke the protocol; `code` is the close code to send it. */
export class WebSocketProtocolError extends Error {
  override name = "WebSocketProtocolError";
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

export type WebSocketEvent =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  /** `code` is absent when the close frame carried none (1005 in the RFC's terms). */
  | { type: "close"; code?: number; reason: string };

export interface FrameDecoderOptions {
  /** A server expects masked frames (they come from clients), a client unmasked ones. */
  role: "server" | "client";
  /** Largest data message, all fragments together; may be changed between frames. */
  maxMessageBytes: number;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new WebSocketProtocolError(`${what} is not valid UTF-8`, CloseCode.invalidData);
  }
}

/** Close codes a peer may send (RFC 6455 7.4, plus the registered 1012-1014 and private use). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

function concat(pieces: Uint8Array[], total: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.byteLength;
  }
  return out;
}

interface FrameHeader {
  fin: boolean;
  opcode: number;
  mask?: Uint8Array;
  length: number;
}

export class FrameDecoder {
  /** Raised by the transport once the other side has authenticated. */
  maxMessageBytes: number;
  readonly #role: "server" | "client";
  /** Header bytes gathered so far (at most 2 + 8 + 4). */
  #head = new Uint8Array(14);
  #headHave = 0;
  /** The frame whose payload is being read, if any. */
  #frame?: FrameHeader;
  #framePieces: Uint8Array[] = [];
  #frameRemaining = 0;
  #maskOffset = 0;
  /** The data message being reassembled from fragments: its opcode, or 0 for none. */
  #messageOpcode = 0;
  #messagePieces: Uint8Array[] = [];
  #messageBytes = 0;
  /** Set after a close frame or an error: nothing more is decoded. */
  #done = false;

  constructor(options: FrameDecoderOptions) {
    this.#role = options.role;
    this.maxMessageBytes = options.maxMessageBytes;
  }

  /** True once a close frame was decoded or the stream was found broken. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Decodes `bytes`, calling `onEvent` for each complete message or control frame in order.
   * The callback may raise `maxMessageBytes` or call `stop()`; both take effect at the next
   * frame. Throws `WebSocketProtocolError` on the first violation, after which the decoder is
   * done. `bytes` may be reused by the caller afterwards: payloads are copied.
   */
  push(bytes: Uint8Array, onEvent: (event: WebSocketEvent) => void): void {
    let offset = 0;
    try {
      while (!this.#done && offset < bytes.byteLength) {
        if (this.#frame === undefined) {
          offset = this.#readHeader(bytes, offset);
          if (this.#frame !== undefined && this.#frameRemaining === 0) this.#complete(onEvent);
        } else {
          const take = Math.min(this.#frameRemaining, bytes.byteLength - offset);
          const piece = bytes.slice(offset, offset + take);
          this.#unmask(piece);
          this.#framePieces.push(piece);
          this.#frameRemaining -= take;
          offset += take;
          if (this.#frameRemaining === 0) this.#complete(onEvent);
        }
      }
    } catch (error) {
      this.#done = true;
      throw error;
    }
  }

  /** Ignores everything from now on (after a close, or when the connection is dropped). */
  stop(): void {
    this.#done = true;
    this.#framePieces = [];
    this.#messagePieces = [];
  }

  /** Consumes header bytes from `bytes` at `offset`; sets `#frame` once the header is whole. */
  #readHeader(bytes: Uint8Array, offset: number): number {
    const need = () => {
      if (this.#headHave < 2) return 2;
      const short = this.#head[1] & 0x7f;
      const extended = short === 126 ? 2 : short === 127 ? 8 : 0;
      return 2 + extended + ((this.#head[1] & 0x80) ? 4 : 0);
    };
    while (offset < bytes.byteLength && this.#headHave < need()) {
      this.#head[this.#headHave++] = bytes[offset++];
      // the first two bytes already tell most violations: refuse before waiting for more
      if (this.#headHave === 2) this.#checkFirstBytes();
    }
    if (this.#headHave === need()) {
      this.#frame = this.#parseHeader();
      this.#frameRemaining = this.#frame.length;
      this.#maskOffset = 0;
      this.#framePieces = [];
      this.#headHave = 0;
    }
    return offset;
  }

  #checkFirstBytes(): void {
    const [b0, b1] = this.#head;
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const masked = (b1 & 0x80) !== 0;
    const short = b1 & 0x7f;
    const fail = (message: string) => {
      throw new WebSocketProtocolError(message, CloseCode.protocolError);
    };
    if (b0 & 0x70) fail("Reserved bits set without a negotiated extension");
    const control = opcode >= 0x8;
    if (!KNOWN_OPCODES.has(opcode)) fail(`Unknown opcode 0x${opcode.toString(16)}`);
    if (this.#role === "server" && !masked) fail("Unmasked frame from a client");
    if (this.#role === "client" && masked) fail("Masked frame from a server");
    if (control && !fin) fail("Fragmented control frame");
    if (control && short > MAX_CONTROL_PAYLOAD) {
      fail(`Control frame of more than ${MAX_CONTROL_PAYLOAD} bytes`);
    }
    if (opcode === Opcode.continuation && this.#messageOpcode === 0) {
      fail("Continuation frame without a message to continue");
    }
    if ((opcode === Opcode.text || opcode === Opcode.binary) && this.#messageOpcode !== 0) {
      fail("New message while a fragmented one is unfinished");
    }
  }

  #parseHeader(): FrameHeader {
    const head = this.#head;
    const view = new DataView(head.buffer);
    const short = head[1] & 0x7f;
    let length = short;
    let at = 2;
    const fail = (message: string) => {
      throw new WebSocketProtocolError(message, CloseCode.protocolError);
    };
    if (short === 126) {
      length = view.getUint16(2);
      at = 4;
      if (length < 126) fail("Length not in its shortest form");
    } else if (short === 127) {
      const high = view.getUint32(2);
      if (high & 0x80000000) fail("Length with its most significant bit set");
      // anything past 2^53 is over every limit anyway; keep the arithmetic exact
      length = Math.min(high, 0x1fffff) * 2 ** 32 + view.getUint32(6);
      at = 10;
      if (length < 65536) fail("Length not in its shortest form");
    }
    const opcode = head[0] & 0x0f;
    if (opcode < 0x8 && this.#messageBytes + length > this.maxMessageBytes) {
      const total = this.#messageBytes + length;
      throw new WebSocketProtocolError(
        this.#messageBytes > 0
          ? `Fragmented message of ${total} bytes so far exceeds the limit of ${this.maxMessageBytes}`
          : `Frame of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`,
        CloseCode.tooBig,
      );
    }
    const mask = (head[1] & 0x80) ? head.slice(at, at + 4) : undefined;
    return { fin: (head[0] & 0x80) !== 0, opcode, mask, length };
  }

  #unmask(piece: Uint8Array): void {
    const mask = this.#frame!.mask;
    if (!mask) return;
    let m = this.#maskOffset;
    for (let i = 0; i < piece.byteLength; i++) {
      piece[i] ^= mask[m];
      m = (m + 1) & 3;
    }
    this.#maskOffset = m;
  }

  #complete(onEvent: (event: WebSocketEvent) => void): void {
    const frame = this.#frame!;
    const payload = concat(this.#framePieces, frame.length);
    this.#frame = undefined;
    this.#framePieces = [];
    switch (frame.opcode) {
      case Opcode.ping:
        return onEvent({ type: "ping", data: payload });
      case Opcode.pong:
        return onEvent({ type: "pong", data: payload });
      case Opcode.close:
        return onEvent(this.#close(payload));
    }
    if (frame.opcode !== Opcode.continuation) this.#messageOpcode = frame.opcode;
    if (payload.byteLength > 0) this.#messagePieces.push(payload);
    this.#messageBytes += payload.byteLength;
    if (!frame.fin) return;
    const message = concat(this.#messagePieces, this.#messageBytes);
    const opcode = this.#messageOpcode;
    this.#messageOpcode = 0;
    this.#messagePieces = [];
    this.#messageBytes = 0;
    if (opcode === Opcode.text) {
      onEvent({ type: "text", data: decodeUtf8(message, "Text message") });
    } else onEvent({ type: "binary", data: message });
  }

  #close(payload: Uint8Array): WebSocketEvent {
    this.stop();
    if (payload.byteLength === 0) return { type: "close", reason: "" };
    if (payload.byteLength === 1) {
      throw new WebSocketProtocolError(
        "Close frame with a 1-byte payload",
        CloseCode.protocolError,
      );
    }
    const code = (payload[0] << 8) | payload[1];
    if (!isValidCloseCode(code)) {
      throw new WebSocketProtocolError(`Invalid close code ${code}`, CloseCode.protocolError);
    }
    return { type: "close", code, reason: decodeUtf8(payload.subarray(2), "Close reason") };
  }
}

/** One frame; clients pass `mask: true` (a fresh random key per frame, as the RFC requires). */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  options: { mask: boolean; fin?: boolean },
): Uint8Array {
  const length = payload.byteLength;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const maskBytes = options.mask ? 4 : 0;
  const start = 2 + extended + maskBytes;
  const out = new Uint8Array(start + length);
  const view = new DataView(out.buffer);
  out[0] = ((options.fin ?? true) ? 0x80 : 0) | opcode;
  const maskBit = options.mask ? 0x80 : 0;
  if (extended === 0) out[1] = maskBit | length;
  else if (extended === 2) {
    out[1] = maskBit | 126;
    view.setUint16(2, length);
  } else {
    out[1] = maskBit | 127;
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  out.set(payload, start);
  if (options.mask) {
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, start - 4);
    for (let i = 0; i < length; i++) out[start + i] ^= key[i & 3];
  }
  return out;
}

const encoder = new TextEncoder();

/** A close frame; the reason is cut to what fits, never inside a character. */
export function encodeClose(code: number, reason: string, options: { mask: boolean }): Uint8Array {
  let bytes = encoder.encode(reason);
  if (bytes.byteLength > MAX_CLOSE_REASON_BYTES) {
    let end = MAX_CLOSE_REASON_BYTES;
    // back off continuation bytes (10xxxxxx) so the cut lands on a character boundary
    while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
    bytes = bytes.subarray(0, end);
  }
  const payload = new Uint8Array(2 + bytes.byteLength);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(bytes, 2);
  return encodeFrame(Opcode.close, payload, options);
}
