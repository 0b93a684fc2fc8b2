/**
 * Reclaiming a deleted node's space exactly once among racing agents, through the ConfigMap's
 * resourceVersion preconditions on a local HTTP API server.
 */
import assert from "node:assert/strict";
import {
  claimReclaim,
  KubeForbiddenError,
  RECLAIMS_CONFIGMAP,
  startNodeWatcher,
} from "../src/kube/mod.ts";
import { startFakeCluster, waitFor } from "./kube_fixture.ts";

function reclaims(data: Record<string, string> | undefined) {
  return Object.values(data ?? {}).map((v) => JSON.parse(v) as { peer: string; claimant: string });
}

Deno.test("two agents watching the cluster reclaim a deleted node exactly once", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  for (const [name, ip] of [["a", "10.0.0.1"], ["b", "10.0.0.2"], ["c", "10.0.0.3"]]) {
    api.addNode(name, { internalIp: ip });
  }
  const wins: string[] = [];
  const outcomes: boolean[] = [];
  const agents = ["a", "b"].map((self) => {
    // Each agent has its own client and connection, as separate pods would.
    const client = cluster.newClient();
    const watcher = cluster.track(startNodeWatcher({
      client,
      nodeName: self,
      signal: cluster.signal,
      onPeers: () => {},
      onNodeDeleted: async (name, node) => {
        const won = await claimReclaim(client, name, { claimant: self, uid: node.uid });
        outcomes.push(won);
        if (won) wins.push(`${self} reclaims ${name}`);
      },
      backoff: { initialMs: 5, maxMs: 20 },
    }));
    return { client, watcher };
  });
  await Promise.all(agents.map((agent) => agent.watcher.ready));
  api.deleteNode("c");
  await waitFor("both agents to decide", () => outcomes.length === 2);
  assert.equal(wins.length, 1, `exactly one winner, got ${JSON.stringify(wins)}`);
  assert.deepEqual(outcomes.sort(), [false, true]);
  const stored = reclaims(api.configMap("kube-system", RECLAIMS_CONFIGMAP)?.data as never);
  assert.deepEqual(stored.map((r) => r.peer), ["c"]);
  assert.equal(`${stored[0].claimant} reclaims c`, wins[0]);
});

Deno.test("many agents racing on many deleted nodes: one winner per node", async () => {
  await using cluster = startFakeCluster();
  const claimants = ["a", "b", "c", "d"];
  const deleted = ["n1", "n2", "n3", "n4", "n5"];
  const results = await Promise.all(
    deleted.flatMap((peer) =>
      claimants.map(async (claimant) => ({
        peer,
        claimant,
        won: await claimReclaim(cluster.client, peer, { claimant, uid: `uid-${peer}` }),
      }))
    ),
  );
  for (const peer of deleted) {
    const winners = results.filter((r) => r.peer === peer && r.won);
    assert.equal(winners.length, 1, `node ${peer} won by ${JSON.stringify(winners)}`);
  }
  const stored = reclaims(
    cluster.api.configMap("kube-system", RECLAIMS_CONFIGMAP)?.data as never,
  );
  assert.deepEqual(stored.map((r) => r.peer).sort(), deleted);
  assert.ok(cluster.api.conflicts > 0, "the claims really raced");
});

Deno.test("a conflicting write makes the claimer re-read and stand down", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  await claimReclaim(client, "old", { claimant: "a", uid: "u0" }); // the ConfigMap exists now
  const rival = cluster.newClient({ source: "rival" });
  let slipped = false;
  api.beforeWrite = async ({ resource }) => {
    if (slipped || resource !== "configmaps") return;
    slipped = true;
    // Another agent's claim lands between our read and our write.
    assert.equal(await claimReclaim(rival, "gone", { claimant: "rival", uid: "u1" }), true);
  };
  assert.equal(await claimReclaim(client, "gone", { claimant: "me", uid: "u1" }), false);
  assert.ok(slipped);
  assert.equal(api.conflicts, 1, "our stale write was refused once, then we re-read");
  assert.deepEqual(
    reclaims(api.configMap("kube-system", RECLAIMS_CONFIGMAP)?.data as never).map((r) =>
      r.claimant
    ),
    ["a", "rival"],
  );
});

Deno.test("a claim is idempotent for its claimant and keyed by uid for re-created nodes", async () => {
  await using cluster = startFakeCluster();
  const { client } = cluster;
  assert.equal(await claimReclaim(client, "n1", { claimant: "a", uid: "first" }), true);
  assert.equal(await claimReclaim(client, "n1", { claimant: "a", uid: "first" }), true);
  assert.equal(await claimReclaim(client, "n1", { claimant: "b", uid: "first" }), false);
  // The same name deleted again later is a different Node object: it needs its own reclaim.
  assert.equal(await claimReclaim(client, "n1", { claimant: "b", uid: "second" }), true);
});

Deno.test("old claims are pruned on the next write", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  const day = 24 * 3600_000;
  await claimReclaim(client, "n1", { claimant: "a", uid: "1", now: () => 0 });
  await claimReclaim(client, "n2", { claimant: "a", uid: "2", now: () => 40 * day });
  const stored = reclaims(api.configMap("kube-system", RECLAIMS_CONFIGMAP)?.data as never);
  assert.deepEqual(stored.map((r) => r.peer), ["n2"]);
});

Deno.test("claiming without ConfigMap RBAC fails with KubeForbiddenError", async () => {
  await using cluster = startFakeCluster();
  cluster.api.forbidden.add("get configmaps");
  await assert.rejects(
    claimReclaim(cluster.client, "n1", { claimant: "a" }),
    (error: Error) => error instanceof KubeForbiddenError && /configmaps/.test(error.message),
  );
});
