/**
 * A client that attacks the mesh port the ways issue #10 found, without the password: it keeps
 * `connections` sockets busy for `durationMs`, reopening each one the server closes, and reports
 * what the server did to them. Modes:
 *
 *   held-upgrade  completes the WebSocket upgrade, sends a hello (claiming a password, as the
 *                 victim expects), then says nothing: the victim answers and waits
 *   silent-tcp    connects and sends nothing at all
 *   slowloris     sends a request head one header line at a time, slowly, never finishing it
 *   oversize      upgrades, then sends a frame header announcing `announceBytes` (64 MiB) and
 *                 streams payload into it for as long as the server lets it
 *
 * Used in-process by tests/mesh_websocket_test.ts and as a program inside a lab namespace by
 * tests/lab_hostile_mesh_test.ts:
 *   deno run -A tests/support/hostile.ts '{"target":"192.168.77.11:6783","mode":"held-upgrade",...}'
 * which prints the report as one JSON line.
 */
import { helloMessage, newEphemeral, newNonce } from "../../src/mesh/handshake.ts";
import {
  encodeFrame,
  FrameDecoder,
  Opcode,
  type WebSocketEvent,
} from "../../src/mesh/websocket/frame.ts";
import { newKey, readHead, upgradeRequest } from "../../src/mesh/websocket/http.ts";

export type AttackMode = "held-upgrade" | "silent-tcp" | "slowloris" | "oversize";

export interface AttackOptions {
  /** `host:port`, `[v6]:port`. */
  target: string;
  mode: AttackMode;
  /** Sockets kept busy at once. */
  connections: number;
  durationMs: number;
  /** Pause before reopening a socket the server closed (keeps a shared machine usable). */
  reopenDelayMs?: number;
  /** slowloris: time between header lines. */
  slowIntervalMs?: number;
  /** oversize: the payload length the frame header announces. */
  announceBytes?: number;
  /** held-upgrade: claim a password in the hello (default true: a victim with one holds it). */
  helloAuth?: boolean;
  /** Gives up a connect after this long (a firewall that drops SYNs). Default 3 s. */
  connectTimeoutMs?: number;
}

export interface AttackReport {
  mode: AttackMode;
  /** Connections the server accepted (TCP level). */
  opened: number;
  connectFailures: number;
  /** Connections the server ended (EOF, reset, close frame) before the attack did. */
  closedByServer: number;
  /** Most sockets open at once, as the attacker saw them. */
  peakOpen: number;
  /** Upgrades answered with 101. */
  upgraded: number;
  /** Close codes received in close frames, by code. */
  closeCodes: Record<string, number>;
  /** Bytes of oversize payload the server took before closing. */
  payloadBytesSent: number;
  firstError?: string;
}

const encoder = new TextEncoder();
/**
 * The first handshake message, the protocol's own so the victim holds the connection past it;
 * `auth` must match the victim's password mode.
 */
const hello = (auth: boolean) =>
  JSON.stringify(helloMessage(newNonce(), { auth, dh: newEphemeral().publicKey }));

function split(target: string): { hostname: string; port: number } {
  const match = /^(?:\[(.+)\]|([^:]+)):(\d+)$/.exec(target);
  if (!match) throw new Error(`Bad target "${target}"`);
  return { hostname: match[1] ?? match[2], port: Number(match[3]) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function connect(target: string, timeoutMs = 3000): Promise<Deno.Conn> {
  return Deno.connect({ ...split(target), signal: AbortSignal.timeout(timeoutMs) });
}

/** Upgrades a fresh connection; returns it and any bytes after the 101, or throws. */
export async function upgrade(
  target: string,
  options: { connectTimeoutMs?: number } = {},
): Promise<{ conn: Deno.Conn; rest: Uint8Array; status: string }> {
  const conn = await connect(target, options.connectTimeoutMs);
  try {
    const key = newKey();
    await conn.write(encoder.encode(upgradeRequest(target, key)));
    const { head, rest } = await readHead((b) => conn.read(b), { maxHeadBytes: 16 * 1024 });
    return { conn, rest, status: head.split("\r\n")[0] };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/**
 * Reads frames from the server until it ends the connection, passing each to `onEvent`; frames
 * that do not decode are ignored (the attacker does not care).
 */
export async function readEvents(
  conn: Deno.Conn,
  options: { rest?: Uint8Array; onEvent: (event: WebSocketEvent) => void },
): Promise<void> {
  const decoder = new FrameDecoder({ role: "client", maxMessageBytes: 1 << 20 });
  const feed = (bytes: Uint8Array) => {
    try {
      decoder.push(bytes, options.onEvent);
    } catch {
      // see above
    }
  };
  if (options.rest) feed(options.rest);
  const buffer = new Uint8Array(16 * 1024);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return;
    feed(buffer.subarray(0, n));
  }
}

/** Reads until the server ends the connection; the close code it sent, if any. */
export async function readUntilClosed(
  conn: Deno.Conn,
  rest?: Uint8Array,
): Promise<number | undefined> {
  let code: number | undefined;
  await readEvents(conn, {
    rest,
    onEvent: (event) => {
      if (event.type === "close") code = event.code;
    },
  });
  return code;
}

export async function attack(options: AttackOptions): Promise<AttackReport> {
  const report: AttackReport = {
    mode: options.mode,
    opened: 0,
    connectFailures: 0,
    closedByServer: 0,
    peakOpen: 0,
    upgraded: 0,
    closeCodes: {},
    payloadBytesSent: 0,
  };
  const deadline = Date.now() + options.durationMs;
  const open = new Set<Deno.Conn>();
  let stopping = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const over = new Promise<"over">((resolve) =>
    timer = setTimeout(() => {
      stopping = true;
      resolve("over");
    }, options.durationMs)
  );
  const note = (error: unknown) => report.firstError ??= (error as Error).message;

  async function once(): Promise<void> {
    let conn: Deno.Conn;
    let rest: Uint8Array | undefined;
    try {
      if (options.mode === "held-upgrade" || options.mode === "oversize") {
        const upgraded = await upgrade(options.target, options);
        conn = upgraded.conn;
        rest = upgraded.rest;
        if (upgraded.status.includes(" 101 ")) report.upgraded++;
      } else {
        conn = await connect(options.target, options.connectTimeoutMs);
      }
    } catch (error) {
      report.connectFailures++;
      note(error);
      return;
    }
    report.opened++;
    open.add(conn);
    report.peakOpen = Math.max(report.peakOpen, open.size);
    const closed = readUntilClosed(conn, rest);
    let ended = false;
    closed.then(() => ended = true);
    try {
      if (options.mode === "held-upgrade") {
        const text = hello(options.helloAuth ?? true);
        await conn.write(encodeFrame(Opcode.text, encoder.encode(text), { mask: true }));
      } else if (options.mode === "slowloris") {
        await conn.write(encoder.encode("GET /weft/mesh HTTP/1.1\r\n"));
        for (let i = 0; !ended && !stopping; i++) {
          await sleep(options.slowIntervalMs ?? 500);
          if (!ended && !stopping) await conn.write(encoder.encode(`X-Slow-${i}: a\r\n`));
        }
      } else if (options.mode === "oversize") {
        const announced = options.announceBytes ?? 64 << 20;
        const header = encodeFrame(Opcode.binary, new Uint8Array(0), { mask: true });
        // rewrite the empty frame's header into one announcing `announced` bytes (64-bit form)
        const big = new Uint8Array(14);
        big[0] = header[0];
        big[1] = 0x80 | 127;
        new DataView(big.buffer).setUint32(2, Math.floor(announced / 2 ** 32));
        new DataView(big.buffer).setUint32(6, announced >>> 0);
        await conn.write(big);
        const chunk = new Uint8Array(64 * 1024).fill(0x41);
        while (!ended && !stopping && report.payloadBytesSent < announced) {
          report.payloadBytesSent += await conn.write(chunk);
        }
      }
    } catch {
      // the server cut us off mid-write: what we are measuring
    }
    const code = await Promise.race([closed, over]);
    if (code !== "over" && !stopping) {
      report.closedByServer++;
      if (code !== undefined) report.closeCodes[code] = (report.closeCodes[code] ?? 0) + 1;
    }
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
    await closed;
  }

  const slots = Array.from({ length: options.connections }, async () => {
    while (Date.now() < deadline && !stopping) {
      await once();
      await sleep(options.reopenDelayMs ?? 100);
    }
  });
  await over;
  clearTimeout(timer);
  for (const conn of open) {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  await Promise.all(slots);
  return report;
}

if (import.meta.main) {
  const options = JSON.parse(Deno.args[0]) as AttackOptions;
  console.log(JSON.stringify(await attack(options)));
}
