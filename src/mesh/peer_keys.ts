/**
 * Who may speak for whom. Combines this peer's identity key (to sign its records and messages)
 * with the names bound to keys (trust on first use, `known_peers.ts`): a record or message for a
 * peer counts only if the key bound to that peer's name signed it. A key that differs from the
 * bound one is refused and shown as a "key-mismatch" diagnostic with the command that re-binds
 * the name after a legitimate reinstall. Also the PeerSigner (CONTRACTS #2) other modules (the
 * IPAM) sign and check their own contents with.
 */
import { type Diagnostic, Findings } from "./diagnostics.ts";
import { fingerprint, type SignatureScheme } from "./keys.ts";
import type { KnownPeers } from "./known_peers.ts";
import { type PeerRecord, recordSigningBytes } from "./record.ts";

/** CONTRACTS #2: signatures by this peer, checks against the keys bound to other peers. */
export interface PeerSigner {
  /** Ed25519 signature by this peer's identity key, base64. */
  sign(data: Uint8Array): string;
  /** True when `signature` over `data` verifies with the key bound to peer `name` (trust on
   *  first use, persisted). False for unknown peers or bad signatures. */
  verify(name: string, data: Uint8Array, signature: string): boolean;
}

/** `mismatch`: validly signed, but by a key other than the one bound to the name. */
export type RecordCheck = "ok" | "bad-signature" | "mismatch";

export interface PeerKeysOptions {
  name: string;
  scheme: SignatureScheme;
  known: KnownPeers;
  now(): number;
  log(message: string): void;
  /** How long a key mismatch is shown after it was last seen. */
  keepMs: number;
}

export class PeerKeys {
  #options: PeerKeysOptions;
  #mismatches: Findings;
  #forged = 0;

  constructor(options: PeerKeysOptions) {
    this.#options = options;
    this.#mismatches = new Findings({ keepMs: options.keepMs });
    const own = options.known.key(options.name);
    if (own !== undefined && own !== options.scheme.publicKey) {
      // This peer's own key changed (identity.key deleted): our name is ours, whatever we said.
      options.known.rebind(options.name);
    }
    options.known.admit(options.name, options.scheme.publicKey, options.now());
  }

  get publicKey(): string {
    return this.#options.scheme.publicKey;
  }

  /** Signs a record of this peer. */
  signRecord(record: Omit<PeerRecord, "key" | "sig">): PeerRecord {
    const unsigned = { ...record, key: this.publicKey };
    return { ...unsigned, sig: this.#options.scheme.sign(recordSigningBytes(unsigned)) };
  }

  /**
   * Whether a record may be stored: signed by the key it carries, and that key is the one bound
   * to its name (an unknown name is bound to it now). `via` says where it came from, for the
   * diagnostic.
   */
  checkRecord(record: PeerRecord, options: { via: string }): RecordCheck {
    if (!this.selfSigned(record)) return "bad-signature";
    return this.admit(record.name, record.key, { via: options.via }) ? "ok" : "mismatch";
  }

  /**
   * Whether `key` may speak for `name` (binding it when the name is new). A refusal of another
   * peer's name is recorded as a key-mismatch; our own name is the caller's (a collision).
   */
  admit(name: string, key: string, options: { via: string }): boolean {
    const { known, now } = this.#options;
    const admission = known.admit(name, key, now());
    if (admission === "match" || admission === "bound") {
      if (admission === "bound" && name !== this.#options.name) this.#mismatches.clear(name);
      return true;
    }
    if (name !== this.#options.name) this.#mismatch(name, key, options.via, admission);
    return false;
  }

  /** Whether a record is signed by the key it carries (bound to its name or not). */
  selfSigned(record: PeerRecord): boolean {
    return this.#options.scheme.verify(record.key, recordSigningBytes(record), record.sig);
  }

  /** Whether a record relayed by `from` may be stored (see `checkRecord`); logs forgeries. */
  acceptRecord(record: PeerRecord, options: { from: string }): boolean {
    const check = this.checkRecord(record, { via: `relayed by ${options.from}` });
    if (check === "bad-signature" && this.#forged++ % 1000 === 0) {
      this.#options.log(
        `dropped a record of ${record.name} from ${options.from} that its key did not sign ` +
          `(${this.#forged} so far)`,
      );
    }
    return check === "ok";
  }

  /** Checks a signature by the key bound to `name`. */
  verify(name: string, data: Uint8Array, signature: string): boolean {
    const key = this.#options.known.key(name);
    return key !== undefined && this.#options.scheme.verify(key, data, signature);
  }

  sign(data: Uint8Array): string {
    return this.#options.scheme.sign(data);
  }

  signer(): PeerSigner {
    return {
      sign: (data) => this.sign(data),
      verify: (name, data, signature) => this.verify(name, data, signature),
    };
  }

  /** Operator action: forget the key bound to `name` (optionally pinning the next one). */
  rebind(name: string, options: { fingerprint?: string } = {}): void {
    if (name === this.#options.name) {
      throw new RangeError(`Cannot re-bind this peer's own name "${name}"`);
    }
    this.#options.known.rebind(name, options);
    this.#mismatches.clear(name);
    this.#options.log(
      `key of peer ${name} forgotten by the operator` +
        (options.fingerprint ? `; only a key with fingerprint ${options.fingerprint} binds` : ""),
    );
  }

  diagnostics(): Diagnostic[] {
    return this.#mismatches.list(this.#options.now());
  }

  #mismatch(name: string, key: string, via: string, admission: string): void {
    const bound = this.#options.known.key(name);
    const offered = fingerprint(key);
    const diagnostic: Diagnostic = admission === "full"
      ? {
        code: "key-mismatch",
        severity: "error",
        message: `Peer "${name}" (${via}) refused: too many peer keys are bound on this node`,
        fix: "Re-bind or remove stale peers; this node binds at most 65536 names.",
      }
      : {
        code: "key-mismatch",
        severity: "error",
        message: `Peer "${name}" presented identity key ${offered} (${via}), but this node ` +
          `bound that name to ${
            bound ? fingerprint(bound) : "another pinned key"
          } at first contact; its connections and records are refused`,
        fix: `If ${name} was reinstalled and kept its name, re-bind it on this node: ` +
          `'weft peer rebind ${name} --fingerprint ${offered}' (POST /peer/${name}/rebind?` +
          `fingerprint=${offered}). Otherwise another machine is using the name ${name}: find ` +
          `it (${via}) and give it its own name.`,
      };
    if (this.#mismatches.report(name, diagnostic, this.#options.now())) {
      this.#options.log(`${diagnostic.message}. ${diagnostic.fix}`);
    }
  }
}
