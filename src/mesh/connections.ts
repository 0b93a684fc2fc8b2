/**
 * The live connections: every session (both directions, handshaking included) and, for each
 * peer, the one connection that counts. Duplicates (both sides dialled at once, or a restarted
 * peer's new connection beside its old one) are resolved here by a rule both ends apply alike,
 * and a connection that reached this peer itself is closed. What a connection means for gossip
 * and routes is the mesh's business: it hears `connected` and `disconnected`.
 */
import type { Clock } from "./clock.ts";
import { hostOf } from "./address.ts";
import type { Frame } from "./protocol.ts";
import type { ConnectionInfo } from "./record.ts";
import type { SignatureScheme } from "./keys.ts";
import { type LocalPeer, preferConnection, Session } from "./session.ts";
import type { Link } from "./transport.ts";
import type { ConnectionState, ConnectionStatus, MeshSettings } from "./types.ts";

export interface ConnectionsOptions {
  name: string;
  clock: Clock;
  settings: MeshSettings;
  secret?: Uint8Array;
  identity: SignatureScheme;
  local(): LocalPeer;
  log(message: string): void;
  /** A handshake completed: the far end is `peer` (this peer itself when `self`). */
  identified(session: Session, peer: string, options: { self: boolean }): void;
  /** The far end claims our name but is another incarnation: another live peer has our name. */
  collided(session: Session, address: string): void;
  /** Whether the far end's proven key may use its name (trust on first use). */
  admit(session: Session, address: string): boolean;
  /** `session` is now the connection to its peer. */
  connected(session: Session): void;
  /** A session closed; `wasCurrent` when it was the connection to `peer`. */
  closed(session: Session, reason: string, options: { peer?: string; wasCurrent: boolean }): void;
  frame(session: Session, frame: Frame): void;
}

export class Connections {
  readonly #options: ConnectionsOptions;
  readonly #sessions = new Set<Session>();
  /** The connection that counts for each connected peer. */
  readonly byPeer = new Map<string, Session>();
  terminations = 0;
  bytesSent = 0;
  bytesReceived = 0;

  constructor(options: ConnectionsOptions) {
    this.#options = options;
  }

  /** Open sessions, handshaking included: what `connLimit` counts. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Wraps a link (dialled, or accepted under the limit) in a session. */
  open(link: Link, direction: "outbound" | "inbound"): Session {
    const { settings, clock, secret } = this.#options;
    const session = new Session(link, {
      direction,
      local: this.#options.local,
      secret,
      identity: this.#options.identity,
      clock,
      heartbeatMs: settings.heartbeatMs,
      deadAfterMs: settings.deadAfterMs,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
      maxFrameBytes: settings.maxFrameBytes,
      onEstablished: (s) => this.#established(s),
      onFrame: (s, frame) => this.#options.frame(s, frame),
      onClosed: (s, reason) => this.#closed(s, reason),
      onBytes: (sent, received) => {
        this.bytesSent += sent;
        this.bytesReceived += received;
      },
    });
    this.#sessions.add(session);
    return session;
  }

  /** An inbound link: refused at once over the connection limit. */
  accept(link: Link): void {
    const limit = this.#options.settings.connLimit;
    if (this.#sessions.size >= limit) {
      link.close(`connection limit ${limit} reached`);
      return;
    }
    this.open(link, "inbound");
  }

  closeAll(reason: string): void {
    for (const session of [...this.#sessions]) session.close(reason);
  }

  /** This peer's connections as its record reports them: addresses others can dial. */
  info(): ConnectionInfo[] {
    const connections: ConnectionInfo[] = [];
    for (const [peer, s] of this.byPeer) connections.push({ peer, address: dialable(s) });
    return connections;
  }

  /** Status of every live session except those `listed` elsewhere (with their target). */
  statuses(options: { listed(session: Session): boolean }): ConnectionStatus[] {
    const list: ConnectionStatus[] = [];
    for (const s of this.#sessions) {
      // An outbound session still tied to its target is listed with the target; one whose
      // address was forgotten stays up until it breaks, never redialled, and is listed here.
      if (s.direction === "outbound" && (s.closed || options.listed(s))) continue;
      list.push({
        address: s.link.remoteAddress,
        peer: s.remote?.name,
        direction: s.direction,
        state: s.established ? "established" : "connecting",
        since: s.establishedAt ?? s.since,
      });
    }
    return list;
  }

  #established(session: Session): void {
    const remote = session.remote!;
    const address = dialable(session);
    if (remote.name === this.#options.name) {
      const self = remote.incarnation === this.#options.local().incarnation &&
        remote.key === this.#options.identity.publicKey;
      this.#options.identified(session, remote.name, { self });
      if (self) {
        session.close("connected to self");
      } else {
        this.#options.collided(session, address);
        session.refuse(
          "name-collision",
          `Name collision: the peer at ${address} also calls itself "${remote.name}"`,
        );
      }
      return;
    }
    this.#options.identified(session, remote.name, { self: false });
    if (!this.#options.admit(session, address)) {
      session.refuse(
        "key-mismatch",
        `Key mismatch: "${remote.name}" is bound to another identity key on this peer`,
      );
      return;
    }
    const existing = this.byPeer.get(remote.name);
    if (existing) {
      if (!preferConnection(session, existing, { self: this.#options.name })) {
        session.close("duplicate connection");
        return;
      }
      existing.close("duplicate connection");
    }
    this.byPeer.set(remote.name, session);
    this.#options.log(
      `connected to ${remote.name} (${remote.nickname}) via ${session.link.remoteAddress}`,
    );
    this.#options.connected(session);
  }

  #closed(session: Session, reason: string): void {
    this.#sessions.delete(session);
    const peer = session.remote?.name;
    const wasCurrent = peer !== undefined && this.byPeer.get(peer) === session;
    if (wasCurrent) {
      this.byPeer.delete(peer);
      this.terminations++;
      this.#options.log(`connection to ${peer} closed: ${reason}`);
    }
    this.#options.closed(session, reason, { peer, wasCurrent });
  }
}

/** Where the far end can be dialled: the address dialled, or its host with its announced port. */
function dialable(session: Session): string {
  return session.direction === "outbound"
    ? session.link.remoteAddress
    : `${hostOf(session.link.remoteAddress)}:${session.remote!.port}`;
}

/** The shared secret from a password option; none for an empty one. */
export function secretOf(password: string | Uint8Array | undefined): Uint8Array | undefined {
  if (typeof password !== "string") return password;
  return password === "" ? undefined : new TextEncoder().encode(password);
}

/** How many connections are in each state (for metrics). */
export function countByState(list: ConnectionStatus[]): Record<ConnectionState, number> {
  const counts = { connecting: 0, established: 0, failed: 0, retrying: 0, self: 0 };
  for (const c of list) counts[c.state]++;
  return counts;
}
