/**
 * Makes sure a TLS socket closed before its handshake really goes away.
 *
 * Deno's `close()` on such a socket waits for the handshake to finish, which a silent peer never
 * lets happen (src/net/socket_shutdown.ts says more), so the descriptor would outlive every limit
 * here. Sockets closed that way are collected and shut down in one pass over this process's
 * descriptors at most every `intervalMs`, which bounds the cost of the pass during a flood.
 */
import { shutdownSockets, type SocketEnds } from "../../net/socket_shutdown.ts";

export class TlsReaper {
  #pending: SocketEnds[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  #reaped = 0;

  constructor(readonly intervalMs = 250) {}

  /** Sockets shut down so far. */
  get reaped(): number {
    return this.#reaped;
  }

  /** Records a TLS connection just closed before its handshake completed. */
  add(conn: Deno.Conn): void {
    this.#pending.push({
      local: conn.localAddr as Deno.NetAddr,
      remote: conn.remoteAddr as Deno.NetAddr,
    });
    this.#timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  /** Shuts down everything pending now (also at the transport's close). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length > 0) this.#reaped += shutdownSockets(batch);
  }
}
