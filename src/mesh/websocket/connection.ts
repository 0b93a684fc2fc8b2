/**
 * One WebSocket over one upgraded socket, seen by the mesh as a `Link`.
 *
 * Two lifetimes meet here. The Link's ends when `onClose` fires (the mesh forgets it); the
 * socket's ends when its file descriptor is closed (the transport releases its budget in
 * `onGone`). Between the two lies the close handshake: a close frame out, the peer's back, then
 * the socket is closed, and never later than `closeTimeoutMs` after the Link ended, so a peer
 * that stops reading or never answers cannot keep a descriptor.
 *
 * Until the mesh calls `markAuthenticated()` a link accepts messages of at most
 * `preAuthMessageBytes` (the handshake's messages are small) and must authenticate before its
 * deadline; afterwards the mesh's own frame limit applies and its heartbeats judge liveness.
 * Writes go through one queue whose size is bounded: a peer that does not read is dropped
 * rather than buffered for.
 */
import type { Link } from "../transport.ts";
import {
  CloseCode,
  encodeClose,
  encodeFrame,
  FrameDecoder,
  Opcode,
  type WebSocketEvent,
  WebSocketProtocolError,
} from "./frame.ts";

/** Read buffer before authentication (the handshake's messages are small), and after. */
const READ_BYTES_UNAUTHENTICATED = 4 * 1024;
const READ_BYTES = 64 * 1024;
/** Small frames queued together are written with one call, up to this much. */
const WRITE_BATCH_BYTES = 64 * 1024;
const encoder = new TextEncoder();

export interface WebSocketLinkOptions {
  role: "server" | "client";
  /** Largest message accepted before the mesh marks the link authenticated. */
  preAuthMessageBytes: number;
  /** Largest message accepted afterwards (the mesh's frame limit). */
  maxMessageBytes: number;
  /** Bytes waiting to be written beyond which the link is dropped. */
  maxQueuedBytes: number;
  closeTimeoutMs: number;
  /** Moves the socket to the authenticated budget; a string is the refusal (limit reached). */
  authenticate: () => string | undefined;
  /** The socket is closed for good. */
  onGone: () => void;
}

type Phase = "connecting" | "open" | "closing" | "gone";

/** Writes all of `bytes`; a socket's write may take only part. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) at += await conn.write(bytes.subarray(at));
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class WebSocketLink implements Link {
  onOpen?: () => void;
  onMessage?: (frame: string | Uint8Array) => void;
  onClose?: (reason: string) => void;
  /** Aborted when the link is closed while still connecting: the dialler stops. */
  readonly abort = new AbortController();
  readonly #options: WebSocketLinkOptions;
  readonly #decoder: FrameDecoder;
  #phase: Phase = "connecting";
  /** The Link has ended (onClose queued); the socket may still be closing. */
  #ended = false;
  #authenticated = false;
  #conn?: Deno.Conn;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  #dropAfterFlush = false;
  #closeTimer?: ReturnType<typeof setTimeout>;
  #authTimer?: ReturnType<typeof setTimeout>;
  #reading: Promise<void> = Promise.resolve();
  #pumping: Promise<void> = Promise.resolve();
  /** Resolves when the socket is closed (or there never was one). */
  #dropped: Promise<void>;
  #settle!: () => void;

  constructor(readonly remoteAddress: string, options: WebSocketLinkOptions) {
    this.#options = options;
    this.#decoder = new FrameDecoder({
      role: options.role,
      maxMessageBytes: options.preAuthMessageBytes,
    });
    this.#dropped = new Promise((resolve) => this.#settle = resolve);
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  /** Resolves once the socket is closed and its reads and writes have returned. */
  get settled(): Promise<void> {
    return this.#dropped.then(() => Promise.all([this.#reading, this.#pumping])).then(() => {});
  }

  /**
   * Starts on an upgraded socket. `rest` holds bytes read past the upgrade's head;
   * `authDeadlineMs` is how long the mesh has left to authenticate the link.
   */
  attach(conn: Deno.Conn, options: { rest: Uint8Array; authDeadlineMs: number }): void {
    this.#conn = conn;
    if (this.#ended) {
      // closed while connecting: nothing to say to the peer
      this.#drop();
      return;
    }
    this.#phase = "open";
    this.#authTimer = setTimeout(
      () => this.#fail(CloseCode.policy, "Not authenticated in time"),
      Math.max(0, options.authDeadlineMs),
    );
    this.#pumping = this.#pump();
    // opened before anything is read, so the first frame never finds the mesh unready
    if (this.#options.role === "client") this.onOpen?.();
    this.#reading = this.#readLoop(options.rest);
  }

  /** A dial that never got a socket: the link ends with the dialler's reason. */
  fail(reason: string): void {
    this.#finish(reason);
    this.#phase = "gone";
    this.#settle();
  }

  send(frame: string): void {
    if (this.#ended) return;
    const mask = this.#options.role === "client";
    this.#enqueue(encodeFrame(Opcode.text, encoder.encode(frame), { mask }));
  }

  close(reason = "closed locally"): void {
    if (this.#ended) return;
    if (this.#phase === "connecting") {
      this.#finish(reason);
      this.abort.abort();
      return;
    }
    this.#sendClose(CloseCode.normal, reason, { waitForPeer: true });
    this.#finish(reason);
  }

  /** Contract: the mesh's handshake succeeded; raises limits, or refuses over the budget. */
  markAuthenticated(): void {
    if (this.#authenticated || this.#ended) return;
    const refusal = this.#options.authenticate();
    if (refusal !== undefined) {
      this.#fail(CloseCode.policy, refusal);
      return;
    }
    this.#authenticated = true;
    clearTimeout(this.#authTimer);
    this.#decoder.maxMessageBytes = this.#options.maxMessageBytes;
  }

  /** Ends the link and closes the socket now, without a close handshake. */
  destroy(reason: string): void {
    this.#finish(reason);
    if (this.#phase === "connecting") this.abort.abort();
    else this.#drop();
  }

  async #readLoop(rest: Uint8Array): Promise<void> {
    if (rest.byteLength > 0) this.#feed(rest);
    let buffer = new Uint8Array(READ_BYTES_UNAUTHENTICATED);
    while (this.#phase !== "gone" && !this.#decoder.done) {
      if (this.#authenticated && buffer.byteLength < READ_BYTES) {
        buffer = new Uint8Array(READ_BYTES);
      }
      let n: number | null;
      try {
        n = await this.#conn!.read(buffer);
      } catch (error) {
        this.#lost(`Connection lost: ${errorText(error)}`);
        return;
      }
      if (n === null) {
        this.#lost("Connection closed by peer without a close frame");
        return;
      }
      this.#feed(buffer.subarray(0, n));
    }
  }

  #feed(bytes: Uint8Array): void {
    try {
      this.#decoder.push(bytes, (event) => this.#event(event));
    } catch (error) {
      // anything else is a bug of ours: it ends this connection, never the read loop's promise
      if (error instanceof WebSocketProtocolError) this.#fail(error.code, error.message);
      else this.#fail(CloseCode.internalError, `Internal error: ${errorText(error)}`);
    }
  }

  #event(event: WebSocketEvent): void {
    switch (event.type) {
      case "text":
      case "binary":
        if (!this.#ended) this.#deliver(event.data);
        return;
      case "ping":
        if (this.#phase === "open") {
          const mask = this.#options.role === "client";
          this.#enqueue(encodeFrame(Opcode.pong, event.data, { mask }));
        }
        return;
      case "pong":
        return;
      case "close":
        if (this.#phase === "closing") {
          // the answer to our close: the handshake is complete
          this.#drop();
          return;
        }
        this.#sendClose(event.code ?? CloseCode.normal, "", { waitForPeer: false });
        this.#finish(event.reason || `Closed by peer (code ${event.code ?? CloseCode.noStatus})`);
    }
  }

  #deliver(data: string | Uint8Array): void {
    try {
      this.onMessage?.(data);
    } catch (error) {
      // the mesh handles its own errors; one that escapes must not kill the read loop
      this.#decoder.stop();
      this.#fail(CloseCode.internalError, `Message handler failed: ${errorText(error)}`);
    }
  }

  /** Closes for a reason of ours: a close frame with `code`, then the socket. */
  #fail(code: number, reason: string): void {
    if (this.#phase === "open") this.#sendClose(code, reason, { waitForPeer: false });
    this.#finish(reason);
  }

  #sendClose(code: number, reason: string, options: { waitForPeer: boolean }): void {
    if (this.#phase !== "open") return;
    this.#phase = "closing";
    clearTimeout(this.#authTimer);
    const mask = this.#options.role === "client";
    this.#enqueue(encodeClose(code, reason, { mask }));
    if (!options.waitForPeer) {
      this.#decoder.stop();
      this.#dropAfterFlush = true;
      if (!this.#writing) this.#drop();
    }
    // in every case the socket is gone by this deadline, answered or not, flushed or not
    this.#closeTimer = setTimeout(() => this.#drop(), this.#options.closeTimeoutMs);
  }

  #enqueue(bytes: Uint8Array): void {
    if (this.#phase === "gone") return;
    if (this.#queuedBytes + bytes.byteLength > this.#options.maxQueuedBytes) {
      this.#lost(`Peer is not reading: over ${this.#options.maxQueuedBytes} bytes queued`);
      return;
    }
    this.#queue.push(bytes);
    this.#queuedBytes += bytes.byteLength;
    if (!this.#writing) this.#pumping = this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#writing || this.#conn === undefined || this.#phase === "connecting") return;
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && this.#phase !== "gone") {
        const batch = this.#takeBatch();
        await writeAll(this.#conn, batch);
        this.#queuedBytes -= batch.byteLength;
      }
    } catch (error) {
      this.#lost(`Connection lost: ${errorText(error)}`);
      return;
    } finally {
      this.#writing = false;
    }
    if (this.#dropAfterFlush) this.#drop();
  }

  #takeBatch(): Uint8Array {
    const first = this.#queue.shift()!;
    if (first.byteLength >= WRITE_BATCH_BYTES || this.#queue.length === 0) return first;
    let size = first.byteLength;
    let count = 0;
    while (
      count < this.#queue.length && size + this.#queue[count].byteLength <= WRITE_BATCH_BYTES
    ) size += this.#queue[count++].byteLength;
    const batch = new Uint8Array(size);
    batch.set(first);
    let at = first.byteLength;
    for (const piece of this.#queue.splice(0, count)) {
      batch.set(piece, at);
      at += piece.byteLength;
    }
    return batch;
  }

  #lost(reason: string): void {
    this.#finish(reason);
    this.#drop();
  }

  #finish(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    queueMicrotask(() => this.onClose?.(reason));
  }

  #drop(): void {
    if (this.#phase === "gone") return;
    this.#phase = "gone";
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#authTimer);
    this.#decoder.stop();
    this.#queue = [];
    this.#queuedBytes = 0;
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#options.onGone();
    this.#settle();
  }
}
