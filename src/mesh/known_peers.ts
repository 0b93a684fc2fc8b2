/**
 * Trust on first use: the identity key each peer name is bound to, learnt at first contact (the
 * handshake, where the peer proves it holds the key, or its first self-signed record) and kept
 * in the state dir (`known-peers`, JSON, 0600) so a restart does not forget it. Afterwards a
 * record or connection for that name with any other key is refused: an insider who knows the
 * password cannot speak for a peer this node already knows. A legitimate new key (a reinstalled
 * peer that kept its name) is accepted only after an operator re-binds the name, optionally
 * pinning the expected key's fingerprint so nobody else can take the name in between.
 */
import { IdentityError } from "./errors.ts";
import { fingerprint } from "./keys.ts";

export const KNOWN_PEERS_FILE = "known-peers";

/** `bound`: the name was unknown and is now bound to this key. */
export type Admission = "match" | "bound" | "mismatch" | "full";

interface Entry {
  key: string;
  /** When it was bound (ms epoch). */
  since: number;
}

export interface KnownPeersOptions {
  /** Where to keep the bindings; in memory only without one. */
  path?: string;
  /** At most this many names; past it, names `inUse` does not claim are evicted, oldest first. */
  maxEntries?: number;
  inUse?: (name: string) => boolean;
  log?: (message: string) => void;
}

export class KnownPeers {
  #entries = new Map<string, Entry>();
  #expected = new Map<string, string>();
  #options: KnownPeersOptions;
  #dirty = false;
  #writing?: Promise<void>;

  constructor(options: KnownPeersOptions = {}, entries: Record<string, Entry> = {}) {
    this.#options = options;
    for (const [name, entry] of Object.entries(entries)) this.#entries.set(name, entry);
  }

  /** Reads the bindings saved at `path` (none yet is fine). */
  static async load(path: string, options: Omit<KnownPeersOptions, "path"> = {}) {
    let entries: Record<string, Entry> = {};
    try {
      const parsed = JSON.parse(await Deno.readTextFile(path));
      entries = parsed?.peers ?? {};
      for (const [name, entry] of Object.entries(entries)) {
        if (typeof entry?.key !== "string" || typeof entry?.since !== "number") {
          throw new Error(`bad entry for "${name}"`);
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw new IdentityError(
          `Cannot read the known peer keys "${path}": ${(error as Error).message}; ` +
            `delete the file to bind every peer again at its next contact`,
          { cause: error },
        );
      }
    }
    return new KnownPeers({ ...options, path }, entries);
  }

  /** The key `name` is bound to, if any. */
  key(name: string): string | undefined {
    return this.#entries.get(name)?.key;
  }

  /** Checks `publicKey` for `name`, binding it when the name is new (or was re-bound). */
  admit(name: string, publicKey: string, now: number): Admission {
    const current = this.#entries.get(name);
    if (current) return current.key === publicKey ? "match" : "mismatch";
    const expected = this.#expected.get(name);
    if (expected !== undefined && expected !== fingerprint(publicKey)) return "mismatch";
    if (!this.#makeRoom()) return "full";
    this.#expected.delete(name);
    this.#entries.set(name, { key: publicKey, since: now });
    this.#save();
    return "bound";
  }

  /**
   * Forgets the key bound to `name`, so the next contact binds again; with `fingerprint`, only
   * a key with that fingerprint will be bound.
   */
  rebind(name: string, options: { fingerprint?: string } = {}): void {
    this.#entries.delete(name);
    if (options.fingerprint !== undefined) this.#expected.set(name, options.fingerprint);
    else this.#expected.delete(name);
    this.#save();
  }

  /** Waits until every change is on disk. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  #makeRoom(): boolean {
    const max = this.#options.maxEntries ?? 65_536;
    if (this.#entries.size < max) return true;
    const evictable = [...this.#entries].filter(([name]) => !this.#options.inUse?.(name))
      .sort((a, b) => a[1].since - b[1].since);
    if (evictable.length === 0) return false;
    this.#entries.delete(evictable[0][0]);
    return true;
  }

  /** Writes soon, coalescing a burst of bindings (a cold start binds every peer) into few writes. */
  #save(): void {
    if (this.#options.path === undefined) return;
    this.#dirty = true;
    if (this.#writing) return;
    this.#writing = (async () => {
      while (this.#dirty) {
        this.#dirty = false;
        await this.#write(this.#options.path!);
      }
      this.#writing = undefined;
    })();
  }

  async #write(path: string): Promise<void> {
    const text = JSON.stringify({ version: 1, peers: Object.fromEntries(this.#entries) });
    try {
      const temporary = `${path}.tmp`;
      await Deno.writeTextFile(temporary, `${text}\n`, { mode: 0o600 });
      await Deno.rename(temporary, path);
    } catch (error) {
      // Bindings stay in memory; the next change tries again.
      this.#options.log?.(`cannot save known peer keys to "${path}": ${(error as Error).message}`);
    }
  }
}
