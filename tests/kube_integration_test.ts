/**
 * startKubeIntegration, the one call the agent makes: two agents on a local HTTP API server
 * reclaim a deleted node once, and each clears its node's NetworkUnavailable when ready.
 */
import assert from "node:assert/strict";
import { type NodeSummary, startKubeIntegration } from "../src/kube/mod.ts";
import { startFakeCluster, waitFor } from "./kube_fixture.ts";

function conditionOf(node: Record<string, unknown> | undefined) {
  const conditions = (node?.status as { conditions: { type: string; status: string }[] })
    .conditions;
  return conditions.find((c) => c.type === "NetworkUnavailable")?.status;
}

Deno.test("two agents: peers, one reclaim per deleted node, NetworkUnavailable cleared when ready", async () => {
  await using cluster = startFakeCluster();
  const { api } = cluster;
  for (const [name, ip] of [["a", "10.0.0.1"], ["b", "10.0.0.2"], ["c", "10.0.0.3"]]) {
    api.addNode(name, { internalIp: ip });
  }
  const reclaimed: string[] = [];
  const peers = new Map<string, string[]>();
  const ready = new Map<string, () => void>();
  const agents = ["a", "b"].map((self) => {
    const client = cluster.newClient();
    const integration = cluster.track(startKubeIntegration({
      client,
      nodeName: self,
      signal: cluster.signal,
      onPeers: (addresses) => void peers.set(self, addresses),
      reclaim: async (name: string, node: NodeSummary) => {
        await Promise.resolve();
        reclaimed.push(`${self}:${name}:${node.uid === api.node(name)?.metadata.uid}`);
      },
      ready: new Promise<void>((resolve) => ready.set(self, resolve)),
      backoff: { initialMs: 5, maxMs: 20 },
      onError: () => {},
    }));
    return { client, integration };
  });
  await Promise.all(agents.map((a) => a.integration.watcher.ready));
  assert.deepEqual(peers.get("a"), ["10.0.0.2", "10.0.0.3"]);
  assert.equal(api.patches.length, 0, "nothing is patched before the agent is ready");

  ready.get("a")!();
  assert.equal(await agents[0].integration.networkAvailable, true);
  assert.equal(conditionOf(api.node("a")), "False");
  assert.equal(conditionOf(api.node("b")), undefined);

  api.deleteNode("c");
  await waitFor("the reclaim", () => reclaimed.length === 1);
  await waitFor(
    "both to forget c",
    () => [...peers.values()].every((p) => !p.includes("10.0.0.3")),
  );
  cluster.stop();
  await Promise.all(agents.map((a) => a.integration.done));
  assert.equal(reclaimed.length, 1, `reclaimed ${JSON.stringify(reclaimed)}`);
  assert.match(reclaimed[0], /^[ab]:c:false$/); // c's uid, and c is gone from the API
  assert.equal(await agents[1].integration.networkAvailable, false, "b was never ready");
});

Deno.test("clearing NetworkUnavailable is retried until RBAC allows it", async () => {
  await using cluster = startFakeCluster();
  const { api, client } = cluster;
  api.addNode("a", { internalIp: "10.0.0.1" });
  api.forbidden.add("patch nodes/status");
  const errors: Error[] = [];
  const integration = cluster.track(startKubeIntegration({
    client,
    nodeName: "a",
    signal: cluster.signal,
    onPeers: () => {},
    reclaim: () => Promise.resolve(),
    ready: Promise.resolve(),
    backoff: { initialMs: 5, maxMs: 20 },
    onError: (error) => void errors.push(error),
  }));
  await waitFor("a refused patch", () => errors.length > 0);
  assert.match(errors[0].message, /403 Forbidden/);
  api.forbidden.clear();
  assert.equal(await integration.networkAvailable, true);
  assert.equal(conditionOf(api.node("a")), "False");
});
