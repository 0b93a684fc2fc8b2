/**
 * The generic informer against the fake API server over HTTP: paged lists, change announcements
 * with old and new objects, bookmarks, relists on 410 and ERROR events, resuming after broken or
 * silent watches, backoff, selectors, and a clean stop.
 */
import assert from "node:assert/strict";
import {
  type Change,
  type InformerOptions,
  KubeConnectionError,
  labelPair,
  type Pod,
  POD_RESOURCE,
  startInformer,
} from "../src/kube/mod.ts";
import { type FakeCluster, startFakeCluster, waitFor } from "./kube_fixture.ts";

function informPods(cluster: FakeCluster, options: Partial<InformerOptions> = {}) {
  const changes: string[] = [];
  const errors: Error[] = [];
  const informer = cluster.track(startInformer(POD_RESOURCE, {
    client: cluster.client,
    signal: cluster.signal,
    backoff: { initialMs: 5, maxMs: 20 },
    watchTimeoutSeconds: 300,
    onError: (error) => void errors.push(error),
    ...options,
  }));
  informer.subscribe({ change: (change) => void changes.push(describe(change)) });
  return { informer, changes, errors };
}

function describe(change: Change<Pod>): string {
  const list = change.fromList ? " (list)" : "";
  switch (change.type) {
    case "added":
      return `+${change.object.name} ${change.object.ips.join()}${list}`;
    case "updated":
      return `~${change.object.name} ${change.old.ips.join()}>${change.object.ips.join()}${list}`;
    case "deleted":
      return `-${change.old.name}${list}`;
  }
}

Deno.test("the first list comes in pages, is announced, and then synced resolves", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  for (let i = 1; i <= 5; i++) api.addPod("default", `p${i}`, { ip: `10.32.0.${i}` });
  const synced: number[] = [];
  const { informer, changes } = informPods(cluster, { pageSize: 2 });
  informer.subscribe({ synced: (pods) => void synced.push(pods.length) });
  await informer.synced;
  assert.deepEqual(changes, [1, 2, 3, 4, 5].map((i) => `+p${i} 10.32.0.${i} (list)`));
  assert.deepEqual(synced, [5]);
  assert.equal(api.requests.filter((r) => r === "list pods").length, 3, "5 pods, 2 a page");
  assert.equal(informer.store.size, 5);
  assert.equal(informer.resourceVersion, String(api.objects.resourceVersion));
});

Deno.test("changes are announced with old and new; changes to fields not kept cost nothing", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "a", { labels: { app: "web" } });
  const { informer, changes } = informPods(cluster);
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);

  api.updatePod("default", "a", { ip: "10.32.0.7", node: "n1" }); // the kubelet ran CNI ADD
  api.modify("pods", { namespace: "default", name: "a" }, (pod) => {
    (pod.status as Record<string, unknown>).conditions = [{ type: "Ready", status: "True" }];
  });
  api.addPod("default", "b", { ip: "10.32.0.8" });
  api.objects.remove("pods", "default", "a");
  await waitFor("four changes", () => changes.length === 4);
  assert.deepEqual(changes, ["+a  (list)", "~a >10.32.0.7", "+b 10.32.0.8", "-a"]);
  assert.deepEqual(informer.store.byIndex("ip", "10.32.0.8").map((p) => p.name), ["b"]);
  assert.deepEqual(informer.store.byIndex("label", labelPair("app", "web")), []);
});

Deno.test("bookmarks advance the version, so a resumed watch needs no relist after compaction", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "a");
  const { informer, changes } = informPods(cluster);
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);
  // Other kinds move the cluster's version on; this informer sees none of it but bookmarks.
  api.addNode("n1");
  api.addNamespace("shop");
  const current = String(api.objects.resourceVersion);
  assert.notEqual(informer.resourceVersion, current);
  api.sendBookmarks();
  await waitFor("the bookmark", () => informer.resourceVersion === current);
  api.compact(); // history before `current` is gone: only a bookmarked watcher can resume
  api.endWatches();
  await waitFor("the watch to reopen", () => api.openWatches === 1);
  api.addPod("default", "b");
  await waitFor("b", () => changes.length === 2);
  assert.equal(informer.listCount, 1);
  assert.deepEqual(api.requests.filter((r) => r === "list pods").length, 1);
});

Deno.test("410 Gone relists: what changed meanwhile is announced once, from the list", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "stays", { ip: "10.32.0.1" });
  api.addPod("default", "goes", { ip: "10.32.0.2" });
  api.addPod("default", "moves", { ip: "10.32.0.3" });
  const resynced: number[] = [];
  const { informer, changes } = informPods(cluster);
  informer.subscribe({ synced: (pods) => void resynced.push(pods.length) });
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);
  changes.length = 0;

  api.unavailable = true;
  api.endWatches();
  api.objects.remove("pods", "default", "goes");
  api.updatePod("default", "moves", { ip: "10.32.0.33" });
  api.addPod("default", "new", { ip: "10.32.0.4" });
  api.compact();
  api.unavailable = false;
  await waitFor("the relist", () => informer.listCount === 2);
  assert.deepEqual(changes, [
    "-goes (list)",
    "~moves 10.32.0.3>10.32.0.33 (list)",
    "+new 10.32.0.4 (list)",
  ]);
  assert.deepEqual(resynced, [3, 3]);
});

Deno.test("an ERROR event other than 410 also relists; a broken stream only resumes", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "a");
  const { informer, errors } = informPods(cluster);
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);
  api.breakWatches();
  await waitFor("the watch to resume", () => api.openWatches === 1);
  assert.equal(informer.listCount, 1);
  api.failWatches(500, "InternalError", "etcd leader changed");
  await waitFor("the relist", () => informer.listCount === 2);
  assert.ok(errors.some((e) => /500 InternalError: etcd leader changed/.test(e.message)));
});

Deno.test("a watch silent past idleTimeoutMs is broken: reported, then resumed", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  const { informer, errors, changes } = informPods(cluster, { idleTimeoutMs: 100 });
  await informer.synced;
  await waitFor("a silent watch to be given up", () => errors.length > 0);
  assert.ok(
    errors[0] instanceof KubeConnectionError && /silent for 100 ms/.test(errors[0].message),
  );
  api.addPod("default", "late");
  await waitFor("late", () => changes.length === 1);
  assert.equal(informer.listCount, 1);
});

Deno.test("the server ends a watch at timeoutSeconds and the informer watches on", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  const { informer, changes } = informPods(cluster, { watchTimeoutSeconds: 1 });
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);
  const watches = () => api.requests.filter((r) => r === "watch pods").length;
  await waitFor("a second watch after the timeout", () => watches() === 2);
  api.addPod("default", "after");
  await waitFor("after", () => changes.length === 1);
  assert.equal(informer.listCount, 1);
});

Deno.test("failures back off exponentially with jitter, and a success resets the pace", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  const delays: number[] = [];
  const backoff = { initialMs: 100, maxMs: 800, random: () => 0.5 };
  api.unavailable = true;
  const { informer } = informPods(cluster, {
    backoff,
    sleep: (ms) => {
      delays.push(ms);
      return new Promise((resolve) => setTimeout(resolve, 1));
    },
  });
  await waitFor("six failed lists", () => delays.length >= 6);
  api.unavailable = false;
  await informer.synced;
  // base 100 ms doubling up to 800, times 0.5 + random/2
  assert.deepEqual(delays.slice(0, 6), [75, 150, 300, 600, 600, 600]);

  await waitFor("the watch", () => api.openWatches === 1);
  delays.length = 0;
  api.unavailable = true;
  api.breakWatches();
  await waitFor("a failed resume", () => delays.length >= 2);
  assert.deepEqual(delays.slice(0, 2), [75, 150]);
});

Deno.test("a label selector: a pod relabelled out of it is announced as deleted", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addPod("default", "a", { labels: { role: "db" } });
  api.addPod("default", "b", { labels: { role: "web" } });
  const { informer, changes } = informPods(cluster, { labelSelector: "role=db" });
  await informer.synced;
  await waitFor("the watch", () => api.openWatches === 1);
  api.updatePod("default", "a", { labels: { role: "cache" } });
  api.updatePod("default", "b", { labels: { role: "db" } });
  await waitFor("two changes", () => changes.length === 3);
  assert.deepEqual(changes, ["+a  (list)", "-a", "+b "]);
});

Deno.test("a listener that throws is reported and the others still hear every change", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  const { informer, changes, errors } = informPods(cluster);
  informer.subscribe({
    change() {
      throw new Error("listener bug");
    },
  });
  await informer.synced;
  api.addPod("default", "a");
  api.addPod("default", "b");
  await waitFor("both", () => changes.length === 2);
  assert.equal(errors.filter((e) => e.message === "listener bug").length, 2);
});

Deno.test("stopping before the first list rejects synced and ends the loop", async () => {
  await using cluster = startFakeCluster();
  cluster.api.forbidden.add("list pods");
  const { informer, errors } = informPods(cluster);
  await waitFor("a refused list", () => errors.length > 0);
  cluster.stop();
  await assert.rejects(informer.synced, /stopped before its first list/);
  await informer.done;
  assert.equal(cluster.api.openWatches, 0);
});
