/**
 * The IPAM's unicast messages, decoded in one place. Gossip carries whole ring states (see
 * ring.ts); these are the exchanges between two peers: a space request and its answer (a give
 * carrying the donor's state, or "none" with the reason), the recipient's acknowledgement, and
 * a pull of a peer's state by one that restarted or has no ring yet.
 */

export type Message =
  | { t: "req"; id: string; gen: number; subnet?: string }
  | { t: "give"; id: string; gen: number; state: string }
  | { t: "none"; id: string; gen: number; why?: string }
  | { t: "ack"; id: string; gen: number }
  | { t: "state"; id: string; gen: number; state: string }
  | { t: "pull"; id: string; gen: number };

const KINDS = new Set(["req", "give", "none", "ack", "state", "pull"]);

/** The message in `text`, or undefined when it is not one (callers log and drop it). */
export function decodeMessage(text: string): Message | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (
    typeof raw !== "object" || raw === null || !KINDS.has(raw.t as string) ||
    typeof raw.id !== "string" || typeof raw.gen !== "number"
  ) return undefined;
  if ((raw.t === "give" || raw.t === "state") && typeof raw.state !== "string") return undefined;
  if (raw.subnet !== undefined && typeof raw.subnet !== "string") return undefined;
  if (raw.why !== undefined && typeof raw.why !== "string") return undefined;
  return raw as unknown as Message;
}

/** Messages are built without the sender's generation; the sender adds it. */
type WithoutGen<M> = M extends Message ? Omit<M, "gen"> : never;
export type Outgoing = WithoutGen<Message>;

export function encodeMessage(message: Outgoing, gen: number): string {
  return JSON.stringify({ ...message, gen });
}
