/**
 * A minimal HTTP/1.1 client over a plain TCP connection, for the plugin's few loopback calls.
 *
 * Why not fetch: the first fetch in a process builds a full HTTP client (connection pool,
 * TLS roots, proxy settings from the environment), which costs more than the rest of a CNI
 * ADD, and it would route loopback calls through an HTTP_PROXY a runtime may have set. One
 * request per connection (`Connection: close`), reading to EOF, keeps the parser tiny.
 * Both also keep the plugin clear of Deno's Node compatibility layer (docs/footprint.md).
 */

export interface HttpAnswer {
  status: number;
  body: string;
}

export class HttpProtocolError extends Error {
  constructor(readonly target: string, detail: string) {
    super(`Unreadable HTTP answer from ${target}: ${detail}`);
    this.name = "HttpProtocolError";
  }
}

export interface HttpRequestOptions {
  method: string;
  path: string;
  /** JSON text to send. */
  body?: string;
  timeoutMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends one request to `host:port` and reads the whole answer. */
export async function httpRequest(
  hostPort: string,
  options: HttpRequestOptions,
): Promise<HttpAnswer> {
  const colon = hostPort.lastIndexOf(":");
  const hostname = hostPort.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = Number(hostPort.slice(colon + 1));
  const conn = await Deno.connect({ hostname, port });
  // AbortSignal.timeout, not setTimeout: in this Deno the global setTimeout is node:timers,
  // whose first use loads the Node compatibility layer (~20 modules, tens of milliseconds)
  const deadline = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  const onDeadline = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  deadline.addEventListener("abort", onDeadline, { once: true });
  try {
    const body = options.body === undefined ? undefined : encoder.encode(options.body);
    const head = [
      `${options.method} ${options.path} HTTP/1.1`,
      `Host: ${hostPort}`,
      "Connection: close",
      "Accept: application/json",
      ...(body ? ["Content-Type: application/json", `Content-Length: ${body.length}`] : []),
      "",
      "",
    ].join("\r\n");
    await writeAll(conn, encoder.encode(head));
    if (body) await writeAll(conn, body);
    const raw = await readAll(conn);
    return parseAnswer(raw, hostPort);
  } finally {
    deadline.removeEventListener("abort", onDeadline);
    try {
      conn.close();
    } catch {
      // closed by the timer or the peer
    }
  }
}

/** Parses a complete HTTP/1.1 response (content-length, chunked, or read-to-EOF bodies). */
export function parseAnswer(raw: Uint8Array, target = "the server"): HttpAnswer {
  const end = indexOfHeaderEnd(raw);
  if (end < 0) throw new HttpProtocolError(target, "no end of headers");
  const lines = decoder.decode(raw.subarray(0, end)).split("\r\n");
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!statusMatch) throw new HttpProtocolError(target, `bad status line "${lines[0]}"`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  let payload = raw.subarray(end + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    payload = dechunk(payload, target);
  } else if (headers.has("content-length")) {
    payload = payload.subarray(0, Number(headers.get("content-length")));
  }
  return { status: Number(statusMatch[1]), body: decoder.decode(payload) };
}

function indexOfHeaderEnd(raw: Uint8Array): number {
  for (let i = 0; i + 3 < raw.length; i++) {
    if (raw[i] === 13 && raw[i + 1] === 10 && raw[i + 2] === 13 && raw[i + 3] === 10) return i;
  }
  return -1;
}

function dechunk(data: Uint8Array, target: string): Uint8Array {
  const parts: Uint8Array[] = [];
  let offset = 0;
  while (offset < data.length) {
    let lineEnd = offset;
    while (lineEnd + 1 < data.length && !(data[lineEnd] === 13 && data[lineEnd + 1] === 10)) {
      lineEnd++;
    }
    const size = parseInt(decoder.decode(data.subarray(offset, lineEnd)).split(";")[0], 16);
    if (Number.isNaN(size)) throw new HttpProtocolError(target, "bad chunk size");
    if (size === 0) break;
    const start = lineEnd + 2;
    parts.push(data.subarray(start, start + size));
    offset = start + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let rest = bytes;
  while (rest.length) rest = rest.subarray(await conn.write(rest));
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(16 * 1024);
  let total = 0;
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(buffer.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
