/**
 * Two live peers with one name (a machine cloned with its state dir, or `--name` given twice)
 * would each overrule the other's record forever and fight over every connection. Evidence of
 * it, from three sources, becomes one "name-collision" diagnostic that names the other's
 * address and says how to fix it, and is logged once:
 * - a connection whose far end claims our name but is not us (another incarnation);
 * - our record overruled again after we overruled it once (a previous life writes nothing new,
 *   so the second time it is someone alive; OwnRecord then stops overruling, so nothing flaps);
 * - peers we are not connected to reporting, for more than `settleMs`, a connection to our name
 *   at an address that is not ours (each twin sees the other's neighbours this way).
 */
import type { Diagnostic } from "./diagnostics.ts";
import { NAME_SALT_FILE, PEER_NAME_FILE } from "./identity.ts";
import { fingerprint } from "./keys.ts";
import type { PeerRecord } from "./record.ts";

export interface CollisionWatchOptions {
  name: string;
  stateDir?: string;
  /** Whether an address is this peer's own. */
  isLocal(address: string): boolean;
  log(message: string): void;
  /** How long findings are kept after the evidence stops. */
  keepMs: number;
  /** How long gossip must show a foreign connection to our name before it counts. */
  settleMs: number;
}

export class CollisionWatch {
  #options: CollisionWatchOptions;
  /** What shows the collision, by source, with when it was last seen. */
  #evidence = new Map<string, { text: string; at: number }>();
  /** Foreign addresses of our name seen in gossip, with when each was first seen. */
  #seen = new Map<string, number>();

  constructor(options: CollisionWatchOptions) {
    this.#options = options;
  }

  /** A connection to or from `address` whose far end is another peer named as we are. */
  connected(address: string, theirs: { incarnation: string }, now: number): void {
    this.#report(
      `connection ${address}`,
      `a peer at ${address} (incarnation ${theirs.incarnation}) also uses it`,
      now,
    );
  }

  /** A peer refused us: it binds our name to another identity key. */
  refusedKey(address: string, now: number): void {
    this.#report(
      `refused ${address}`,
      `the peer at ${address} knows it with another identity key (another machine uses the ` +
        `name, or this machine's identity key was replaced)`,
      now,
    );
  }

  /** A validly signed record of our name under another key: another installation uses it. */
  foreignKey(record: PeerRecord, options: { from: string; now: number }): void {
    const where = this.#foreignAddresses(options.now);
    this.#report(
      `key ${record.key}`,
      `another peer with identity key ${fingerprint(record.key)} publishes records under it ` +
        `(relayed by ${options.from}${where.length ? `; seen at ${where.join(", ")}` : ""})`,
      options.now,
    );
  }

  /** Our record was overruled again after we overruled it once. */
  overruled(record: PeerRecord, now: number): void {
    const where = this.#foreignAddresses(now);
    this.#report(
      "overruled",
      `another live peer (incarnation ${record.incarnation}${
        where.length ? `, at ${where.join(", ")}` : ""
      }) keeps publishing records under it`,
      now,
    );
  }

  /** Looks for foreign connections to our name in the records of peers not connected to us. */
  check(records: Iterable<PeerRecord>, connected: (peer: string) => boolean, now: number): void {
    const current = new Set<string>();
    for (const record of records) {
      if (record.name === this.#options.name || connected(record.name)) continue;
      for (const c of record.connections) {
        if (c.peer !== this.#options.name || this.#options.isLocal(c.address)) continue;
        current.add(`${c.address} (reported by ${record.name})`);
      }
    }
    for (const key of this.#seen.keys()) if (!current.has(key)) this.#seen.delete(key);
    for (const key of current) if (!this.#seen.has(key)) this.#seen.set(key, now);
    const settled = this.#foreignAddresses(now);
    if (settled.length > 0) {
      this.#report("gossip", `peers report connections to it at ${settled.join(", ")}`, now);
    }
  }

  /** One "name-collision" diagnostic with all current evidence, or none. */
  diagnostics(now: number): Diagnostic[] {
    for (const [key, item] of this.#evidence) {
      if (now - item.at > this.#options.keepMs) this.#evidence.delete(key);
    }
    if (this.#evidence.size === 0) return [];
    const evidence = [...this.#evidence.values()].map((e) => e.text);
    return [this.#diagnostic(evidence.join("; "))];
  }

  #foreignAddresses(now: number): string[] {
    const settled: string[] = [];
    for (const [key, since] of this.#seen) {
      if (now - since >= this.#options.settleMs) settled.push(key);
    }
    return settled.sort();
  }

  #report(key: string, evidence: string, now: number): void {
    const fresh = this.#evidence.get(key)?.text !== evidence;
    this.#evidence.set(key, { text: evidence, at: now });
    if (!fresh) return;
    const diagnostic = this.#diagnostic(evidence);
    this.#options.log(`${diagnostic.message}. ${diagnostic.fix}`);
  }

  #diagnostic(evidence: string): Diagnostic {
    const { name, stateDir } = this.#options;
    const dir = stateDir ?? "the state dir";
    return {
      code: "name-collision",
      severity: "error",
      message: `Name collision: this peer is "${name}", and ${evidence}`,
      fix: `Give one of the two its own name with --name (or WEFT_PEER_NAME); or, on the machine ` +
        `that was cloned, stop weft, delete ${dir}/${PEER_NAME_FILE} and ${dir}/${NAME_SALT_FILE}, ` +
        `and start it again so it makes a name of its own.`,
    };
  }
}
