/**
 * The real wire: one WebSocket per connection on raw sockets (`Deno.listen`/`listenTls`,
 * `Deno.connect` + `startTls`), with our own HTTP/1.1 upgrade and RFC 6455 framing
 * (src/mesh/websocket/). `Deno.serve` and Deno's WebSocket were replaced because they gave no
 * control where an attacker without the password has it: a whole frame (up to 64 MiB) was
 * buffered before the mesh could judge its size, idle and half-sent requests were kept forever,
 * the connection limit never reached sockets, and running out of descriptors killed the agent.
 *
 * Every limit holds before anything is buffered:
 * - at accept, before a byte is read: unauthenticated inbound sockets are capped in total and per
 *   source address (the oldest unauthenticated socket of a full bucket gives up its place, see
 *   admission.ts); authenticated ones count against the mesh's connection limit instead;
 * - the request head must arrive whole within `headTimeoutMs` and `maxHeadBytes` (with TLS, the
 *   TLS handshake is inside that time), and the mesh must authenticate the link within
 *   `authTimeoutMs` of the accept, silent or not;
 * - frames are judged by their header: more than `preAuthMessageBytes` before authentication, or
 *   the mesh's `maxFrameBytes` after, closes the link with 1009 without reading the payload;
 * - a close handshake lasts at most `closeTimeoutMs`; a peer that does not read is dropped once
 *   `maxQueuedBytes` wait for it;
 * - accept errors (EMFILE, ENFILE) are logged once and retried with backoff, never thrown, and
 *   the budgets are shrunk to fit in half the process's descriptors, so the admin API, the CNI
 *   plugin's requests and SQLite always have the other half.
 *
 * TLS: the server takes a PEM cert and key. The dialling side trusts the system roots plus
 * `caCerts` (PEM strings, e.g. the cluster's own CA), or the roots Deno is told about with
 * `DENO_CERT`. Peer authentication does not rest on TLS: the handshake's shared-secret proof runs
 * inside it either way.
 */
import { openFileLimit } from "../net/limits.ts";
import type { Link, Transport } from "./transport.ts";
import { Admission, type Ticket } from "./websocket/admission.ts";
import { WebSocketLink, writeAll } from "./websocket/connection.ts";
import { TlsReaper } from "./websocket/tls_reaper.ts";
import { type WireCounters, WireWatch } from "./websocket/wire_watch.ts";
import type { Diagnostic } from "./diagnostics.ts";
import {
  checkUpgradeResponse,
  newKey,
  parseUpgradeRequest,
  readHead,
  refusalResponse,
  upgradeRequest,
  upgradeResponse,
} from "./websocket/http.ts";

export interface WireLimits {
  /** Reading a request head (after the TLS handshake, in the same time); also a dial's upgrade. */
  headTimeoutMs: number;
  maxHeadBytes: number;
  /** From accept (or dial) until the mesh has authenticated the link. */
  authTimeoutMs: number;
  closeTimeoutMs: number;
  /** Unauthenticated inbound sockets at once, all sources. */
  maxUnauthenticated: number;
  maxUnauthenticatedPerSource: number;
  /** Largest message before authentication (the handshake's messages are a few hundred bytes). */
  preAuthMessageBytes: number;
}

/** Defaults sized for a 1000-node cluster: see docs/mesh.md, "Connection hygiene". */
export const DEFAULT_WIRE_LIMITS: WireLimits = {
  headTimeoutMs: 5_000,
  maxHeadBytes: 8 * 1024,
  authTimeoutMs: 10_000,
  closeTimeoutMs: 2_000,
  maxUnauthenticated: 256,
  maxUnauthenticatedPerSource: 8,
  preAuthMessageBytes: 64 * 1024,
};

export interface WebSocketTransportOptions {
  host?: string;
  port?: number;
  tls?: { cert: string; key: string };
  /** Dial with `wss://` instead of `ws://`. Defaults to true when `tls` is set. */
  secureDial?: boolean;
  /** Extra PEM roots trusted when dialling with TLS. */
  caCerts?: string[];
  /** Largest message once authenticated: the mesh's `maxFrameBytes` (default 8 MiB). */
  maxFrameBytes?: number;
  /** Authenticated sockets, both directions: the mesh's `connLimit` (default 200). */
  connLimit?: number;
  limits?: Partial<WireLimits>;
  /** The process's open-file limit (default: read from /proc); budgets fit in half of it. */
  fileLimit?: number;
  log?: (message: string) => void;
}

/** What the wire holds and has turned away, for status and tests. */
export interface WireStats extends WireCounters {
  unauthenticated: number;
  authenticated: number;
  dialling: number;
  limits: WireLimits;
}

/** An accepted socket until its link takes it over (or it is dropped). */
interface Accepted {
  conn: Deno.Conn;
  ticket: Ticket;
  link?: WebSocketLink;
  closed: boolean;
  evicted?: boolean;
  /** Bytes came through, so a TLS handshake (if any) is over and close() really closes. */
  handshaken?: boolean;
}

const encoder = new TextEncoder();

function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `host:port` or `[v6]:port` -> parts for Deno.connect; undefined when it is neither. */
function splitAddress(address: string): { hostname: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\[\]:]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) return undefined;
  return { hostname: match[1] ?? match[2], port };
}

export class WebSocketTransport implements Transport {
  readonly limits: WireLimits;
  #options: WebSocketTransportOptions;
  #maxFrameBytes: number;
  #connLimit: number;
  #admission: Admission;
  #watch: WireWatch;
  #log: (message: string) => void;
  #listener?: Deno.Listener;
  #onAccept?: (link: Link) => void;
  #closing = false;
  #accepted = new Map<Ticket, Accepted>();
  #links = new Set<WebSocketLink>();
  #tasks = new Set<Promise<void>>();
  #wake?: () => void;
  #reaper = new TlsReaper();

  constructor(options: WebSocketTransportOptions = {}) {
    this.#options = options;
    this.#log = options.log ?? (() => {});
    this.#watch = new WireWatch({ log: this.#log });
    this.#maxFrameBytes = options.maxFrameBytes ?? 8 << 20;
    this.#connLimit = options.connLimit ?? 200;
    this.limits = this.#fitToFileLimit(
      { ...DEFAULT_WIRE_LIMITS, ...options.limits },
      options.fileLimit ?? openFileLimit(),
    );
    this.#admission = new Admission({
      unauthenticated: this.limits.maxUnauthenticated,
      unauthenticatedPerSource: this.limits.maxUnauthenticatedPerSource,
      authenticated: this.#connLimit,
    });
  }

  listen(onAccept: (link: Link) => void): Promise<string> {
    const { host = "0.0.0.0", port = 6783, tls } = this.#options;
    try {
      const listener = tls
        ? Deno.listenTls({ hostname: host, port, cert: tls.cert, key: tls.key })
        : Deno.listen({ hostname: host, port });
      this.#listener = listener;
      this.#onAccept = onAccept;
      this.#track(this.#acceptLoop(listener));
      const addr = listener.addr as Deno.NetAddr;
      return Promise.resolve(formatAddress(addr.hostname, addr.port));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  dial(address: string): Link {
    const ticket = this.#admission.dial(address);
    const link = this.#newLink(address, "client", ticket);
    const parts = splitAddress(address);
    if (!parts || this.#closing) {
      const why = parts ? "transport closed" : "expected host:port";
      this.#admission.release(ticket);
      this.#links.delete(link);
      queueMicrotask(() => link.fail(`Cannot dial "${address}": ${why}`));
      return link;
    }
    this.#track(this.#connect(link, { ...parts, address, ticket }));
    return link;
  }

  stats(): WireStats {
    return { ...this.#admission.counts(), ...this.#watch.counters, limits: { ...this.limits } };
  }

  /** Trouble on the mesh port a person should know about (CONTRACTS #1). */
  diagnostics(): Diagnostic[] {
    return this.#watch.diagnostics();
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    this.#listener = undefined;
    for (const accepted of this.#accepted.values()) {
      if (!accepted.link) this.#closeConn(accepted);
    }
    const links = [...this.#links];
    for (const link of links) link.close("transport closed");
    // peers that are alive answer the close frames at once; the rest are cut after a moment
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(links.map((l) => l.settled)),
      new Promise((resolve) => timer = setTimeout(resolve, 1000)),
    ]);
    clearTimeout(timer);
    for (const link of links) link.destroy("transport closed");
    await Promise.all(links.map((l) => l.settled));
    await Promise.allSettled([...this.#tasks]);
    this.#reaper.flush();
  }

  #fitToFileLimit(limits: WireLimits, fileLimit: number | undefined): WireLimits {
    const fitted = { ...limits };
    if (fileLimit !== undefined) {
      // authenticated sockets plus dials and sockets in their close handshake: 2 x connLimit
      const room = Math.floor(fileLimit / 2) - 2 * this.#connLimit;
      if (room < fitted.maxUnauthenticated) {
        fitted.maxUnauthenticated = Math.max(4, room);
        this.#watch.fileLimit(
          fileLimit,
          fitted.maxUnauthenticated,
          limits.maxUnauthenticated,
          this.#connLimit,
        );
      }
    }
    fitted.maxUnauthenticatedPerSource = Math.min(
      fitted.maxUnauthenticatedPerSource,
      fitted.maxUnauthenticated,
    );
    return fitted;
  }

  #track(task: Promise<void>): void {
    // a failure here is a bug of ours: logged, and it must not become an unhandled rejection
    const tracked = task.catch((error) => this.#log(`mesh transport: ${errorText(error)}`))
      .finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }

  #newLink(remote: string, role: "server" | "client", ticket: Ticket): WebSocketLink {
    const link: WebSocketLink = new WebSocketLink(remote, {
      role,
      preAuthMessageBytes: Math.min(this.limits.preAuthMessageBytes, this.#maxFrameBytes),
      maxMessageBytes: this.#maxFrameBytes,
      // room for the largest frame and the small ones around it; more means the peer is not reading
      maxQueuedBytes: this.#maxFrameBytes + (1 << 20),
      closeTimeoutMs: this.limits.closeTimeoutMs,
      authenticate: () => {
        if (this.#admission.authenticate(ticket)) return undefined;
        this.#watch.overLimit(this.#connLimit, remote);
        return `connection limit ${this.#connLimit} reached`;
      },
      onGone: () => {
        this.#admission.release(ticket);
        this.#accepted.delete(ticket);
        this.#links.delete(link);
      },
    });
    this.#links.add(link);
    return link;
  }

  async #acceptLoop(listener: Deno.Listener): Promise<void> {
    let backoffMs = 0;
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closing) return;
        // typically EMFILE/ENFILE: the connection waits in the backlog while we back off
        this.#watch.acceptFailed(errorText(error));
        backoffMs = Math.min(Math.max(2 * backoffMs, 50), 2000);
        await this.#sleep(backoffMs);
        continue;
      }
      backoffMs = 0;
      if (this.#closing) {
        conn.close();
        return;
      }
      if (this.#admitInbound(conn)) {
        // a socket was closed to make room; its descriptor is released only once the event loop
        // has run (its pending read must finish), so let it run before accepting more: a flood
        // would otherwise hold a backlog's worth of descriptors at once
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
  }

  /** Admits a socket; true when another had to be closed to make room. */
  #admitInbound(conn: Deno.Conn): boolean {
    const source = (conn.remoteAddr as Deno.NetAddr).hostname;
    const { ticket, evicted, bucket } = this.#admission.admit(source);
    if (evicted) this.#evict(evicted, bucket === "source");
    const accepted: Accepted = { conn, ticket, closed: false };
    this.#accepted.set(ticket, accepted);
    this.#track(this.#serve(accepted));
    return evicted !== undefined;
  }

  #evict(ticket: Ticket, perSource: boolean): void {
    const victim = this.#accepted.get(ticket);
    if (!victim) return;
    victim.evicted = true;
    this.#watch.evicted(ticket.source, {
      perSource,
      value: perSource ? this.limits.maxUnauthenticatedPerSource : this.limits.maxUnauthenticated,
    });
    if (victim.link) victim.link.destroy("Evicted: too many unauthenticated connections");
    else this.#closeConn(victim);
    this.#accepted.delete(ticket);
  }

  /** Reads the request head, answers it, and hands an upgraded link to the mesh. */
  async #serve(accepted: Accepted): Promise<void> {
    const { conn } = accepted;
    const start = Date.now();
    const remote = formatAddress(
      (conn.remoteAddr as Deno.NetAddr).hostname,
      (conn.remoteAddr as Deno.NetAddr).port,
    );
    const timer = setTimeout(() => this.#closeConn(accepted), this.limits.headTimeoutMs);
    let rest: Uint8Array;
    try {
      const head = await readHead((buffer) => conn.read(buffer), this.limits);
      accepted.handshaken = true;
      rest = head.rest;
      const verdict = parseUpgradeRequest(head.head);
      if ("status" in verdict) {
        await writeAll(conn, encoder.encode(refusalResponse(verdict)));
        throw new Error(`refused with ${verdict.status}`);
      }
      await writeAll(conn, encoder.encode(upgradeResponse(verdict.key)));
      if (accepted.closed) throw new Error("closed while upgrading");
    } catch {
      // a timeout, a bad request or a reset: counted, not logged (the sender chooses how many)
      if (!accepted.evicted) this.#watch.badRequest();
      this.#closeConn(accepted);
      this.#admission.release(accepted.ticket);
      this.#accepted.delete(accepted.ticket);
      return;
    } finally {
      clearTimeout(timer);
    }
    const link = this.#newLink(remote, "server", accepted.ticket);
    accepted.link = link;
    // the mesh sets its handlers first: bytes that came with the head are decoded at attach
    if (this.#closing || !this.#onAccept) link.close("transport closed");
    else this.#onAccept(link);
    link.attach(conn, { rest, authDeadlineMs: this.limits.authTimeoutMs - (Date.now() - start) });
  }

  async #connect(
    link: WebSocketLink,
    target: { hostname: string; port: number; address: string; ticket: Ticket },
  ): Promise<void> {
    const start = Date.now();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.limits.headTimeoutMs);
    const signal = AbortSignal.any([link.abort.signal, timeout.signal]);
    let conn: Deno.Conn | undefined;
    let tlsPending = false;
    const cut = () => {
      if (conn && tlsPending) this.#reaper.add(conn);
      tlsPending = false;
      try {
        conn?.close();
      } catch {
        // already closed
      }
      conn = undefined;
    };
    signal.addEventListener("abort", cut);
    try {
      conn = await Deno.connect({ hostname: target.hostname, port: target.port, signal });
      const secure = this.#options.secureDial ?? this.#options.tls !== undefined;
      if (secure) {
        conn = await Deno.startTls(conn as Deno.TcpConn, {
          hostname: target.hostname,
          caCerts: this.#options.caCerts,
        });
        tlsPending = true;
      }
      if (signal.aborted) throw new Error("aborted");
      const key = newKey();
      // the first write waits for the TLS handshake: once it returns, close() works again
      await writeAll(conn, encoder.encode(upgradeRequest(target.address, key)));
      tlsPending = false;
      const upgraded = conn;
      const { head, rest } = await readHead((buffer) => upgraded.read(buffer), this.limits);
      checkUpgradeResponse(head, key);
      signal.removeEventListener("abort", cut);
      clearTimeout(timer);
      link.attach(upgraded, {
        rest,
        authDeadlineMs: this.limits.authTimeoutMs - (Date.now() - start),
      });
    } catch (error) {
      cut();
      this.#admission.release(target.ticket);
      this.#links.delete(link);
      const why = timeout.signal.aborted
        ? `no WebSocket upgrade within ${this.limits.headTimeoutMs} ms`
        : errorText(error);
      link.fail(`Cannot connect to ${target.address}: ${why}`);
    } finally {
      signal.removeEventListener("abort", cut);
      clearTimeout(timer);
    }
  }

  #closeConn(accepted: Accepted): void {
    if (accepted.closed) return;
    accepted.closed = true;
    if (this.#options.tls && !accepted.handshaken) this.#reaper.add(accepted.conn);
    try {
      accepted.conn.close();
    } catch {
      // already closed
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
