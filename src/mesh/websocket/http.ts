/**
 * The HTTP/1.1 Upgrade that opens a WebSocket (RFC 6455 section 4), and nothing else of HTTP.
 *
 * The server reads one request head, at most `maxHeadBytes`, answers 101 or an error and never
 * reads a body; the client sends one request and checks the 101. Parsing is strict (one space
 * between request-line parts, no whitespace before a header's colon, no folded lines, the
 * handshake headers exactly once) because a lenient parser is where request smuggling and
 * ambiguity live, and the only client we serve is our own. Reading is separate from parsing so
 * the parsers are tested without sockets.
 */
import { createHash } from "node:crypto";

/** The path peers dial: `ws[s]://host:port/weft/mesh`. */
export const MESH_PATH = "/weft/mesh";

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A Sec-WebSocket-Key is base64 of 16 bytes. */
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
const MAX_HEADERS = 64;

/** The head could not be read or is not an acceptable upgrade; says why, for the log. */
export class UpgradeError extends Error {
  override name = "UpgradeError";
}

/** A refusal the server sends back before closing: status, reason phrase, plain-text body. */
export interface HttpRefusal {
  status: number;
  reason: string;
  message: string;
  headers?: Record<string, string>;
}

interface Head {
  startLine: string;
  /** Lower-cased names; every value of a repeated header. */
  headers: Map<string, string[]>;
}

const latin1 = new TextDecoder("latin1");

/**
 * Reads until the blank line that ends a head; returns the head's text and whatever bytes came
 * after it (the first WebSocket frames, when the other side did not wait). `read` is a socket's
 * read; the caller bounds the time.
 */
export async function readHead(
  read: (buffer: Uint8Array) => Promise<number | null>,
  options: { maxHeadBytes: number },
): Promise<{ head: string; rest: Uint8Array }> {
  // a real upgrade head is a few hundred bytes: start small, grow up to the cap, so a flood of
  // connections does not allocate the cap for each
  let buffer = new Uint8Array(Math.min(1024, options.maxHeadBytes));
  let have = 0;
  while (true) {
    if (have === buffer.byteLength) {
      if (have >= options.maxHeadBytes) {
        throw new UpgradeError(`Request head over ${options.maxHeadBytes} bytes`);
      }
      const larger = new Uint8Array(Math.min(2 * have, options.maxHeadBytes));
      larger.set(buffer);
      buffer = larger;
    }
    const n = await read(buffer.subarray(have));
    if (n === null) {
      throw new UpgradeError(
        have === 0 ? "Connection closed before a request" : "Connection closed mid-head",
      );
    }
    // look for CRLFCRLF only where it can newly end: from 3 bytes before this read's start
    const from = Math.max(0, have - 3);
    have += n;
    for (let i = from; i + 3 < have; i++) {
      if (
        buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10
      ) {
        return {
          head: latin1.decode(buffer.subarray(0, i)),
          rest: buffer.slice(i + 4, have),
        };
      }
    }
  }
}

function parseHead(text: string): Head | string {
  const lines = text.split("\r\n");
  const startLine = lines[0];
  if (lines.length - 1 > MAX_HEADERS) return `More than ${MAX_HEADERS} header lines`;
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) return `Malformed header line "${line.slice(0, 60)}"`;
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    // control characters other than tab have no place in a value (a bare LF would split it)
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return `Control character in header ${name}`;
    const key = name.toLowerCase();
    headers.set(key, [...(headers.get(key) ?? []), value]);
  }
  return { startLine, headers };
}

function tokens(head: Head, name: string): string[] {
  return (head.headers.get(name) ?? []).flatMap((v) => v.split(",")).map((t) =>
    t.trim().toLowerCase()
  );
}

function single(head: Head, name: string): string | undefined {
  const values = head.headers.get(name);
  return values?.length === 1 ? values[0] : undefined;
}

/** `Sec-WebSocket-Accept` for a key. */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + WEBSOCKET_GUID).digest("base64");
}

/** A fresh `Sec-WebSocket-Key`. */
export function newKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

const refuse = (
  status: number,
  reason: string,
  message: string,
  headers?: Record<string, string>,
): HttpRefusal => ({ status, reason, message, headers });

/**
 * Judges a request head: the client's key when it is a WebSocket upgrade of the mesh path, else
 * the refusal to send. Anything that is not an upgrade at all gets 426, as before.
 */
export function parseUpgradeRequest(text: string): { key: string } | HttpRefusal {
  const head = parseHead(text);
  if (typeof head === "string") return refuse(400, "Bad Request", head);
  const start = /^([A-Z]+) (\S+) HTTP\/(\d\.\d)$/.exec(head.startLine);
  if (!start) return refuse(400, "Bad Request", "Malformed request line");
  const [, method, target, version] = start;
  if (version !== "1.1") {
    return refuse(505, "HTTP Version Not Supported", "Upgrade needs HTTP/1.1");
  }
  if (!tokens(head, "upgrade").includes("websocket")) {
    return refuse(426, "Upgrade Required", "weft mesh: WebSocket only", {
      upgrade: "websocket",
      connection: "Upgrade",
    });
  }
  if (method !== "GET") return refuse(405, "Method Not Allowed", "Upgrade with GET only");
  if (target !== MESH_PATH) {
    return refuse(404, "Not Found", `No WebSocket at ${target.slice(0, 60)}`);
  }
  if (single(head, "host") === undefined) {
    return refuse(400, "Bad Request", "Exactly one Host header needed");
  }
  if (!tokens(head, "connection").includes("upgrade")) {
    return refuse(400, "Bad Request", "Connection header lacks Upgrade");
  }
  if (head.headers.has("content-length") || head.headers.has("transfer-encoding")) {
    return refuse(400, "Bad Request", "An upgrade request has no body");
  }
  if (single(head, "sec-websocket-version") !== "13") {
    return refuse(426, "Upgrade Required", "WebSocket version 13 only", {
      "sec-websocket-version": "13",
    });
  }
  const key = single(head, "sec-websocket-key");
  if (key === undefined || !KEY.test(key)) {
    return refuse(400, "Bad Request", "Missing or malformed Sec-WebSocket-Key");
  }
  return { key };
}

/** The 101 that completes the server's side. */
export function upgradeResponse(key: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`;
}

/** A refusal as bytes to write before closing. */
export function refusalResponse(refusal: HttpRefusal): string {
  const body = refusal.message + "\n";
  const extra = Object.entries(refusal.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `HTTP/1.1 ${refusal.status} ${refusal.reason}\r\ncontent-type: text/plain\r\n` +
    `content-length: ${new TextEncoder().encode(body).byteLength}\r\n${extra}` +
    `connection: close\r\n\r\n${body}`;
}

/** The client's request; `host` is the `host:port` it dials. */
export function upgradeRequest(host: string, key: string): string {
  return `GET ${MESH_PATH} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** Checks the server's answer to `upgradeRequest`; throws `UpgradeError` saying what is wrong. */
export function checkUpgradeResponse(text: string, key: string): void {
  const head = parseHead(text);
  if (typeof head === "string") throw new UpgradeError(`Bad upgrade response: ${head}`);
  const status = /^HTTP\/1\.1 (\d{3})(?: (.*))?$/.exec(head.startLine);
  if (!status) {
    throw new UpgradeError(`Bad upgrade response: "${head.startLine.slice(0, 60)}"`);
  }
  if (status[1] !== "101") {
    throw new UpgradeError(`Upgrade refused: HTTP ${status[1]} ${(status[2] ?? "").slice(0, 80)}`);
  }
  if (!tokens(head, "upgrade").includes("websocket")) {
    throw new UpgradeError("Bad upgrade response: no Upgrade: websocket");
  }
  if (!tokens(head, "connection").includes("upgrade")) {
    throw new UpgradeError("Bad upgrade response: no Connection: Upgrade");
  }
  if (single(head, "sec-websocket-accept") !== acceptFor(key)) {
    throw new UpgradeError("Bad upgrade response: wrong Sec-WebSocket-Accept");
  }
  for (const name of ["sec-websocket-extensions", "sec-websocket-protocol"]) {
    if (head.headers.has(name)) {
      throw new UpgradeError(`Bad upgrade response: ${name} that was not offered`);
    }
  }
}
