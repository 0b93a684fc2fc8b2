/**
 * The Node watcher against a local HTTP API server: peers follow the cluster through adds,
 * deletes, watch expiry, API outages and missing RBAC.
 */
import assert from "node:assert/strict";
import { KubeForbiddenError, type NodeSummary, startNodeWatcher } from "../src/kube/mod.ts";
import { type FakeCluster, startFakeCluster, waitFor } from "./kube_fixture.ts";

interface Recorder {
  peers: string[][];
  deleted: string[];
  errors: Error[];
  synced: number;
}

function watch(cluster: FakeCluster, nodeName: string) {
  const seen: Recorder = { peers: [], deleted: [], errors: [], synced: 0 };
  const watcher = cluster.track(startNodeWatcher({
    client: cluster.client,
    nodeName,
    signal: cluster.signal,
    onPeers: (addresses) => void seen.peers.push(addresses),
    onNodeDeleted: (name: string, node: NodeSummary) => {
      assert.ok(node.uid, "a deleted node comes with its uid");
      seen.deleted.push(`${name}/${node.uid.slice(0, 8)}`);
    },
    onSynced: () => void seen.synced++,
    onError: (error) => void seen.errors.push(error),
    backoff: { initialMs: 5, maxMs: 20 },
    watchTimeoutSeconds: 300,
  }));
  return { watcher, seen, last: () => seen.peers.at(-1) ?? [] };
}

function uid(cluster: FakeCluster, name: string): string {
  return cluster.api.node(name)!.metadata.uid.slice(0, 8);
}

Deno.test("peers are the other nodes' InternalIPs and follow add, change and delete", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2", externalIp: "203.0.113.2" });
  const bUid = uid(cluster, "b");
  const { watcher, seen, last } = watch(cluster, "self");
  await watcher.ready;
  assert.deepEqual(seen.peers, [["10.0.0.2"]]);

  api.addNode("c", { externalIp: "203.0.113.3" }); // no InternalIP: ExternalIP fallback
  await waitFor("c to join", () => last().length === 2);
  assert.deepEqual(last(), ["10.0.0.2", "203.0.113.3"]);

  api.setNodeAddresses("c", { internalIp: "10.0.0.3", externalIp: "203.0.113.3" });
  await waitFor("c's InternalIP", () => last().includes("10.0.0.3"));

  api.deleteNode("b");
  await waitFor("b to go", () => seen.deleted.length === 1);
  assert.deepEqual(last(), ["10.0.0.3"]);
  assert.deepEqual(seen.deleted, [`b/${bUid}`]);
  assert.equal(watcher.listCount, 1, "a healthy watch needs no relist");
  assert.deepEqual(seen.errors, []);
});

Deno.test("a status-only change to a Node (kubelet heartbeat) announces nothing", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2" });
  const { watcher, seen } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => api.openWatches === 1);
  for (let i = 0; i < 5; i++) {
    api.modify("nodes", { name: "b" }, (node) => {
      (node.status as Record<string, unknown>).heartbeat = i;
    });
  }
  api.addNode("c", { internalIp: "10.0.0.3" }); // a change that matters, after the heartbeats
  await waitFor("c", () => seen.peers.length === 2);
  assert.deepEqual(seen.peers, [["10.0.0.2"], ["10.0.0.2", "10.0.0.3"]]);
});

Deno.test("watch expiry (410) makes the watcher relist and report a deletion it missed once", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2" });
  const bUid = uid(cluster, "b");
  const { watcher, seen, last } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => api.openWatches === 1);

  // The watch is cut, history is compacted, and a node goes and another comes meanwhile.
  api.endWatches();
  api.unavailable = true;
  api.deleteNode("b");
  api.addNode("d", { internalIp: "10.0.0.4" });
  api.compact();
  api.unavailable = false;
  await waitFor("the relist to see d", () => last().join() === "10.0.0.4");
  assert.deepEqual(seen.deleted, [`b/${bUid}`]);
  assert.equal(watcher.listCount, 2);

  // A live watch told to expire relists too.
  await waitFor("a watch to reopen", () => api.openWatches === 1);
  api.expireWatches();
  await waitFor("the relist after 410", () => watcher.listCount === 3);
  api.addNode("e", { internalIp: "10.0.0.5" });
  await waitFor("e after the relist", () => last().includes("10.0.0.5"));
  assert.deepEqual(seen.deleted, [`b/${bUid}`], "nothing reported twice");
  assert.equal(seen.synced, 3, "onSynced after every list");
});

Deno.test("a Node re-created under its name while nobody watched is reported as deleted", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2" });
  const oldUid = uid(cluster, "b");
  const { watcher, seen, last } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => api.openWatches === 1);
  api.unavailable = true;
  api.endWatches();
  api.deleteNode("b");
  api.addNode("b", { internalIp: "10.0.0.22" });
  api.compact();
  api.unavailable = false;
  await waitFor("b's new address", () => last().join() === "10.0.0.22");
  assert.deepEqual(seen.deleted, [`b/${oldUid}`]);
});

Deno.test("a watch the server ends (timeoutSeconds) resumes from its resourceVersion without a relist", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  const { watcher, last } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => api.openWatches === 1);
  api.addNode("b", { internalIp: "10.0.0.2" });
  await waitFor("b", () => last().includes("10.0.0.2"));
  api.endWatches();
  api.addNode("c", { internalIp: "10.0.0.3" }); // happens between the two watches
  await waitFor("c from the resumed watch", () => last().includes("10.0.0.3"));
  assert.equal(watcher.listCount, 1);
});

Deno.test("an API server crash mid-stream is survived by backing off and resuming the watch", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2" });
  api.addNode("c", { internalIp: "10.0.0.3" });
  const { watcher, seen, last } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => api.openWatches === 1);

  api.unavailable = true;
  api.breakWatches();
  await waitFor("failed retries while the API is down", () => seen.errors.length >= 2);
  api.deleteNode("c");
  api.unavailable = false;
  await waitFor("c gone after the API returns", () => last().join() === "10.0.0.2");
  assert.equal(seen.deleted.length, 1);
  assert.equal(watcher.listCount, 1, "the kept history made a relist unnecessary");
  assert.match(seen.errors[0].message, /broke|503/);
});

Deno.test("a watcher without RBAC reports KubeForbiddenError and starts once it is granted", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  api.addNode("self", { internalIp: "10.0.0.1" });
  api.addNode("b", { internalIp: "10.0.0.2" });
  api.forbidden.add("list nodes");
  const { watcher, seen } = watch(cluster, "self");
  await waitFor("the 403 to be reported", () => seen.errors.length > 0);
  assert.ok(seen.errors[0] instanceof KubeForbiddenError);
  assert.deepEqual(seen.peers, []);
  api.forbidden.clear();
  await watcher.ready;
  assert.deepEqual(watcher.peers(), ["10.0.0.2"]);
});

Deno.test("stopping the watcher ends its loop and its watch connection", async () => {
  await using cluster = startFakeCluster();
  cluster.api.addNode("self", { internalIp: "10.0.0.1" });
  const { watcher } = watch(cluster, "self");
  await watcher.ready;
  await waitFor("the watch to open", () => cluster.api.openWatches === 1);
  cluster.stop();
  await watcher.done;
  await waitFor("the server to see the watch closed", () => cluster.api.openWatches === 0);
});
