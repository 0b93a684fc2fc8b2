/**
 * The fake API server is only worth testing against if it behaves as a real one on the paths
 * weft uses: writes through REST with optimistic concurrency, paged and filtered lists, and the
 * watch contract (ordering, synthetic ADDED, selector transitions, bounded history, 410).
 */
import assert from "node:assert/strict";
import {
  KubeConflictError,
  KubeGoneError,
  KubeNotFoundError,
  type RawObject,
  type WatchEvent,
} from "../src/kube/mod.ts";
import { startFakeCluster } from "./kube_fixture.ts";

interface List {
  metadata: { resourceVersion: string; continue?: string };
  items: RawObject[];
}

const names = (list: List) => list.items.map((o) => o.metadata!.name);

Deno.test("objects are created, replaced and deleted through REST with optimistic concurrency", async () => {
  await using cluster = startFakeCluster();
  const { client } = cluster;
  const collection = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies";
  const created = await client.request<RawObject>("POST", collection, {
    body: { metadata: { name: "p" }, spec: { podSelector: {} } },
  });
  assert.equal(created.kind, "NetworkPolicy");
  assert.ok(created.metadata?.uid && created.metadata.resourceVersion);
  await assert.rejects(
    client.request("POST", collection, { body: { metadata: { name: "p" }, spec: {} } }),
    KubeConflictError,
  );
  const updated = await client.request<RawObject>("PUT", `${collection}/p`, {
    body: { ...created, spec: { podSelector: { matchLabels: { a: "b" } } } },
  });
  assert.notEqual(updated.metadata?.resourceVersion, created.metadata?.resourceVersion);
  assert.equal(updated.metadata?.uid, created.metadata?.uid);
  await assert.rejects(
    client.request("PUT", `${collection}/p`, { body: created }), // stale resourceVersion
    (e: Error) => e instanceof KubeConflictError && /has been modified/.test(e.message),
  );
  await client.request("DELETE", `${collection}/p`);
  await assert.rejects(client.request("GET", `${collection}/p`), KubeNotFoundError);
  await assert.rejects(
    client.request("POST", "/api/v1/namespaces/nowhere/pods", {
      body: { metadata: { name: "x" } },
    }),
    (e: Error) =>
      e instanceof KubeNotFoundError && /namespaces "nowhere" not found/.test(e.message),
  );
  await assert.rejects(
    client.request("GET", "/apis/networking.k8s.io/v1/pods"),
    KubeNotFoundError,
    "pods are not in the networking group",
  );
});

Deno.test("lists page with limit/continue, filter by selectors, and an old continue token is 410", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  for (const [name, node, app] of [["a", "n1", "web"], ["b", "n2", "web"], ["c", "n1", "db"]]) {
    api.addPod("default", name, { node, labels: { app } });
  }
  const first = await client.request<List>("GET", "/api/v1/pods", { query: { limit: 2 } });
  assert.deepEqual(names(first), ["a", "b"]);
  const second = await client.request<List>("GET", "/api/v1/pods", {
    query: { limit: 2, continue: first.metadata.continue },
  });
  assert.deepEqual(names(second), ["c"]);
  assert.equal(second.metadata.continue, undefined);
  assert.equal(second.metadata.resourceVersion, first.metadata.resourceVersion);

  const filtered = await client.request<List>("GET", "/api/v1/pods", {
    query: { labelSelector: "app in (web,cache),app!=x", fieldSelector: "spec.nodeName=n1" },
  });
  assert.deepEqual(names(filtered), ["a"]);

  api.addPod("default", "d");
  api.compact();
  await assert.rejects(
    client.request("GET", "/api/v1/pods", {
      query: { limit: 2, continue: first.metadata.continue },
    }),
    (e: Error) => e instanceof KubeGoneError && /continue parameter is too old/.test(e.message),
  );
});

Deno.test("a watch from version 0 starts with ADDED for what exists; selectors turn changes into ADDED and DELETED", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  api.addPod("default", "a", { node: "n1" });
  api.addPod("default", "b", { node: "n2" });
  const { resourceVersion } = api.objects;
  // (watches open on first read, so this one replays from the version the changes follow)
  const events = client.watch<RawObject>("/api/v1/pods", {
    query: { labelSelector: "app=web", resourceVersion },
    signal: cluster.signal,
  });
  api.updatePod("default", "a", { labels: { app: "web" } }); // enters the selection
  api.updatePod("default", "a", { labels: { app: "web" }, ip: "10.32.0.1" }); // changes in it
  api.updatePod("default", "a", { labels: { app: "db" } }); // leaves it
  api.updatePod("default", "b", { labels: { app: "other" } }); // never in it
  const seen: string[] = [];
  for await (const event of events as AsyncGenerator<WatchEvent<RawObject>>) {
    seen.push(`${event.type} ${event.object.metadata?.name}`);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, ["ADDED a", "MODIFIED a", "DELETED a"]);

  api.addPod("default", "c", { labels: { app: "web" } });
  const all = client.watch<RawObject>("/api/v1/pods", {
    query: { resourceVersion: "0" },
    signal: cluster.signal,
  });
  const initial: string[] = [];
  for await (const event of all as AsyncGenerator<WatchEvent<RawObject>>) {
    initial.push(`${event.type} ${event.object.metadata?.name}`);
    if (initial.length === 3) break;
  }
  assert.deepEqual(initial, ["ADDED a", "ADDED b", "ADDED c"]);
});

Deno.test("history is bounded: a watch from before what is kept gets 410, one after resumes", async () => {
  await using cluster = startFakeCluster({ historyLimit: 5 });
  const { api, client } = cluster;
  const start = api.objects.resourceVersion;
  for (let i = 0; i < 10; i++) api.addPod("default", `p${i}`);
  const tooOld = client.watch("/api/v1/pods", { query: { resourceVersion: start } });
  await assert.rejects(async () => {
    for await (const _ of tooOld) { /* the ERROR event comes first */ }
  }, KubeGoneError);
  const recent = client.watch<RawObject>("/api/v1/pods", {
    query: { resourceVersion: api.objects.resourceVersion - 2 },
    signal: cluster.signal,
  });
  const seen: string[] = [];
  for await (const event of recent) {
    seen.push(`${event.type} ${event.object.metadata?.name}`);
    if (seen.length === 2) break;
  }
  assert.deepEqual(seen, ["ADDED p8", "ADDED p9"]);
});
