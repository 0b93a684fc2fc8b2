/**
 * A list+watch informer over any collection the API serves, as client-go's reflector does it:
 * list (in pages) for a consistent snapshot and its resourceVersion, then watch from that version
 * with bookmarks, which advance the version without any object changing. What it knows lives in
 * a {@link Store} of slim objects (a resource keeps only the fields weft uses) with indexes, and
 * every difference is announced to listeners as added / updated / deleted with the old and the
 * new object, so a consumer can recompute incrementally.
 *
 * Failures, and what each costs:
 * - the server ends the watch (`timeoutSeconds`) or the connection breaks or goes silent: watch
 *   again from the last version; nothing is listed, because resuming is cheap for the server and
 *   a thousand agents relisting every pod after a network blip is not;
 * - 410 Gone (history compacted, in the watch request or as an ERROR event) or any other ERROR
 *   event: list again and diff against the store, so a deletion that happened while we were not
 *   watching is still announced, exactly once;
 * - anything else: exponential backoff with jitter, then the same step again.
 * A modification that changes nothing the slim object keeps (kubelets rewrite pod and node
 * status all the time) costs a comparison and no announcement.
 */
import type { KubeClient } from "./client.ts";
import { backoffDelay, type BackoffOptions, sleep as abortableSleep } from "./backoff.ts";
import { KubeApiError, KubeGoneError } from "./errors.ts";
import {
  type IndexFunction,
  type KubeObjectRef,
  objectKey,
  type ReadonlyStore,
  Store,
} from "./store.ts";

/** The part of any API object the informer itself reads. */
export interface RawObject {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
  [field: string]: unknown;
}

/** A kind of object the informer can follow, and what of it is kept. */
export interface ResourceType<T extends KubeObjectRef, I extends string = never> {
  /** The cluster-wide collection, e.g. `/api/v1/pods`; also names the informer in errors. */
  path: string;
  /** The fields weft uses of one object; must accept any object the server sends. */
  slim(object: RawObject): T;
  indexes: Record<I, IndexFunction<T>>;
}

export type Change<T> =
  | { type: "added"; object: T; old?: undefined; fromList: boolean }
  | { type: "updated"; object: T; old: T; fromList: boolean }
  | { type: "deleted"; object?: undefined; old: T; fromList: boolean };

export interface InformerListener<T> {
  /**
   * One object changed; the store already holds the new state. Awaited before the next change
   * is applied. `fromList` is true while a (re)list is being applied; `synced` follows it.
   */
  change?(change: Change<T>): void | Promise<void>;
  /** After every successful (re)list has been applied, with all objects. */
  synced?(objects: T[]): void | Promise<void>;
}

export interface InformerOptions {
  client: KubeClient;
  /** Stops the informer and closes its watch. */
  signal?: AbortSignal;
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects per list page (`limit`, then `continue`); default 500, as client-go pages. */
  pageSize?: number;
  /** Asks the server to end each watch after this long (default: random, 5 to 10 minutes). */
  watchTimeoutSeconds?: number;
  /** A watch silent this long is broken (default: its timeout plus a minute). */
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Failures the loop retries after, and listener errors; defaults to stderr. */
  onError?: (error: Error) => void;
}

export interface Informer<T, I extends string = never> {
  readonly store: ReadonlyStore<T, I>;
  /** Resolves once the first list has been applied and announced; rejects if stopped first. */
  readonly synced: Promise<void>;
  /** Resolves when the loop has stopped (after `signal` aborts). */
  readonly done: Promise<void>;
  /** Lists done so far; each relist after 410 or an ERROR event adds one. */
  readonly listCount: number;
  /** The version the next watch starts from; undefined while a list is due. */
  readonly resourceVersion: string | undefined;
  /**
   * Adds a listener; returns its removal. Listeners added in the same tick as `startInformer`
   * see the first list; later ones read what they missed from `store`.
   */
  subscribe(listener: InformerListener<T>): () => void;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: RawObject[];
}

/** Starts the list+watch loop in the background and returns at once. */
export function startInformer<T extends KubeObjectRef, I extends string = never>(
  resource: ResourceType<T, I>,
  options: InformerOptions,
): Informer<T, I> {
  const loop = new InformerLoop(resource, options);
  const done = loop.run();
  return {
    store: loop.store,
    synced: loop.synced,
    done,
    get listCount() {
      return loop.listCount;
    },
    get resourceVersion() {
      return loop.resourceVersion;
    },
    subscribe: (listener) => loop.subscribe(listener),
  };
}

class InformerLoop<T extends KubeObjectRef, I extends string> {
  readonly store: Store<T, I>;
  readonly synced: Promise<void>;
  listCount = 0;
  resourceVersion?: string;
  readonly #resource: ResourceType<T, I>;
  readonly #options: InformerOptions;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #listeners = new Set<InformerListener<T>>();
  #markSynced!: () => void;
  #failSynced!: (error: unknown) => void;

  constructor(resource: ResourceType<T, I>, options: InformerOptions) {
    this.#resource = resource;
    this.#options = options;
    this.#sleep = options.sleep ?? abortableSleep;
    this.store = new Store(resource.indexes);
    this.synced = new Promise((resolve, reject) => {
      this.#markSynced = resolve;
      this.#failSynced = reject;
    });
    // Nobody is obliged to await `synced`; an unobserved rejection must not kill the process.
    this.synced.catch(() => {});
  }

  subscribe(listener: InformerListener<T>): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async run(): Promise<void> {
    const { signal } = this.#options;
    let failures = 0;
    let goneStreak = 0;
    while (!signal?.aborted) {
      let events = 0;
      try {
        if (this.resourceVersion === undefined) {
          await this.#relist();
          failures = 0;
        }
        const timeoutSeconds = this.#watchTimeoutSeconds();
        const stream = this.#options.client.watch<RawObject>(this.#resource.path, {
          query: {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds,
            labelSelector: this.#options.labelSelector,
            fieldSelector: this.#options.fieldSelector,
          },
          signal,
          // The server closes the watch after timeoutSeconds; silence well past that means the
          // connection is dead even though TCP has not noticed.
          idleTimeoutMs: this.#options.idleTimeoutMs ?? (timeoutSeconds + 60) * 1000,
        });
        for await (const event of stream) {
          events++;
          failures = 0;
          goneStreak = 0;
          await this.#apply(event.type, event.object);
        }
        // The server ended the watch: resume from where we are. An empty stream still counts as
        // a failure so a server that hangs up at once is not spun on.
        if (events === 0 && !signal?.aborted) {
          await this.#sleep(backoffDelay(failures++, this.#options.backoff), signal);
        }
      } catch (error) {
        if (signal?.aborted) break;
        // The client reports a watch's ERROR event with the method "WATCH": the server gave up
        // on this watch, so our version is no good. A 410 on the request itself says the same.
        if (
          error instanceof KubeGoneError ||
          (error instanceof KubeApiError && error.method === "WATCH")
        ) {
          this.resourceVersion = undefined;
          if (error instanceof KubeGoneError && goneStreak++ === 0) continue; // relist at once
        }
        this.#report(error as Error);
        await this.#sleep(backoffDelay(failures++, this.#options.backoff), signal);
      }
    }
    this.#failSynced(
      new DOMException(
        `Informer for ${this.#resource.path} stopped before its first list`,
        "AbortError",
      ),
    );
  }

  /** 5 to 10 minutes, spread so agents do not all re-watch at the same moment. */
  #watchTimeoutSeconds(): number {
    if (this.#options.watchTimeoutSeconds !== undefined) return this.#options.watchTimeoutSeconds;
    const random = this.#options.backoff?.random ?? Math.random;
    return 300 + Math.floor(random() * 300);
  }

  async #relist(): Promise<void> {
    const listed = new Map<string, T>();
    let version: string | undefined;
    let token: string | undefined;
    do {
      const page: ListPage = await this.#options.client.request<ListPage>(
        "GET",
        this.#resource.path,
        {
          query: {
            labelSelector: this.#options.labelSelector,
            fieldSelector: this.#options.fieldSelector,
            limit: this.#options.pageSize ?? 500,
            continue: token,
          },
          signal: this.#options.signal,
        },
      );
      for (const raw of page.items ?? []) {
        const object = this.#slim(raw);
        if (object) listed.set(objectKey(object), object);
      }
      token = page.metadata?.continue || undefined;
      version = page.metadata?.resourceVersion;
    } while (token);
    this.listCount++;
    // Deletions first, so an address or label that moved to another object is never announced
    // for two objects at once.
    for (const old of this.store.list()) {
      const key = objectKey(old);
      if (listed.has(key)) continue;
      this.store.delete(key);
      await this.#announce({ type: "deleted", old, fromList: true });
    }
    for (const object of listed.values()) await this.#upsert(object, true);
    this.resourceVersion = version ?? "";
    const objects = this.store.list();
    for (const listener of [...this.#listeners]) {
      await this.#call(() => listener.synced?.(objects));
    }
    this.#markSynced();
  }

  async #apply(type: string, raw: RawObject): Promise<void> {
    const version = raw.metadata?.resourceVersion;
    if (type !== "BOOKMARK") {
      const object = this.#slim(raw);
      if (object && type === "DELETED") {
        const key = objectKey(object);
        const old = this.store.get(key);
        // A deletion of an incarnation we no longer hold has been announced by a relist.
        if (old && (!old.uid || !object.uid || old.uid === object.uid)) {
          this.store.delete(key);
          await this.#announce({ type: "deleted", old, fromList: false });
        }
      } else if (object) {
        await this.#upsert(object, false);
      }
    }
    if (version) this.resourceVersion = version;
  }

  async #upsert(object: T, fromList: boolean): Promise<void> {
    const old = this.store.get(objectKey(object));
    if (old && sameValue(old, object)) return;
    this.store.set(object);
    await this.#announce(
      old ? { type: "updated", object, old, fromList } : { type: "added", object, fromList },
    );
  }

  #slim(raw: RawObject): T | undefined {
    if (!raw?.metadata?.name) {
      this.#report(new TypeError(`${this.#resource.path} sent an object without metadata.name`));
      return undefined;
    }
    return this.#resource.slim(raw);
  }

  async #announce(change: Change<T>): Promise<void> {
    for (const listener of [...this.#listeners]) {
      await this.#call(() => listener.change?.(change));
    }
  }

  /** A throwing listener is its owner's bug, not the API's: report it and keep watching. */
  async #call(call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (error) {
      this.#report(error as Error);
    }
  }

  #report(error: Error): void {
    if (this.#options.onError) this.#options.onError(error);
    else console.error(`weft: watching ${this.#resource.path}: ${error.message}`);
  }
}

/** Deep equality of the plain JSON-like values slim objects are made of. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const aKeys = Object.keys(a);
  const bKeys = Object.keys(b);
  if (aKeys.length !== bKeys.length) return false;
  const bRecord = b as Record<string, unknown>;
  return aKeys.every((key) =>
    Object.hasOwn(bRecord, key) && sameValue((a as Record<string, unknown>)[key], bRecord[key])
  );
}
