/**
 * Many pods at once, as a node sees when a deployment scales: 50 concurrent ADDs through the
 * installed plugin must give 50 distinct addresses that answer, and 50 concurrent DELs must
 * leave no veth and no allocation. Namespaces are `wtc-s-*`.
 */

import assert from "node:assert/strict";
import {
  agentAllocations,
  createNetns,
  installPlugin,
  invokePlugin,
  linkNames,
  netnsPath,
  ping,
  type RunningAgent,
  startAgent,
  sweep,
} from "./support/plugin.ts";

const PREFIX = "wtc-s";
const NODE = `${PREFIX}-node`;
const PODS = 50;
const config = { cniVersion: "1.1.0", name: "weft", type: "weft" };

Deno.test("cni scale: 50 concurrent ADDs, 50 distinct reachable addresses, 50 DELs leave nothing", async () => {
  await sweep(PREFIX);
  const binDir = await Deno.makeTempDir({ prefix: "weft-cni-scale-" });
  let agent: RunningAgent | undefined;
  try {
    await createNetns(NODE);
    await installPlugin(binDir);
    agent = await startAgent(NODE);
    const pods: string[] = [];
    for (let i = 0; i < PODS; i++) pods.push(await createNetns(`${PREFIX}-p${i}`));
    const cni = (command: string, i: number) =>
      invokePlugin({
        binDir,
        inNetns: NODE,
        command,
        containerID: `ctr-scale-${i}`,
        netns: netnsPath(pods[i]),
        config,
      });

    const added = await Promise.all(pods.map((_, i) => cni("ADD", i)));
    const failures = added.filter((r) => r.code !== 0).map((r) => r.stdout);
    assert.deepEqual(failures, [], "every ADD succeeded");
    const addresses = added.map((r) => r.json.ips[0].address.split("/")[0] as string);
    assert.equal(new Set(addresses).size, PODS, "addresses are distinct");
    const veths = (await linkNames(NODE)).filter((n) => n.startsWith("vethwepl"));
    assert.equal(veths.length, PODS);
    const mine = (await agentAllocations(NODE)).filter((a) => a.containerID.startsWith("ctr-"));
    assert.deepEqual(
      mine.map((a) => a.address.split("/")[0]).sort(),
      [...addresses].sort(),
      "the agent holds exactly the addresses handed out",
    );
    const unreachable: string[] = [];
    for (const [i, target] of addresses.entries()) {
      // from a neighbour pod, so every answer crossed the bridge
      if (!await ping(pods[(i + 1) % PODS], target)) unreachable.push(target);
    }
    assert.deepEqual(unreachable, [], "every pod answers");

    const deleted = await Promise.all(pods.map((_, i) => cni("DEL", i)));
    assert.deepEqual(deleted.filter((r) => r.code !== 0).map((r) => r.stdout), []);
    assert.deepEqual((await linkNames(NODE)).filter((n) => n.startsWith("vethwepl")), []);
    assert.deepEqual(
      (await agentAllocations(NODE)).filter((a) => a.containerID.startsWith("ctr-")),
      [],
    );
  } finally {
    await agent?.stop();
    await sweep(PREFIX);
    await Deno.remove(binDir, { recursive: true }).catch(() => {});
  }
});
