/**
 * An in-memory Kubernetes API server speaking the real wire shapes for the few endpoints weft
 * uses: NodeList and node watch streams (JSON lines, BOOKMARK, the 410 "Expired" ERROR event),
 * ConfigMaps with resourceVersion preconditions (409 Conflict / AlreadyExists), the node status
 * strategic merge patch, bearer-token auth and RBAC-style 403s. Serve `handler` with Deno.serve
 * or pass it as the client's fetch; the test drives the cluster through the methods below.
 */

interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure";
  message: string;
  reason: string;
  code: number;
}

interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

interface Watch {
  controller: ReadableStreamDefaultController<Uint8Array>;
  bookmarks: boolean;
}

export interface FakeKubeApiOptions {
  /** Required bearer token; undefined accepts any request. */
  token?: string;
}

export interface FakeNodeSpec {
  internalIp?: string;
  externalIp?: string;
}

export interface RecordedPatch {
  path: string;
  contentType: string;
  body: unknown;
}

const encoder = new TextEncoder();

function status(code: number, reason: string, message: string): Status {
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

function json(body: unknown, code = 200): Response {
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "content-type": "application/json" },
  });
}

export class FakeKubeApi {
  /** Change it to rotate credentials; undefined accepts everyone. */
  token?: string;
  /** `"list nodes"`, `"patch nodes/status"`, `"update configmaps"`...: answered with 403. */
  readonly forbidden = new Set<string>();
  /** While true every request gets 503, as during an API server restart. */
  unavailable = false;
  readonly patches: RecordedPatch[] = [];
  /** `"<verb> <resource>"` per request that passed auth, in arrival order. */
  readonly requests: string[] = [];
  /** ConfigMap writes refused with 409 (stale resourceVersion or already exists). */
  conflicts = 0;
  /** Awaited before each ConfigMap write is checked, so a test can slip a rival write in. */
  beforeConfigMapWrite?: () => Promise<void>;

  #resourceVersion = 1;
  #compactedTo = 0;
  #events: { rv: number; type: string; object: StoredObject }[] = [];
  #nodes = new Map<string, StoredObject>();
  #configMaps = new Map<string, StoredObject>();
  #watches = new Set<Watch>();

  constructor(options: FakeKubeApiOptions = {}) {
    this.token = options.token;
  }

  readonly handler = (request: Request): Promise<Response> => this.#handle(request);

  addNode(name: string, spec: FakeNodeSpec = {}): StoredObject {
    const node: StoredObject = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, uid: crypto.randomUUID(), resourceVersion: "" },
      spec: {},
      status: { addresses: this.#addresses(name, spec), conditions: [] },
    };
    this.#nodes.set(name, node);
    this.#emit("ADDED", node);
    return node;
  }

  setNodeAddresses(name: string, spec: FakeNodeSpec): void {
    const node = this.#requireNode(name);
    (node.status as { addresses: unknown }).addresses = this.#addresses(name, spec);
    this.#emit("MODIFIED", node);
  }

  deleteNode(name: string): void {
    const node = this.#requireNode(name);
    this.#nodes.delete(name);
    this.#emit("DELETED", node);
  }

  node(name: string): StoredObject | undefined {
    return this.#nodes.get(name);
  }

  configMap(namespace: string, name: string): StoredObject | undefined {
    return this.#configMaps.get(`${namespace}/${name}`);
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  /** Forgets event history: watches from any earlier resourceVersion now get 410 Expired. */
  compact(): void {
    this.#compactedTo = this.#resourceVersion;
    this.#events = [];
  }

  /** Sends the ERROR/410 event real servers send when a watcher falls behind, then closes. */
  expireWatches(): void {
    this.#broadcast({
      type: "ERROR",
      object: status(410, "Expired", "too old resource version: watch expired"),
    });
    this.endWatches();
  }

  /** Ends every watch stream cleanly, as `timeoutSeconds` does. */
  endWatches(): void {
    for (const watch of this.#watches) {
      try {
        watch.controller.close();
      } catch { /* already closed by the client */ }
    }
    this.#watches.clear();
  }

  /** Breaks every watch stream mid-flight, as a crashing API server does. */
  breakWatches(): void {
    for (const watch of this.#watches) {
      try {
        watch.controller.error(new Error("fake API server crashed (a test simulating an outage)"));
      } catch { /* already closed */ }
    }
    this.#watches.clear();
  }

  sendBookmarks(): void {
    const object = {
      kind: "Node",
      apiVersion: "v1",
      metadata: { resourceVersion: String(this.#resourceVersion) },
    };
    for (const watch of this.#watches) {
      if (watch.bookmarks) this.#send(watch, { type: "BOOKMARK", object });
    }
  }

  #addresses(name: string, spec: FakeNodeSpec) {
    return [
      ...(spec.internalIp ? [{ type: "InternalIP", address: spec.internalIp }] : []),
      ...(spec.externalIp ? [{ type: "ExternalIP", address: spec.externalIp }] : []),
      { type: "Hostname", address: name },
    ];
  }

  #requireNode(name: string): StoredObject {
    const node = this.#nodes.get(name);
    if (!node) throw new Error(`Fake API has no node "${name}"`);
    return node;
  }

  #bump(object: StoredObject): void {
    object.metadata.resourceVersion = String(++this.#resourceVersion);
  }

  #emit(type: string, node: StoredObject): void {
    this.#bump(node);
    const object = structuredClone(node);
    this.#events.push({ rv: this.#resourceVersion, type, object });
    this.#broadcast({ type, object });
  }

  #broadcast(event: unknown): void {
    for (const watch of this.#watches) this.#send(watch, event);
  }

  #send(watch: Watch, event: unknown): void {
    try {
      watch.controller.enqueue(encoder.encode(JSON.stringify(event) + "\n"));
    } catch {
      this.#watches.delete(watch);
    }
  }

  async #handle(request: Request): Promise<Response> {
    if (this.unavailable) {
      return json(status(503, "ServiceUnavailable", "apiserver is restarting"), 503);
    }
    if (
      this.token !== undefined && request.headers.get("authorization") !== `Bearer ${this.token}`
    ) {
      return json(status(401, "Unauthorized", "Unauthorized"), 401);
    }
    const url = new URL(request.url);
    const parts = url.pathname.split("/").filter(Boolean);
    const route = this.#route(request.method, parts, url.searchParams);
    if (!route) {
      return json(status(404, "NotFound", `the server could not find ${url.pathname}`), 404);
    }
    const [verb, resource] = route;
    if (this.forbidden.has(`${verb} ${resource}`)) {
      const resourceName = resource.replace("/status", "");
      return json(
        status(
          403,
          "Forbidden",
          `${resourceName} is forbidden: User "system:serviceaccount:kube-system:weft" cannot ${verb} resource "${resource}" in API group ""`,
        ),
        403,
      );
    }
    this.requests.push(`${verb} ${resource}`);
    switch (`${verb} ${resource}`) {
      case "list nodes":
        return json({
          kind: "NodeList",
          apiVersion: "v1",
          metadata: { resourceVersion: String(this.#resourceVersion) },
          items: [...this.#nodes.values()].map((n) => structuredClone(n)),
        });
      case "watch nodes":
        return this.#watch(url.searchParams);
      case "patch nodes/status":
        return await this.#patchNodeStatus(request, parts[3]);
      case "get configmaps":
        return this.#getConfigMap(parts[3], parts[5]);
      case "create configmaps":
        return await this.#writeConfigMap(request, parts[3], undefined);
      case "update configmaps":
        return await this.#writeConfigMap(request, parts[3], parts[5]);
    }
    return json(status(405, "MethodNotAllowed", `${request.method} is not allowed`), 405);
  }

  #route(method: string, parts: string[], query: URLSearchParams): [string, string] | undefined {
    if (parts[0] !== "api" || parts[1] !== "v1") return undefined;
    const watch = query.get("watch") === "true" || query.get("watch") === "1";
    if (parts.length === 3 && parts[2] === "nodes" && method === "GET") {
      return [watch ? "watch" : "list", "nodes"];
    }
    if (parts.length === 5 && parts[2] === "nodes" && parts[4] === "status" && method === "PATCH") {
      return ["patch", "nodes/status"];
    }
    if (parts[2] === "namespaces" && parts[4] === "configmaps") {
      if (parts.length === 5 && method === "POST") return ["create", "configmaps"];
      if (parts.length === 6 && method === "GET") return ["get", "configmaps"];
      if (parts.length === 6 && method === "PUT") return ["update", "configmaps"];
    }
    return undefined;
  }

  #watch(query: URLSearchParams): Response {
    const from = Number(query.get("resourceVersion") || this.#resourceVersion);
    const bookmarks = query.get("allowWatchBookmarks") === "true";
    let watch: Watch;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        watch = { controller, bookmarks };
        if (from < this.#compactedTo) {
          this.#send(watch, {
            type: "ERROR",
            object: status(
              410,
              "Expired",
              `too old resource version: ${from} (${this.#compactedTo})`,
            ),
          });
          controller.close();
          return;
        }
        for (const event of this.#events) {
          if (event.rv > from) this.#send(watch, { type: event.type, object: event.object });
        }
        this.#watches.add(watch);
      },
      cancel: () => {
        this.#watches.delete(watch);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }

  async #patchNodeStatus(request: Request, name: string): Promise<Response> {
    const node = this.#nodes.get(name);
    if (!node) return json(status(404, "NotFound", `nodes "${name}" not found`), 404);
    const contentType = request.headers.get("content-type") ?? "";
    const body = await request.json();
    this.patches.push({ path: `nodes/${name}/status`, contentType, body });
    if (contentType !== "application/strategic-merge-patch+json") {
      return json(status(415, "UnsupportedMediaType", `fake supports strategic merge only`), 415);
    }
    // Strategic merge: conditions merge by their `type` key; other entries are kept.
    const current = node.status as { conditions: { type: string }[] };
    for (const condition of body?.status?.conditions ?? []) {
      const index = current.conditions.findIndex((c) => c.type === condition.type);
      if (index >= 0) current.conditions[index] = { ...current.conditions[index], ...condition };
      else current.conditions.push(condition);
    }
    this.#emit("MODIFIED", node);
    return json(node);
  }

  #getConfigMap(namespace: string, name: string): Response {
    const stored = this.#configMaps.get(`${namespace}/${name}`);
    if (!stored) return json(status(404, "NotFound", `configmaps "${name}" not found`), 404);
    return json(stored);
  }

  async #writeConfigMap(
    request: Request,
    namespace: string,
    pathName: string | undefined,
  ): Promise<Response> {
    const body = await request.json() as StoredObject;
    await this.beforeConfigMapWrite?.();
    const name = pathName ?? body.metadata?.name;
    const key = `${namespace}/${name}`;
    const stored = this.#configMaps.get(key);
    if (pathName === undefined) {
      if (stored) {
        this.conflicts++;
        return json(status(409, "AlreadyExists", `configmaps "${name}" already exists`), 409);
      }
      const created = {
        ...body,
        metadata: { ...body.metadata, namespace, uid: crypto.randomUUID(), resourceVersion: "" },
      };
      this.#bump(created);
      this.#configMaps.set(key, created);
      return json(created, 201);
    }
    if (!stored) return json(status(404, "NotFound", `configmaps "${name}" not found`), 404);
    const precondition = body.metadata?.resourceVersion;
    if (precondition && precondition !== stored.metadata.resourceVersion) {
      this.conflicts++;
      return json(
        status(
          409,
          "Conflict",
          `Operation cannot be fulfilled on configmaps "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        ),
        409,
      );
    }
    const updated = { ...body, metadata: { ...body.metadata, uid: stored.metadata.uid } };
    this.#bump(updated);
    this.#configMaps.set(key, updated);
    return json(updated);
  }
}
