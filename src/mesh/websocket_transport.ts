/**
 * The real wire: one WebSocket per connection, served by `Deno.serve` and dialled with Deno's
 * `WebSocket`. WebSocket gives message framing and runs over TLS with no extra code; the mesh's
 * own heartbeats replace the server's idle timeout so both directions detect death the same way.
 *
 * TLS: the server takes a PEM cert and key. The dialling side trusts the system roots plus
 * `caCerts` (PEM strings, e.g. the cluster's own CA) through `Deno.createHttpClient`, or the roots
 * Deno is told about with `DENO_CERT`. Peer authentication does not rest on TLS: the handshake's
 * shared-secret proof runs inside it either way.
 */
import type { Link, Transport } from "./transport.ts";

export interface WebSocketTransportOptions {
  host?: string;
  port?: number;
  tls?: { cert: string; key: string };
  /** Dial with `wss://` instead of `ws://`. Defaults to true when `tls` is set. */
  secureDial?: boolean;
  /** Extra PEM roots trusted when dialling with TLS. */
  caCerts?: string[];
}

class WebSocketLink implements Link {
  onOpen?: () => void;
  onMessage?: (frame: string | Uint8Array) => void;
  onClose?: (reason: string) => void;
  #queue: string[] = [];
  #closed = false;

  constructor(
    readonly socket: WebSocket,
    readonly remoteAddress: string,
    readonly forget: (link: WebSocketLink) => void,
  ) {
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      for (const frame of this.#queue) socket.send(frame);
      this.#queue = [];
      this.onOpen?.();
    };
    socket.onmessage = (event) => {
      const data = event.data;
      this.onMessage?.(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
    };
    socket.onclose = (event) => this.#finish(event.reason || `closed (code ${event.code})`);
    socket.onerror = (event) => {
      const message = (event as ErrorEvent).message ?? "socket error";
      this.#finish(message);
    };
  }

  send(frame: string): void {
    if (this.#closed) return;
    if (this.socket.readyState === WebSocket.CONNECTING) this.#queue.push(frame);
    else if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  close(reason = "closed locally"): void {
    if (this.#closed) return;
    try {
      // Close reasons are limited to 123 bytes by the protocol.
      this.socket.close(1000, reason.slice(0, 120));
    } catch {
      // Already closing; the close event still arrives.
    }
    this.#finish(reason);
  }

  #finish(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.forget(this);
    queueMicrotask(() => this.onClose?.(reason));
  }
}

function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

export class WebSocketTransport implements Transport {
  #options: WebSocketTransportOptions;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #links = new Set<WebSocketLink>();
  #client?: Deno.HttpClient;

  constructor(options: WebSocketTransportOptions = {}) {
    this.#options = options;
  }

  listen(onAccept: (link: Link) => void): Promise<string> {
    const { host = "0.0.0.0", port = 6783, tls } = this.#options;
    return new Promise((resolve, reject) => {
      try {
        this.#server = Deno.serve({
          hostname: host,
          port,
          ...(tls ? { cert: tls.cert, key: tls.key } : {}),
          onListen: (addr) => resolve(formatAddress(addr.hostname, addr.port)),
        }, (request, info) => {
          if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
            return new Response("weft mesh: WebSocket only\n", { status: 426 });
          }
          // read the peer's address before upgrading: afterwards the request is gone
          const remote = formatAddress(info.remoteAddr.hostname, info.remoteAddr.port);
          const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
          const link = new WebSocketLink(socket, remote, (l) => this.#links.delete(l));
          this.#links.add(link);
          onAccept(link);
          return response;
        });
      } catch (error) {
        reject(error);
      }
    });
  }

  dial(address: string): Link {
    const secure = this.#options.secureDial ?? this.#options.tls !== undefined;
    const url = `${secure ? "wss" : "ws"}://${address}/weft/mesh`;
    if (secure && this.#options.caCerts && !this.#client) {
      this.#client = Deno.createHttpClient({ caCerts: this.#options.caCerts });
    }
    let socket: WebSocket;
    try {
      socket = this.#client ? new WebSocket(url, { client: this.#client }) : new WebSocket(url);
    } catch (error) {
      // A syntactically bad address: report it through the link like any other failure.
      const failed = new WebSocketLink(
        { readyState: WebSocket.CLOSED, close() {} } as unknown as WebSocket,
        address,
        () => {},
      );
      queueMicrotask(() => failed.close(`Cannot dial "${address}": ${(error as Error).message}`));
      return failed;
    }
    const link = new WebSocketLink(socket, address, (l) => this.#links.delete(l));
    this.#links.add(link);
    return link;
  }

  async close(): Promise<void> {
    for (const link of [...this.#links]) link.close("transport closed");
    await this.#server?.shutdown();
    this.#server = undefined;
    this.#client?.close();
    this.#client = undefined;
  }
}
