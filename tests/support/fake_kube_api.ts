/**
 * An in-memory Kubernetes API server speaking the real wire shapes on the standard REST paths,
 * for the resources weft reads and writes: Nodes (and the node status strategic merge patch),
 * Namespaces, Pods, ConfigMaps and networking.k8s.io/v1 NetworkPolicies. Lists page with
 * `limit`/`continue` and filter by label and field selectors; watches follow the real contract
 * (see fake_kube_store.ts). Objects are created, replaced and deleted through the REST API
 * (POST, PUT with a resourceVersion precondition, DELETE) or through the typed helpers below.
 * Bearer-token auth, RBAC-style 403s and outages are switches a test flips.
 *
 * Serve `handler` with Deno.serve, or pass it as a KubeClient's fetch.
 */
import {
  type FakeNodeSpec,
  type FakePodSpec,
  nodeAddresses,
  podObject,
  podSpecOf,
} from "./fake_kube_objects.ts";
import {
  apiVersionOf,
  failure,
  FakeApiFailure,
  FakeObjectStore,
  objectKey,
  type ResourceInfo,
  RESOURCES,
  type StoredObject,
} from "./fake_kube_store.ts";

export type { FakeNodeSpec, FakePodSpec } from "./fake_kube_objects.ts";
export type { StoredObject } from "./fake_kube_store.ts";

export interface FakeKubeApiOptions {
  /** Required bearer token; undefined accepts any request. */
  token?: string;
  /** Watch events kept for resuming watches (default 10,000); older versions get 410. */
  historyLimit?: number;
  /** Namespaces that exist from the start, as in a new cluster. */
  namespaces?: string[];
}

export interface RecordedPatch {
  path: string;
  contentType: string;
  body: unknown;
}

interface Route {
  verb: "get" | "list" | "watch" | "create" | "update" | "delete" | "patch";
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
}

const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

function json(body: unknown, code = 200): Response {
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "content-type": "application/json" },
  });
}

/** How RBAC names a resource: `pods`, `nodes/status`, `networkpolicies.networking.k8s.io`. */
function rbacResource(route: Route): string {
  const name = route.subresource ? `${route.info.name}/${route.subresource}` : route.info.name;
  return route.info.group ? `${name}.${route.info.group}` : name;
}

export class FakeKubeApi {
  /** Change it to rotate credentials; undefined accepts everyone. */
  token?: string;
  /** `"list nodes"`, `"patch nodes/status"`, `"watch networkpolicies.networking.k8s.io"`: 403. */
  readonly forbidden = new Set<string>();
  /** While true every request gets 503, as during an API server restart. */
  unavailable = false;
  readonly patches: RecordedPatch[] = [];
  /** `"<verb> <resource>"` per request that passed auth, in arrival order. */
  readonly requests: string[] = [];
  /** Writes refused with 409 (stale resourceVersion or already exists). */
  conflicts = 0;
  /** Awaited before each write through the REST API, so a test can slip a rival write in. */
  beforeWrite?: (request: { verb: string; resource: string }) => Promise<void>;
  readonly objects: FakeObjectStore;

  constructor(options: FakeKubeApiOptions = {}) {
    this.token = options.token;
    this.objects = new FakeObjectStore({ historyLimit: options.historyLimit });
    for (const name of options.namespaces ?? ["default", "kube-system"]) this.addNamespace(name);
  }

  readonly handler = (request: Request): Promise<Response> => this.#handle(request);

  // --- generic writes, used by the REST handlers and the typed helpers alike -------------------

  create(resource: string, object: StoredObject): StoredObject {
    const info = RESOURCES[resource];
    const { name, namespace } = object.metadata ?? {};
    if (!name) throw new FakeApiFailure(422, "Invalid", `${info.kind}: metadata.name: Required`);
    if (info.namespaced && !this.objects.get("namespaces", undefined, namespace ?? "")) {
      throw new FakeApiFailure(404, "NotFound", `namespaces "${namespace}" not found`);
    }
    if (this.objects.get(resource, namespace, name)) {
      this.conflicts++;
      throw new FakeApiFailure(409, "AlreadyExists", `${resource} "${name}" already exists`);
    }
    const stored: StoredObject = {
      ...object,
      apiVersion: apiVersionOf(info),
      kind: info.kind,
      metadata: { ...object.metadata, uid: "", resourceVersion: "" },
    };
    if (resource === "namespaces") {
      stored.metadata.labels = { ...stored.metadata.labels, [NAMESPACE_NAME_LABEL]: name };
    }
    return this.objects.create(resource, stored);
  }

  /** PUT semantics: a resourceVersion in `object` is a precondition (409 when stale). */
  replace(resource: string, object: StoredObject): StoredObject {
    const { name, namespace, resourceVersion } = object.metadata;
    const current = this.objects.get(resource, namespace, name);
    if (!current) throw new FakeApiFailure(404, "NotFound", `${resource} "${name}" not found`);
    if (resourceVersion && resourceVersion !== current.metadata.resourceVersion) {
      this.conflicts++;
      throw new FakeApiFailure(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; ` +
          "please apply your changes to the latest version and try again",
      );
    }
    const stored = { ...object, metadata: { ...object.metadata } } as StoredObject;
    if (resource === "namespaces") {
      stored.metadata.labels = { ...stored.metadata.labels, [NAMESPACE_NAME_LABEL]: name };
    }
    return this.objects.replace(resource, stored);
  }

  /** Deletes an object; deleting a Namespace deletes what is in it first, as the API does. */
  remove(resource: string, namespace: string | undefined, name: string): StoredObject {
    if (resource === "namespaces") {
      for (const info of Object.values(RESOURCES)) {
        if (!info.namespaced) continue;
        for (const o of this.objects.list(info.name, name)) {
          this.objects.remove(info.name, name, o.metadata.name);
        }
      }
    }
    const removed = this.objects.remove(resource, namespace, name);
    if (!removed) throw new FakeApiFailure(404, "NotFound", `${resource} "${name}" not found`);
    return removed;
  }

  /** Changes a stored object in place and emits MODIFIED. */
  modify(
    resource: string,
    key: { namespace?: string; name: string },
    change: (object: StoredObject) => void,
  ): StoredObject {
    const object = this.objects.get(resource, key.namespace, key.name);
    if (!object) {
      throw new Error(`Fake API has no ${resource} "${objectKey(key.namespace, key.name)}"`);
    }
    const old = structuredClone(object);
    change(object);
    this.objects.modified(resource, object, old);
    return object;
  }

  // --- typed helpers -----------------------------------------------------------------------------

  addNode(name: string, spec: FakeNodeSpec = {}): StoredObject {
    return this.create("nodes", {
      metadata: { name },
      spec: {},
      status: { addresses: nodeAddresses(name, spec), conditions: [] },
    } as unknown as StoredObject);
  }

  setNodeAddresses(name: string, spec: FakeNodeSpec): void {
    this.modify("nodes", { name }, (node) => {
      (node.status as { addresses: unknown }).addresses = nodeAddresses(name, spec);
    });
  }

  deleteNode(name: string): void {
    this.remove("nodes", undefined, name);
  }

  node(name: string): StoredObject | undefined {
    return this.objects.get("nodes", undefined, name);
  }

  configMap(namespace: string, name: string): StoredObject | undefined {
    return this.objects.get("configmaps", namespace, name);
  }

  addNamespace(name: string, labels: Record<string, string> = {}): StoredObject {
    return this.create("namespaces", { metadata: { name, labels } } as unknown as StoredObject);
  }

  setNamespaceLabels(name: string, labels: Record<string, string>): void {
    this.modify("namespaces", { name }, (ns) => {
      ns.metadata.labels = { ...labels, [NAMESPACE_NAME_LABEL]: name };
    });
  }

  addPod(namespace: string, name: string, spec: FakePodSpec = {}): StoredObject {
    return this.create("pods", podObject(namespace, name, spec));
  }

  /** Replaces the pod's labels, address, node or phase (what a kubelet or a user changes). */
  updatePod(namespace: string, name: string, spec: FakePodSpec): StoredObject {
    const current = this.objects.get("pods", namespace, name);
    if (!current) throw new Error(`Fake API has no pod "${namespace}/${name}"`);
    const next = podObject(namespace, name, { ...podSpecOf(current), ...spec });
    return this.replace("pods", { ...next, metadata: { ...current.metadata, ...next.metadata } });
  }

  addPolicy(namespace: string, name: string, spec: unknown): StoredObject {
    return this.create(
      "networkpolicies",
      { metadata: { name, namespace }, spec } as unknown as StoredObject,
    );
  }

  updatePolicy(namespace: string, name: string, spec: unknown): StoredObject {
    const current = this.objects.get("networkpolicies", namespace, name);
    if (!current) throw new Error(`Fake API has no policy "${namespace}/${name}"`);
    return this.replace("networkpolicies", { ...current, spec } as StoredObject);
  }

  get openWatches(): number {
    return this.objects.openWatches;
  }

  compact(): void {
    this.objects.compact();
  }

  /** Sends the ERROR/410 event real servers send when a watcher falls behind, then closes. */
  expireWatches(): void {
    this.objects.failWatches();
  }

  /** Ends every watch with an ERROR event of this status (e.g. 500 InternalError). */
  failWatches(code: number, reason: string, message?: string): void {
    this.objects.failWatches(code, reason, message);
  }

  endWatches(): void {
    this.objects.endWatches();
  }

  breakWatches(): void {
    this.objects.breakWatches();
  }

  sendBookmarks(): void {
    this.objects.sendBookmarks();
  }

  // --- the REST edge -----------------------------------------------------------------------------

  async #handle(request: Request): Promise<Response> {
    if (this.unavailable) {
      return json(failure(503, "ServiceUnavailable", "apiserver is restarting"), 503);
    }
    if (
      this.token !== undefined && request.headers.get("authorization") !== `Bearer ${this.token}`
    ) {
      return json(failure(401, "Unauthorized", "Unauthorized"), 401);
    }
    const url = new URL(request.url);
    const route = parseRoute(request.method, url);
    if (!route) {
      return json(failure(404, "NotFound", `the server could not find ${url.pathname}`), 404);
    }
    const resource = rbacResource(route);
    if (this.forbidden.has(`${route.verb} ${resource}`)) {
      return json(
        failure(
          403,
          "Forbidden",
          `${route.info.name} is forbidden: User "system:serviceaccount:kube-system:weft" ` +
            `cannot ${route.verb} resource "${route.info.name}${
              route.subresource ? `/${route.subresource}` : ""
            }" in API group "${route.info.group}"`,
        ),
        403,
      );
    }
    this.requests.push(`${route.verb} ${resource}`);
    try {
      return await this.#serve(request, url, route);
    } catch (error) {
      if (!(error instanceof FakeApiFailure)) throw error;
      return json(failure(error.code, error.reason, error.message), error.code);
    }
  }

  async #serve(request: Request, url: URL, route: Route): Promise<Response> {
    const { info, namespace, name } = route;
    const query = url.searchParams;
    switch (route.verb) {
      case "list":
        return json(this.#list(info, namespace, query));
      case "watch":
        return this.#watch(info, namespace, query);
      case "get": {
        const object = this.objects.get(info.name, namespace, name!);
        if (!object) throw new FakeApiFailure(404, "NotFound", `${info.name} "${name}" not found`);
        return json(object);
      }
      case "patch":
        return json(await this.#patchNodeStatus(request, name!));
    }
    const body = route.verb === "delete" ? undefined : await request.json() as StoredObject;
    await this.beforeWrite?.({ verb: route.verb, resource: rbacResource(route) });
    switch (route.verb) {
      case "create":
        return json(
          this.create(info.name, { ...body!, metadata: { ...body!.metadata, namespace } }),
          201,
        );
      case "update":
        return json(
          this.replace(info.name, {
            ...body!,
            metadata: { ...body!.metadata, namespace, name: name! },
          }),
        );
      case "delete":
        return json(this.remove(info.name, namespace, name!));
    }
  }

  #list(info: ResourceInfo, namespace: string | undefined, query: URLSearchParams) {
    const limit = Number(query.get("limit") ?? 0);
    let version = this.objects.resourceVersion;
    let after = "";
    const token = query.get("continue");
    if (token) {
      ({ version, after } = JSON.parse(atob(token)));
      try {
        this.objects.checkNotExpired(version);
      } catch {
        throw new FakeApiFailure(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
        );
      }
    }
    let items = this.objects.list(info.name, namespace, {
      labelSelector: query.get("labelSelector") ?? undefined,
      fieldSelector: query.get("fieldSelector") ?? undefined,
    });
    if (after) {
      items = items.filter((o) => objectKey(o.metadata.namespace, o.metadata.name) > after);
    }
    let next: string | undefined;
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      const last = items.at(-1)!.metadata;
      next = btoa(JSON.stringify({ version, after: objectKey(last.namespace, last.name) }));
    }
    return {
      kind: `${info.kind}List`,
      apiVersion: apiVersionOf(info),
      metadata: { resourceVersion: String(version), ...(next ? { continue: next } : {}) },
      items,
    };
  }

  #watch(info: ResourceInfo, namespace: string | undefined, query: URLSearchParams): Response {
    const version = query.get("resourceVersion");
    const body = this.objects.watch(info.name, {
      namespace,
      from: version && version !== "0" ? Number(version) : undefined,
      bookmarks: query.get("allowWatchBookmarks") === "true",
      timeoutSeconds: Number(query.get("timeoutSeconds") ?? 0) || undefined,
      labelSelector: query.get("labelSelector") ?? undefined,
      fieldSelector: query.get("fieldSelector") ?? undefined,
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }

  async #patchNodeStatus(request: Request, name: string): Promise<StoredObject> {
    if (!this.node(name)) throw new FakeApiFailure(404, "NotFound", `nodes "${name}" not found`);
    const contentType = request.headers.get("content-type") ?? "";
    const body = await request.json();
    this.patches.push({ path: `nodes/${name}/status`, contentType, body });
    if (contentType !== "application/strategic-merge-patch+json") {
      throw new FakeApiFailure(415, "UnsupportedMediaType", "fake supports strategic merge only");
    }
    // Strategic merge: conditions merge by their `type` key; other entries are kept.
    return this.modify("nodes", { name }, (node) => {
      const current = node.status as { conditions: { type: string }[] };
      for (const condition of body?.status?.conditions ?? []) {
        const index = current.conditions.findIndex((c) => c.type === condition.type);
        if (index >= 0) current.conditions[index] = { ...current.conditions[index], ...condition };
        else current.conditions.push(condition);
      }
    });
  }
}

/**
 * `/api/v1/...` or `/apis/<group>/v1/...`, then `<resource>[/<name>[/<subresource>]]`, with
 * `namespaces/<ns>/` before a namespaced resource.
 */
function parseRoute(method: string, url: URL): Route | undefined {
  const parts = url.pathname.split("/").filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === "api" && parts[1] === "v1") [group, rest] = ["", parts.slice(2)];
  else if (parts[0] === "apis" && parts[2] === "v1") [group, rest] = [parts[1], parts.slice(3)];
  else return undefined;
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3 && RESOURCES[rest[2]]?.namespaced) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, subresource] = rest;
  const info = RESOURCES[resource];
  if (!info || info.group !== group || rest.length > 3) return undefined;
  if (info.namespaced && !namespace && (name || method !== "GET")) return undefined;
  if (subresource && !(resource === "nodes" && subresource === "status" && method === "PATCH")) {
    return undefined;
  }
  const watch = ["true", "1"].includes(url.searchParams.get("watch") ?? "");
  const verb = ({
    GET: name ? "get" : watch ? "watch" : "list",
    POST: name ? undefined : "create",
    PUT: name ? "update" : undefined,
    DELETE: name ? "delete" : undefined,
    PATCH: subresource ? "patch" : undefined,
  } as Record<string, Route["verb"] | undefined>)[method];
  return verb && { verb, info, namespace, name, subresource };
}
