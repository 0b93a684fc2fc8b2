/**
 * Who may hold a socket on the mesh port, decided at accept before one byte is read.
 *
 * Two budgets. Unauthenticated inbound sockets (from accept until the mesh's handshake proves
 * the peer) are few and short-lived, capped in total and per source address. When a new one
 * finds its bucket full, the OLDEST unauthenticated socket of that bucket gives up its place
 * rather than the new one being refused: a real peer finishes its handshake in milliseconds,
 * while an attacker's sockets sit silent, so the oldest are almost always the attacker's, and
 * holding every slot would take a flood faster than a handshake instead of a trickle that
 * refreshes held sockets. The cap itself is never exceeded. Authenticated sockets, both
 * directions, count against the mesh's connection limit instead; past it, authentication fails.
 */

export interface AdmissionLimits {
  /** Unauthenticated inbound sockets at once, all sources together. */
  unauthenticated: number;
  /** Unauthenticated inbound sockets at once from one source address. */
  unauthenticatedPerSource: number;
  /** Authenticated sockets, inbound and outbound (the mesh's connection limit). */
  authenticated: number;
}

export type TicketState = "unauthenticated" | "authenticated" | "released";

export interface Ticket {
  readonly source: string;
  readonly inbound: boolean;
  readonly state: TicketState;
}

interface Entry extends Ticket {
  state: TicketState;
}

export interface AdmissionCounts {
  unauthenticated: number;
  authenticated: number;
  /** Outbound sockets not yet authenticated (dials in progress). */
  dialling: number;
  sources: number;
}

export class Admission {
  readonly limits: AdmissionLimits;
  /** Unauthenticated inbound entries, oldest first (a Set keeps insertion order). */
  #waiting = new Set<Entry>();
  #bySource = new Map<string, Set<Entry>>();
  #authenticated = 0;
  #dialling = 0;

  constructor(limits: AdmissionLimits) {
    this.limits = limits;
  }

  /**
   * Admits an inbound socket from `source`. Returns its ticket and, when a bucket was full, the
   * ticket that lost its place and which bucket it was: the caller closes that socket.
   */
  admit(source: string): { ticket: Ticket; evicted?: Ticket; bucket?: "source" | "total" } {
    let evicted: Entry | undefined;
    let bucket: "source" | "total" | undefined;
    const mine = this.#bySource.get(source);
    if (mine && mine.size >= this.limits.unauthenticatedPerSource) {
      evicted = mine.values().next().value;
      bucket = "source";
    } else if (this.#waiting.size >= this.limits.unauthenticated) {
      evicted = this.#waiting.values().next().value;
      bucket = "total";
    }
    if (evicted) this.release(evicted);
    const entry: Entry = { source, inbound: true, state: "unauthenticated" };
    this.#waiting.add(entry);
    const sources = this.#bySource.get(source) ?? new Set<Entry>();
    sources.add(entry);
    this.#bySource.set(source, sources);
    return evicted ? { ticket: entry, evicted, bucket } : { ticket: entry };
  }

  /** A ticket for a socket this side dialled; it counts once it authenticates. */
  dial(destination: string): Ticket {
    this.#dialling++;
    return { source: destination, inbound: false, state: "unauthenticated" } as Entry;
  }

  /** Moves a ticket to the authenticated budget; false (and unchanged) when that is full. */
  authenticate(ticket: Ticket): boolean {
    const entry = ticket as Entry;
    if (entry.state !== "unauthenticated") return entry.state === "authenticated";
    if (this.#authenticated >= this.limits.authenticated) return false;
    this.#unwait(entry);
    entry.state = "authenticated";
    this.#authenticated++;
    return true;
  }

  /** The socket is gone; idempotent. */
  release(ticket: Ticket): void {
    const entry = ticket as Entry;
    if (entry.state === "authenticated") this.#authenticated--;
    else if (entry.state === "unauthenticated") this.#unwait(entry);
    entry.state = "released";
  }

  counts(): AdmissionCounts {
    return {
      unauthenticated: this.#waiting.size,
      authenticated: this.#authenticated,
      dialling: this.#dialling,
      sources: this.#bySource.size,
    };
  }

  #unwait(entry: Entry): void {
    if (!entry.inbound) {
      this.#dialling--;
      return;
    }
    this.#waiting.delete(entry);
    const bucket = this.#bySource.get(entry.source);
    bucket?.delete(entry);
    if (bucket?.size === 0) this.#bySource.delete(entry.source);
  }
}
