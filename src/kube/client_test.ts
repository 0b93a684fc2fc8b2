import assert from "node:assert/strict";
import { KubeClient } from "./client.ts";
import { FakeKubeApi } from "./fake_api.ts";
import { KubeNotFoundError } from "./errors.ts";

Deno.test("requests keep a path prefix in the server URL and drop undefined query values", async () => {
  const seen: string[] = [];
  const client = new KubeClient({ server: "https://proxy.example/k8s/clusters/c-1", source: "t" }, {
    fetch: (input) => {
      seen.push(String(input));
      return Promise.resolve(Response.json({ items: [] }));
    },
  });
  await client.request("GET", "/api/v1/nodes", { query: { labelSelector: undefined, limit: 5 } });
  assert.deepEqual(seen, ["https://proxy.example/k8s/clusters/c-1/api/v1/nodes?limit=5"]);
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
