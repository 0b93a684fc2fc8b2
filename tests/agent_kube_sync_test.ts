/**
 * The agent's Kubernetes wiring (src/agent/kube_sync.ts) against the in-memory API server on
 * loopback: a deleted Node's reclaim that fails is tried again until it succeeds, by the one
 * agent whose claim landed.
 */
import assert from "node:assert/strict";
import { resolveAgentConfig } from "../src/agent/mod.ts";
import { startKubernetes } from "../src/agent/kube_sync.ts";
import { startFakeCluster, TOKEN, waitFor } from "./kube_fixture.ts";

Deno.test("a deleted Node's reclaim that fails is retried until it succeeds", async () => {
  await using cluster = startFakeCluster();
  const dir = await Deno.makeTempDir({ prefix: "weft-kube-sync-test-" });
  const stopping = new AbortController();
  try {
    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{name: test, cluster: {server: '${cluster.url}'}}]`,
        `users: [{name: weft, user: {token: ${TOKEN}}}]`,
        "contexts: [{name: test, context: {cluster: test, user: weft}}]",
        "current-context: test",
        "",
      ].join("\n"),
    );
    cluster.api.addNode("node1", { internalIp: "192.168.77.11" });
    cluster.api.addNode("node2", { internalIp: "192.168.77.12" });
    const config = await resolveAgentConfig(
      { stateDir: dir, nodeName: "node1", kubeconfig, ipallocInit: "consensus=2" },
      {},
    );
    const attempts: string[] = [];
    const connected: string[] = [];
    const log: string[] = [];
    const integration = await startKubernetes({
      config,
      mesh: { connect: (address) => connected.push(address), forget: () => {} },
      signal: stopping.signal,
      ready: Promise.resolve(),
      log: (line) => log.push(line),
      reclaim: (nodeName, options) => {
        attempts.push(`${nodeName} exists=${options.nodeExists()}`);
        // the first try fails as a transient failure would (the IPAM's store is busy)
        return attempts.length === 1
          ? Promise.reject(new Error("database is locked"))
          : Promise.resolve();
      },
    });
    await waitFor("the peers from the Node list", () => connected.includes("192.168.77.12"));
    cluster.api.deleteNode("node2");
    await waitFor("a second reclaim attempt", () => attempts.length >= 2);
    assert.deepEqual(attempts, ["node2 exists=false", "node2 exists=false"]);
    assert.ok(log.some((line) => line.includes("database is locked")), log.join("\n"));
    stopping.abort();
    await integration.done;
    assert.equal(attempts.length, 2, "done after the success");
  } finally {
    stopping.abort();
    await Deno.remove(dir, { recursive: true });
  }
});
