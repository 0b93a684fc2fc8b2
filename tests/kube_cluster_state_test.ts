/**
 * The cluster state NetworkPolicy reads (Pods, Namespaces, NetworkPolicies), against the fake
 * API server over HTTP: indexes, incremental changes, namespace deletion, the direct pod read
 * for a CNI ADD that beats the watch, and a cluster of the bench's size.
 */
import assert from "node:assert/strict";
import { labelPair, objectKey, startClusterState } from "../src/kube/mod.ts";
import { type FakeCluster, startFakeCluster, waitFor } from "./kube_fixture.ts";

function start(cluster: FakeCluster) {
  const errors: Error[] = [];
  const state = cluster.track(startClusterState({
    client: cluster.client,
    signal: cluster.signal,
    backoff: { initialMs: 5, maxMs: 20 },
    watchTimeoutSeconds: 300,
    onError: (error) => void errors.push(error),
  }));
  return { state, errors };
}

const keys = (objects: { namespace?: string; name: string }[]) => objects.map(objectKey).sort();

Deno.test("pods, namespaces and policies are indexed as policy looks them up", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNamespace("shop", { team: "a" });
  api.addNamespace("bank", { team: "b" });
  api.addPod("shop", "web", {
    labels: { app: "web" },
    ip: "10.32.0.1",
    node: "n1",
    ports: [{ name: "http", containerPort: 8080 }],
  });
  api.addPod("shop", "db", { labels: { app: "db" }, ip: "10.32.0.2", node: "n2" });
  api.addPod("bank", "web", { labels: { app: "web" }, ip: "10.32.1.1", node: "n1" });
  api.addPolicy("shop", "deny-all", { podSelector: {}, policyTypes: ["Ingress"] });
  api.addPolicy("bank", "web", {
    podSelector: { matchLabels: { app: "web" } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "a" } } }] }],
  });
  const { state } = start(cluster);
  await state.synced;
  const { pods, namespaces, policies } = state;

  assert.deepEqual(keys(pods.store.byIndex("label", labelPair("app", "web"))), [
    "bank/web",
    "shop/web",
  ]);
  assert.deepEqual(keys(pods.store.byIndex("namespace", "shop")), ["shop/db", "shop/web"]);
  assert.deepEqual(keys(pods.store.byIndex("node", "n1")), ["bank/web", "shop/web"]);
  assert.deepEqual(keys(pods.store.byIndex("ip", "10.32.0.2")), ["shop/db"]);
  assert.deepEqual(pods.store.get("shop/web")?.namedPorts, [
    { name: "http", port: 8080, protocol: "TCP" },
  ]);
  assert.deepEqual(keys(namespaces.store.byIndex("label", labelPair("team", "a"))), ["shop"]);
  // the API labels every namespace with its name, which is how policies select one namespace
  assert.deepEqual(
    keys(namespaces.store.byIndex("label", labelPair("kubernetes.io/metadata.name", "bank"))),
    ["bank"],
  );
  assert.deepEqual(keys(policies.store.byIndex("namespace", "bank")), ["bank/web"]);
  assert.deepEqual(policies.store.get("bank/web")?.spec.ingress, [
    { from: [{ namespaceSelector: { matchLabels: { team: "a" } } }] },
  ]);
});

Deno.test("policy, namespace and pod changes arrive incrementally; a namespace takes its objects along", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNamespace("shop");
  api.addPod("shop", "web", { ip: "10.32.0.1" });
  api.addPolicy("shop", "p", { podSelector: {} });
  const { state } = start(cluster);
  const seen: string[] = [];
  state.policies.subscribe({
    change: (c) => void seen.push(`policy ${c.type} ${(c.object ?? c.old).name}`),
  });
  state.namespaces.subscribe({
    change: (c) =>
      void seen.push(
        `namespace ${c.type} ${(c.object ?? c.old).name} ${c.object?.labels.env ?? ""}`,
      ),
  });
  state.pods.subscribe({
    change: (c) => void seen.push(`pod ${c.type} ${(c.object ?? c.old).name}`),
  });
  await state.synced;
  await waitFor("three watches", () => api.openWatches === 3);
  seen.length = 0;

  api.updatePolicy("shop", "p", { podSelector: { matchLabels: { app: "web" } } });
  api.setNamespaceLabels("shop", { env: "prod" });
  api.remove("namespaces", undefined, "shop");
  await waitFor("the namespace's deletion", () => seen.length === 5);
  assert.deepEqual(seen.sort(), [
    "namespace deleted shop ",
    "namespace updated shop prod",
    "pod deleted web",
    "policy deleted p",
    "policy updated p",
  ]);
  assert.equal(state.pods.store.size, 0);
  assert.equal(state.policies.store.size, 0);
});

Deno.test("a pod the watch has not delivered yet is read from the API, by uid when given", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "early", { labels: { app: "a" } });
  const { state } = start(cluster);
  await state.synced;
  const gets = () => api.requests.filter((r) => r === "get pods").length;

  assert.equal((await state.pod("default", "early"))?.labels.app, "a");
  assert.equal(gets(), 0, "a stored pod costs no request");

  // The pod watch is held back (as when the API is slow to deliver), and pods come and go.
  api.forbidden.add("watch pods");
  api.endWatches();
  const oldUid = api.objects.get("pods", "default", "early")!.metadata.uid;
  api.remove("pods", "default", "early");
  const fresh = api.addPod("default", "early", { labels: { app: "b" } });
  api.addPod("default", "late", { labels: { app: "c" } });

  assert.equal(state.pods.store.get("default/late"), undefined);
  assert.equal((await state.pod("default", "late"))?.labels.app, "c");
  assert.equal((await state.pod("default", "early"))?.uid, oldUid, "no uid: the stored one");
  const early = await state.pod("default", "early", { uid: fresh.metadata.uid });
  assert.equal(early?.labels.app, "b");
  assert.equal(await state.pod("default", "never"), undefined);
  assert.equal(gets(), 3);
});

Deno.test("1,000 pods in 20 namespaces and 200 policies sync, and a change still arrives", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  for (let n = 0; n < 20; n++) api.addNamespace(`ns${n}`, { team: `t${n % 4}` });
  for (let i = 0; i < 1000; i++) {
    api.addPod(`ns${i % 20}`, `pod${i}`, {
      labels: { app: `app${i % 50}`, tier: i % 2 ? "front" : "back" },
      ip: `10.32.${i >> 8}.${i & 255}`,
      node: `node${i % 10}`,
    });
  }
  for (let i = 0; i < 200; i++) {
    api.addPolicy(`ns${i % 20}`, `policy${i}`, {
      podSelector: { matchLabels: { app: `app${i % 50}` } },
      ingress: [{ from: [{ podSelector: { matchLabels: { tier: "front" } } }] }],
    });
  }
  const { state, errors } = start(cluster);
  await state.synced;
  assert.equal(state.pods.store.size, 1000);
  assert.equal(state.policies.store.size, 200);
  assert.equal(state.pods.store.byIndex("node", "node3").length, 100);
  assert.equal(state.pods.store.byIndex("label", labelPair("app", "app7")).length, 20);
  assert.equal(api.requests.filter((r) => r === "list pods").length, 2, "pages of 500");
  await waitFor("three watches", () => api.openWatches === 3);
  api.updatePod("ns7", "pod7", { labels: { app: "moved" } });
  await waitFor("the relabel", () => state.pods.store.get("ns7/pod7")?.labels.app === "moved");
  assert.deepEqual(errors, []);
});
