/**
 * The fetch-based client against a local HTTP server speaking the API's real shapes.
 */
import assert from "node:assert/strict";
import {
  KubeClient,
  KubeConnectionError,
  KubeForbiddenError,
  KubeGoneError,
  type KubeNode,
  KubeNotFoundError,
  KubeUnauthorizedError,
  loadKubeConfig,
  setNetworkAvailable,
  type WatchEvent,
} from "../src/kube/mod.ts";
import { FakeKubeApi } from "./support/fake_kube_api.ts";
import { startFakeCluster, waitFor } from "./kube_fixture.ts";

Deno.test("list sends the bearer token and returns the NodeList", async () => {
  await using cluster = startFakeCluster();
  cluster.api.addNode("n1", { internalIp: "10.0.0.1" });
  const list = await cluster.client.request<{ kind: string; items: KubeNode[] }>(
    "GET",
    "/api/v1/nodes",
  );
  assert.equal(list.kind, "NodeList");
  assert.deepEqual(list.items.map((n) => n.metadata.name), ["n1"]);
});

Deno.test("a rejected token is a KubeUnauthorizedError naming the credentials and request", async () => {
  await using cluster = startFakeCluster({ token: "stale" });
  const error = await cluster.client.request("GET", "/api/v1/nodes").then(
    () => assert.fail("expected 401"),
    (e) => e,
  );
  assert.ok(error instanceof KubeUnauthorizedError, String(error));
  assert.equal(error.status, 401);
  assert.match(error.message, /rejected the credentials from test token on GET \/api\/v1\/nodes/);
});

Deno.test("missing RBAC is a KubeForbiddenError carrying the server's reason and the fix", async () => {
  await using cluster = startFakeCluster();
  cluster.api.forbidden.add("list nodes");
  const error = await cluster.client.request("GET", "/api/v1/nodes").then(
    () => assert.fail("expected 403"),
    (e) => e,
  );
  assert.ok(error instanceof KubeForbiddenError, String(error));
  assert.match(error.message, /cannot list resource "nodes"/);
  assert.match(error.message, /manifests\/weft\.yaml/);
});

Deno.test("the in-memory API serves the client without a port", async () => {
  const api = new FakeKubeApi({ token: "t" });
  api.addNode("n1");
  const client = new KubeClient({ server: "http://fake", token: "t", source: "t" }, {
    fetch: (input, init) => api.handler(new Request(input, init)),
  });
  const list = await client.request<{ items: unknown[] }>("GET", "/api/v1/nodes");
  assert.equal(list.items.length, 1);
  await assert.rejects(
    client.request("GET", "/api/v1/namespaces/kube-system/configmaps/missing"),
    (error: Error) =>
      error instanceof KubeNotFoundError && /configmaps "missing" not found/.test(error.message),
  );
});

Deno.test("watch yields ADDED, MODIFIED, DELETED and BOOKMARK in order", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  const list = await client.request<{ metadata: { resourceVersion: string } }>(
    "GET",
    "/api/v1/nodes",
  );
  const seen: string[] = [];
  const stream = client.watch<KubeNode>("/api/v1/nodes", {
    query: { resourceVersion: list.metadata.resourceVersion, allowWatchBookmarks: true },
    signal: cluster.signal,
  });
  api.addNode("n1", { internalIp: "10.0.0.1" });
  api.setNodeAddresses("n1", { internalIp: "10.0.0.11" });
  api.deleteNode("n1");
  for await (const event of stream as AsyncGenerator<WatchEvent<KubeNode>>) {
    seen.push(`${event.type} ${event.object.metadata.name ?? ""}`);
    if (seen.length === 3) api.sendBookmarks();
    if (seen.length === 4) break;
  }
  assert.deepEqual(seen, ["ADDED n1", "MODIFIED n1", "DELETED n1", "BOOKMARK "]);
});

Deno.test("watch from a compacted resourceVersion throws KubeGoneError", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  api.addNode("n1");
  api.addNode("n2");
  api.compact();
  const events = client.watch("/api/v1/nodes", { query: { resourceVersion: "1" } });
  await assert.rejects(
    async () => {
      for await (const _ of events) { /* the ERROR event comes first */ }
    },
    (error: Error) =>
      error instanceof KubeGoneError && /too old resource version/.test(error.message),
  );
});

Deno.test("setNetworkAvailable sends a strategic merge patch that keeps other conditions", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  const node = api.addNode("n1");
  (node.status as { conditions: unknown[] }).conditions.push(
    { type: "Ready", status: "True" },
    { type: "NetworkUnavailable", status: "True", reason: "NoRouteCreated" },
  );
  await setNetworkAvailable(client, "n1", { now: () => Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
  const [patch] = api.patches;
  assert.equal(patch.path, "nodes/n1/status");
  assert.equal(patch.contentType, "application/strategic-merge-patch+json");
  assert.deepEqual(patch.body, {
    status: {
      conditions: [{
        type: "NetworkUnavailable",
        status: "False",
        reason: "WeftIsUp",
        message: "weft has set up the pod network on this node",
        lastTransitionTime: "2026-01-02T03:04:05Z",
        lastHeartbeatTime: "2026-01-02T03:04:05Z",
      }],
    },
  });
  const conditions = (api.node("n1")!.status as { conditions: { type: string; status: string }[] })
    .conditions.map((c) => `${c.type}=${c.status}`);
  assert.deepEqual(conditions, ["Ready=True", "NetworkUnavailable=False"]);
});

async function openssl(args: string[], cwd: string) {
  const result = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!result.success) {
    throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(result.stderr)}`);
  }
}

Deno.test("in-cluster config over TLS: the CA is trusted and a rotated token file is re-read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtk_kube_tls_" });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  let client: KubeClient | undefined;
  try {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "1",
      "-subj",
      "/CN=weft-test-ca",
    ], dir);
    await openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "tls.key",
      "-out",
      "tls.csr",
      "-subj",
      "/CN=kubernetes",
    ], dir);
    await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
    await openssl([
      "x509",
      "-req",
      "-in",
      "tls.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "tls.crt",
      "-days",
      "1",
      "-extfile",
      "ext.cnf",
    ], dir);
    let expected = "token-one";
    const tokens: string[] = [];
    const tlsServer = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen() {},
      cert: await Deno.readTextFile(`${dir}/tls.crt`),
      key: await Deno.readTextFile(`${dir}/tls.key`),
    }, (request) => {
      const auth = request.headers.get("authorization") ?? "";
      tokens.push(auth);
      if (auth !== `Bearer ${expected}`) return new Response("{}", { status: 401 });
      return Response.json({ kind: "NodeList", apiVersion: "v1", metadata: {}, items: [] });
    });
    server = tlsServer;
    await Deno.mkdir(`${dir}/sa`);
    await Deno.copyFile(`${dir}/ca.crt`, `${dir}/sa/ca.crt`);
    await Deno.writeTextFile(`${dir}/sa/token`, "token-one\n");
    const config = await loadKubeConfig({
      env: {
        KUBERNETES_SERVICE_HOST: "127.0.0.1",
        KUBERNETES_SERVICE_PORT: String(tlsServer.addr.port),
      },
      serviceAccountDir: `${dir}/sa`,
    });
    client = new KubeClient(config, { tokenRefreshMs: 0 });
    await client.request("GET", "/api/v1/nodes");
    expected = "token-two";
    await Deno.writeTextFile(`${dir}/sa/token`, "token-two\n");
    await client.request("GET", "/api/v1/nodes");
    assert.deepEqual(tokens, ["Bearer token-one", "Bearer token-two"]);
  } finally {
    client?.close();
    await server?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a watch that goes silent past idleTimeoutMs fails as a broken connection", async () => {
  await using cluster = startFakeCluster();
  const events = cluster.client.watch("/api/v1/nodes", { idleTimeoutMs: 50 });
  await assert.rejects(
    async () => {
      for await (const _ of events) { /* the fake sends nothing */ }
    },
    (error: Error) =>
      error instanceof KubeConnectionError && /was silent for 50 ms/.test(error.message),
  );
  await waitFor("the server to see the watch closed", () => cluster.api.openWatches === 0);
});
