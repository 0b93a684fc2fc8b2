/**
 * The agent on Kubernetes, end to end in a lab: three node namespaces whose agents know nothing
 * but their Node name and a kubeconfig. The API server is the in-memory fake, run as a process
 * on the lab's underlay. Peers must come from the Node list, the IPAM's first split from the
 * Node count, NetworkUnavailable must be cleared on every Node, and a deleted Node's space must
 * be reclaimed exactly once.
 */
import assert from "node:assert/strict";
import { Lab, waitFor } from "./support/lab.ts";
import { LabKubeApi } from "./support/lab_kube_api.ts";

Deno.test("on Kubernetes: peers from Nodes, NetworkUnavailable cleared, deleted Node reclaimed once", async () => {
  const lab = await Lab.create({ nodes: 3, prefix: "wtlk", start: false, peers: false });
  let api: LabKubeApi | undefined;
  try {
    const kube = api = await LabKubeApi.start(lab, { token: "lab-kube-token" });
    const { kubeconfig } = kube;
    for (const node of lab.nodes) {
      await kube.control(`addNode?name=node${node.index}&ip=${node.underlayIp}`);
      node.extraArgs = [
        "--kubeconfig",
        kubeconfig,
        "--node-name",
        `node${node.index}`,
        "--datapath",
        "none",
      ];
    }
    await Promise.all(lab.nodes.map((n) => lab.startAgent(n.index)));

    // peers come from the Node list: every agent reaches the two others
    await waitFor("the mesh to form from the Node list", async () => {
      for (const node of lab.nodes) {
        const peers = (await lab.api(node.index, "GET", "/status/peers")).json as Array<
          { reachable: boolean }
        >;
        if (peers?.filter((p) => p.reachable).length !== 3) return false;
      }
      return true;
    }, { timeoutMs: 30_000 });

    // NetworkUnavailable=False on every Node once its agent is ready
    await waitFor("NetworkUnavailable=False on every Node", async () => {
      for (const node of lab.nodes) {
        const object = await kube.control(`node?name=node${node.index}`) as {
          status?: { conditions?: Array<{ type: string; status: string; reason?: string }> };
        };
        const condition = object.status?.conditions?.find((c) => c.type === "NetworkUnavailable");
        if (condition?.status !== "False") return false;
      }
      return true;
    });

    // the IPAM's first split was agreed among the three Nodes
    const ipam = (await lab.api(1, "GET", "/status/ipam")).json as {
      peers: Array<{ peer: string; owned: number; removed?: boolean }>;
    };
    assert.equal(ipam.peers.filter((p) => p.owned > 0).length, 3, JSON.stringify(ipam.peers));

    // node3 goes away for good: its Node is deleted, exactly one agent reclaims its space
    await lab.stopAgent(3, "SIGKILL");
    await kube.control("deleteNode?name=node3");
    const name3 = lab.node(3).peerName;
    await waitFor("node3's space to be reclaimed", async () => {
      const view = (await lab.api(1, "GET", "/status/ipam")).json as typeof ipam;
      const node3 = view.peers.find((p) => p.peer === name3);
      return !node3 || node3.removed || node3.owned === 0;
    }, { timeoutMs: 30_000 });
    const ledger = await kube.control("configMap?name=weft-reclaims") as {
      data?: Record<string, string>;
    };
    assert.equal(Object.keys(ledger.data ?? {}).length, 1, JSON.stringify(ledger));
    const logs = (await lab.log(1)) + (await lab.log(2));
    assert.equal(logs.match(/Node node3 was deleted; reclaiming/g)?.length, 1, logs);

    // and node1 no longer tries to reach node3
    await waitFor("node1 to forget node3's address", async () => {
      const targets = (await lab.api(1, "GET", "/status/targets")).json as string[];
      return !targets.some((t) => t.startsWith(lab.node(3).underlayIp));
    });
  } finally {
    await api?.close();
    await lab.destroy();
  }
});
