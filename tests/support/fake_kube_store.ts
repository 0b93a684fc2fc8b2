/**
 * The state behind the fake Kubernetes API (fake_kube_api.ts): objects per resource, one
 * cluster-wide resourceVersion counter (as etcd's revision), a bounded event history and the
 * open watches. It follows the real server's watch contract, because that contract is what the
 * informer under test must survive:
 * - every write gets the next resourceVersion; events are delivered in that order;
 * - a watch from version V replays the history after V, then streams; a watch without a version
 *   (or "0") starts with a synthetic ADDED per existing object;
 * - history is bounded: a watch (or a list's continue token) older than what is kept gets
 *   410 Expired, as after etcd's compaction;
 * - a watch with a label or field selector sees an object that stops matching as DELETED and one
 *   that starts matching as ADDED;
 * - BOOKMARK events carry only the kind and the current resourceVersion.
 */

export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ResourceInfo {
  /** The plural name in paths: `pods`. */
  name: string;
  /** "" for the core group. */
  group: string;
  kind: string;
  namespaced: boolean;
}

export const RESOURCES: Record<string, ResourceInfo> = Object.fromEntries(
  [
    { name: "nodes", group: "", kind: "Node", namespaced: false },
    { name: "namespaces", group: "", kind: "Namespace", namespaced: false },
    { name: "pods", group: "", kind: "Pod", namespaced: true },
    { name: "configmaps", group: "", kind: "ConfigMap", namespaced: true },
    {
      name: "networkpolicies",
      group: "networking.k8s.io",
      kind: "NetworkPolicy",
      namespaced: true,
    },
  ].map((info) => [info.name, info]),
);

export function apiVersionOf(info: ResourceInfo): string {
  return info.group ? `${info.group}/v1` : "v1";
}

export interface Selectors {
  labelSelector?: string;
  fieldSelector?: string;
}

type WatchEventType = "ADDED" | "MODIFIED" | "DELETED";

interface HistoryEvent {
  rv: number;
  resource: string;
  type: WatchEventType;
  object: StoredObject;
  /** The object before a MODIFIED, so selector watches can turn it into ADDED or DELETED. */
  old?: StoredObject;
  line?: Uint8Array;
}

interface Watch {
  resource: string;
  namespace?: string;
  match: (object: StoredObject) => boolean;
  bookmarks: boolean;
  controller: ReadableStreamDefaultController<Uint8Array>;
  timer?: ReturnType<typeof setTimeout>;
}

/** A Status object as the API server sends it for failures. */
export function failure(code: number, reason: string, message: string) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  };
}

/** A refusal the HTTP edge turns into a Status response. */
export class FakeApiFailure extends Error {
  constructor(readonly code: number, readonly reason: string, message: string) {
    super(message);
  }
}

const encoder = new TextEncoder();

function line(event: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(event) + "\n");
}

export function objectKey(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export class FakeObjectStore {
  /** Events kept for watches that resume; older versions get 410 Expired. */
  historyLimit: number;
  #resourceVersion = 1;
  #compactedTo = 0;
  #history: HistoryEvent[] = [];
  #objects = new Map<string, Map<string, StoredObject>>();
  #watches = new Set<Watch>();

  constructor(options: { historyLimit?: number } = {}) {
    this.historyLimit = options.historyLimit ?? 10_000;
    for (const name of Object.keys(RESOURCES)) this.#objects.set(name, new Map());
  }

  get resourceVersion(): number {
    return this.#resourceVersion;
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  get(resource: string, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.#of(resource).get(objectKey(namespace, name));
  }

  /** Objects of a resource in key order (etcd's order), optionally in one namespace. */
  list(resource: string, namespace?: string, selectors: Selectors = {}): StoredObject[] {
    const match = matcher(selectors);
    return [...this.#of(resource).entries()]
      .filter(([, o]) => (!namespace || o.metadata.namespace === namespace) && match(o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  /** Stores a new object; the caller has checked it does not exist. */
  create(resource: string, object: StoredObject): StoredObject {
    object.metadata.uid ||= crypto.randomUUID();
    object.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, "Z");
    this.#of(resource).set(objectKey(object.metadata.namespace, object.metadata.name), object);
    this.#record(resource, "ADDED", object);
    return object;
  }

  /** Replaces a stored object (same key), keeping its identity. */
  replace(resource: string, object: StoredObject): StoredObject {
    const key = objectKey(object.metadata.namespace, object.metadata.name);
    const old = this.#of(resource).get(key);
    if (!old) throw new Error(`fake store: no ${resource} ${key} to replace`);
    object.metadata.uid = old.metadata.uid;
    object.metadata.creationTimestamp = old.metadata.creationTimestamp;
    this.#of(resource).set(key, object);
    this.#record(resource, "MODIFIED", object, old);
    return object;
  }

  /** Records an in-place change to a stored object as MODIFIED. */
  modified(resource: string, object: StoredObject, old: StoredObject): void {
    this.#record(resource, "MODIFIED", object, old);
  }

  remove(resource: string, namespace: string | undefined, name: string): StoredObject | undefined {
    const key = objectKey(namespace, name);
    const object = this.#of(resource).get(key);
    if (!object) return undefined;
    this.#of(resource).delete(key);
    this.#record(resource, "DELETED", object);
    return object;
  }

  /** Drops all history: watches and continue tokens from any earlier version get 410. */
  compact(): void {
    this.#compactedTo = this.#resourceVersion;
    this.#history = [];
  }

  /** Fails with 410 when `version` is older than the kept history. */
  checkNotExpired(version: number): void {
    if (version < this.#compactedTo) {
      throw new FakeApiFailure(
        410,
        "Expired",
        `too old resource version: ${version} (${this.#compactedTo})`,
      );
    }
  }

  /**
   * A watch stream. `from` undefined starts with the current objects as ADDED; otherwise the
   * history after `from` is replayed first. `timeoutSeconds` ends it as the server would.
   */
  watch(
    resource: string,
    options: Selectors & {
      namespace?: string;
      from?: number;
      bookmarks?: boolean;
      timeoutSeconds?: number;
    },
  ): ReadableStream<Uint8Array> {
    let watch: Watch;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const match = matcher(options);
        watch = {
          resource,
          namespace: options.namespace,
          match: (o) =>
            (!options.namespace || o.metadata.namespace === options.namespace) && match(o),
          bookmarks: options.bookmarks ?? false,
          controller,
        };
        if (options.from === undefined) {
          for (const object of this.list(resource, options.namespace, options)) {
            controller.enqueue(line({ type: "ADDED", object }));
          }
        } else if (options.from < this.#compactedTo) {
          controller.enqueue(line({ type: "ERROR", object: this.#expired(options.from) }));
          controller.close();
          return;
        } else {
          for (const event of this.#history) {
            if (event.rv > options.from && event.resource === resource) this.#deliver(watch, event);
          }
        }
        if (options.timeoutSeconds) {
          watch.timer = setTimeout(() => {
            // Real servers send a last bookmark before ending a watch at its timeout.
            this.#bookmark(watch);
            this.#close(watch);
          }, options.timeoutSeconds * 1000);
        }
        this.#watches.add(watch);
      },
      cancel: () => this.#forget(watch),
    });
  }

  sendBookmarks(): void {
    for (const watch of this.#watches) this.#bookmark(watch);
  }

  /**
   * Sends an ERROR event to every watch and ends it: 410 Expired is what real servers send a
   * watcher that fell behind; other codes are the server giving up on a watch for its own reasons.
   */
  failWatches(code = 410, reason = "Expired", message?: string): void {
    const error = line({
      type: "ERROR",
      object: code === 410 && !message
        ? this.#expired(this.#resourceVersion)
        : failure(code, reason, message ?? reason),
    });
    for (const watch of [...this.#watches]) {
      this.#enqueue(watch, error);
      this.#close(watch);
    }
  }

  /** Ends every watch stream cleanly, as `timeoutSeconds` does. */
  endWatches(): void {
    for (const watch of [...this.#watches]) this.#close(watch);
  }

  /** Breaks every watch stream mid-flight, as a crashing API server does. */
  breakWatches(): void {
    for (const watch of [...this.#watches]) {
      this.#forget(watch);
      try {
        watch.controller.error(new Error("fake API server crashed (a test simulating an outage)"));
      } catch { /* already closed */ }
    }
  }

  #of(resource: string): Map<string, StoredObject> {
    const objects = this.#objects.get(resource);
    if (!objects) throw new Error(`fake store: unknown resource "${resource}"`);
    return objects;
  }

  #expired(version: number) {
    return failure(
      410,
      "Expired",
      `too old resource version: ${version} (${this.#compactedTo})`,
    );
  }

  #record(resource: string, type: WatchEventType, object: StoredObject, old?: StoredObject) {
    object.metadata.resourceVersion = String(++this.#resourceVersion);
    const event: HistoryEvent = {
      rv: this.#resourceVersion,
      resource,
      type,
      object: structuredClone(object),
      old,
    };
    this.#history.push(event);
    if (this.#history.length > this.historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.historyLimit);
      this.#compactedTo = dropped.at(-1)!.rv;
    }
    for (const watch of this.#watches) {
      if (watch.resource === resource) this.#deliver(watch, event);
    }
  }

  #deliver(watch: Watch, event: HistoryEvent): void {
    const now = watch.match(event.object);
    if (event.type === "MODIFIED" && event.old) {
      const before = watch.match(event.old);
      if (before && !now) {
        return this.#enqueue(watch, line({ type: "DELETED", object: event.object }));
      }
      if (!before && now) {
        return this.#enqueue(watch, line({ type: "ADDED", object: event.object }));
      }
    }
    if (!now) return;
    event.line ??= line({ type: event.type, object: event.object });
    this.#enqueue(watch, event.line);
  }

  #bookmark(watch: Watch): void {
    if (!watch.bookmarks) return;
    const info = RESOURCES[watch.resource];
    this.#enqueue(
      watch,
      line({
        type: "BOOKMARK",
        object: {
          kind: info.kind,
          apiVersion: apiVersionOf(info),
          metadata: { resourceVersion: String(this.#resourceVersion) },
        },
      }),
    );
  }

  #enqueue(watch: Watch, bytes: Uint8Array): void {
    try {
      watch.controller.enqueue(bytes);
    } catch {
      this.#forget(watch);
    }
  }

  #close(watch: Watch): void {
    this.#forget(watch);
    try {
      watch.controller.close();
    } catch { /* already closed by the client */ }
  }

  #forget(watch: Watch): void {
    clearTimeout(watch.timer);
    this.#watches.delete(watch);
  }
}

/**
 * Label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`) and field
 * selectors (`metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`, with = and
 * !=), as the API server parses them.
 */
export function matcher(selectors: Selectors): (object: StoredObject) => boolean {
  const tests: ((object: StoredObject) => boolean)[] = [];
  for (const term of splitTerms(selectors.labelSelector)) tests.push(labelTerm(term));
  for (const term of splitTerms(selectors.fieldSelector)) tests.push(fieldTerm(term));
  return (object) => tests.every((test) => test(object));
}

function splitTerms(selector: string | undefined): string[] {
  if (!selector) return [];
  // Commas inside `in (a,b)` do not separate terms.
  return selector.split(/,(?![^(]*\))/).map((t) => t.trim()).filter(Boolean);
}

function labelTerm(term: string): (object: StoredObject) => boolean {
  const labels = (o: StoredObject) => o.metadata.labels ?? {};
  const set = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
  if (set) {
    const values = set[3].split(",").map((v) => v.trim());
    const [, key, op] = set;
    return (o) => {
      const has = key in labels(o) && values.includes(labels(o)[key]);
      return op === "in" ? has : !has;
    };
  }
  const equality = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(term);
  if (equality) {
    const [, key, op, value] = equality;
    return op === "!=" ? (o) => labels(o)[key] !== value : (o) => labels(o)[key] === value;
  }
  const exists = /^(!?)([\w./-]+)$/.exec(term);
  if (exists) return exists[1] ? (o) => !(exists[2] in labels(o)) : (o) => exists[2] in labels(o);
  throw new FakeApiFailure(400, "BadRequest", `unable to parse requirement: "${term}"`);
}

const FIELDS: Record<string, (o: StoredObject) => unknown> = {
  "metadata.name": (o) => o.metadata.name,
  "metadata.namespace": (o) => o.metadata.namespace,
  "spec.nodeName": (o) => (o.spec as { nodeName?: string } | undefined)?.nodeName ?? "",
  "status.phase": (o) => (o.status as { phase?: string } | undefined)?.phase ?? "",
};

function fieldTerm(term: string): (object: StoredObject) => boolean {
  const parsed = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
  const field = parsed && FIELDS[parsed[1]];
  if (!parsed || !field) {
    throw new FakeApiFailure(400, "BadRequest", `field label not supported: "${term}"`);
  }
  const [, , op, value] = parsed;
  return op === "!=" ? (o) => field(o) !== value : (o) => field(o) === value;
}
