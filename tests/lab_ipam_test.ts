/**
 * Cluster-wide IPAM between real agents in a lab (issue 5): unique addresses under concurrent
 * allocation on every node, space moving to a node that runs out, rmpeer raced on two nodes,
 * restarts, and a partitioned minority. The data path is off: these are about addresses only.
 */
import assert from "node:assert/strict";
import { Lab, sh, waitFor } from "./support/lab.ts";

interface Allocation {
  containerID: string;
  address: string;
}
interface IpamView {
  ready: boolean;
  used: number;
  free: number;
  owned: Array<{ size: number }>;
  peers: Array<{ peer: string; owned: number; reachable: boolean; removed?: boolean }>;
  reclaims?: Array<{ peer: string }>;
}

function ipamLab(prefix: string, options: { range?: string; nodes?: number } = {}) {
  const nodes = options.nodes ?? 3;
  return Lab.create({
    nodes,
    prefix,
    ipallocRange: options.range,
    agentArgs: ["--ipalloc-init", `consensus=${nodes}`, "--datapath", "none"],
  });
}

/** `count` allocations on one node at once, each its own HTTP request (like concurrent ADDs). */
async function allocateMany(lab: Lab, node: number, count: number, tag: string) {
  const dir = `${lab.workDir}/${tag}`;
  await Deno.mkdir(dir, { recursive: true });
  // each request writes its own files: concurrent writers to one pipe would interleave
  const script = `for i in $(seq 1 ${count}); do ` +
    `curl -s --max-time 20 -X POST -H 'content-type: application/json' -d '{"ifname":"eth0"}' ` +
    `-o ${dir}/$i.json -w '%{http_code}' http://127.0.0.1:6784/ip/${tag}-$i > ${dir}/$i.code & ` +
    `done; wait`;
  await sh(["sh", "-c", script], { netns: lab.node(node).netns });
  const results: Array<{ code: number; body: Record<string, string> }> = [];
  for (let i = 1; i <= count; i++) {
    results.push({
      code: Number(await Deno.readTextFile(`${dir}/${i}.code`)),
      body: JSON.parse(await Deno.readTextFile(`${dir}/${i}.json`)),
    });
  }
  return results;
}

async function ipam(lab: Lab, node: number): Promise<IpamView> {
  return (await lab.api(node, "GET", "/status/ipam")).json as IpamView;
}

async function allocations(lab: Lab, node: number): Promise<Allocation[]> {
  return (await lab.api(node, "GET", "/ip")).json as Allocation[];
}

function assertUnique(all: Allocation[]) {
  const seen = new Map<string, string>();
  for (const a of all) {
    const holder = seen.get(a.address);
    assert.equal(holder, undefined, `${a.address} held by both ${holder} and ${a.containerID}`);
    seen.set(a.address, a.containerID);
  }
}

async function clusterAllocations(lab: Lab, nodes: number[]): Promise<Allocation[]> {
  return (await Promise.all(nodes.map((n) => allocations(lab, n)))).flat();
}

Deno.test("210 concurrent allocations across 3 nodes are unique; a restart keeps them", async () => {
  const lab = await ipamLab("wtia");
  try {
    const results = (await Promise.all([1, 2, 3].map((n) => allocateMany(lab, n, 70, `n${n}`))))
      .flat();
    assert.equal(results.length, 210);
    for (const r of results) assert.equal(r.code, 200, JSON.stringify(r.body));
    const all = await clusterAllocations(lab, [1, 2, 3]);
    assert.equal(all.length, 210 + 3, "210 pods and three bridges");
    assertUnique(all);

    const before = JSON.stringify(await allocations(lab, 2));
    await lab.restartAgent(2);
    assert.equal(JSON.stringify(await allocations(lab, 2)), before);
  } finally {
    await lab.destroy();
  }
});

Deno.test("a node that runs out of space gets more from another", async () => {
  // a /26: 64 addresses (62 usable) split three ways, about 21 each
  const lab = await ipamLab("wtib", { range: "10.32.0.0/26" });
  try {
    const ownedBefore = (await ipam(lab, 1)).owned.reduce((n, r) => n + r.size, 0);
    assert.ok(ownedBefore < 30, `node1 owns ${ownedBefore}`);
    const results = [];
    for (let i = 0; i < 40; i++) {
      results.push(await lab.api(1, "POST", `/ip/grow-${i}`, { ifname: "eth0" }));
    }
    assert.ok(
      results.every((r) => r.code === 200),
      JSON.stringify(results.find((r) => r.code !== 200)),
    );
    const ownedAfter = (await ipam(lab, 1)).owned.reduce((n, r) => n + r.size, 0);
    assert.ok(ownedAfter > ownedBefore, `${ownedAfter} > ${ownedBefore}`);
    assertUnique(await clusterAllocations(lab, [1, 2, 3]));

    // until the whole range is used: then a clear 507, not a hang
    let last;
    for (let i = 0; i < 30; i++) {
      last = await lab.api(1, "POST", `/ip/fill-${i}`, { ifname: "eth0" });
      if (last.code !== 200) break;
    }
    assert.equal(last!.code, 507, JSON.stringify(last));
    assert.match((last!.json as { error: string }).error, /./);
    assertUnique(await clusterAllocations(lab, [1, 2, 3]));
  } finally {
    await lab.destroy();
  }
});

Deno.test("rmpeer run on two nodes at once reclaims exactly once; the removed peer starts clean on return", async () => {
  const lab = await ipamLab("wtic", { range: "10.32.0.0/24" });
  try {
    await lab.api(3, "POST", "/ip/old-pod", { ifname: "eth0" });
    await lab.stopAgent(3, "SIGKILL");
    const name3 = lab.node(3).peerName;
    await waitFor(
      "node3 to be unreachable",
      async () => (await ipam(lab, 1)).peers.find((p) => p.peer === name3)?.reachable === false,
    );
    const [r1, r2] = await Promise.all([
      lab.weft(1, ["rmpeer", "node3"]),
      lab.weft(2, ["rmpeer", name3]),
    ]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);

    // node3's space ends up owned by the live peers, each address by exactly one of them
    let lastView: IpamView | undefined;
    await waitFor("node3's space to be reclaimed", async () => {
      const view = lastView = await ipam(lab, 1);
      const node3 = view.peers.find((p) => p.peer === name3);
      return (!node3 || node3.owned === 0) && !(view.reclaims ?? []).length;
    }, { timeoutMs: 30_000 }).catch(async (error) => {
      const node2 = await ipam(lab, 2);
      throw new Error(
        `${error.message}; node1's view: ${JSON.stringify(lastView)}; node2's: ${
          JSON.stringify(node2)
        }`,
      );
    });
    const total = (v: IpamView) =>
      v.peers.filter((p) => !p.removed).reduce((n, p) => n + p.owned, 0);
    const ownership = (v: IpamView) => JSON.stringify(v.peers.map((p) => [p.peer, p.owned]));
    // the ring converges: both live nodes see the same owners, covering the whole range
    const v1 = await waitFor("both nodes to see the same ownership", async () => {
      const [a, b] = [await ipam(lab, 1), await ipam(lab, 2)];
      return ownership(a) === ownership(b) ? a : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(total(v1), 256, JSON.stringify(v1.peers));
    // and the reclaimed space is allocatable without duplicates
    for (let i = 0; i < 150; i++) {
      const r = await lab.api(1 + (i % 2), "POST", `/ip/after-${i}`, { ifname: "eth0" });
      assert.equal(r.code, 200, JSON.stringify(r.json));
    }
    assertUnique(await clusterAllocations(lab, [1, 2]));

    // node3 comes back with its old state: it notices the removal and starts clean
    await lab.startAgent(3, { wait: false });
    await waitFor(
      "node3 to rejoin",
      async () => (await lab.api(3, "GET", "/status")).code === 200,
      {
        timeoutMs: 30_000,
      },
    );
    const mine = await allocations(lab, 3);
    assert.ok(!mine.some((a) => a.containerID === "old-pod"), "old allocation dropped");
    assertUnique(await clusterAllocations(lab, [1, 2, 3]));
  } finally {
    await lab.destroy();
  }
});

Deno.test("a partitioned minority cannot hand out addresses the majority also hands out", async () => {
  const lab = await ipamLab("wtid", { range: "10.32.0.0/25" });
  try {
    await lab.partition([1], [2, 3]);
    await waitFor(
      "node1 to see the others unreachable",
      async () => (await ipam(lab, 1)).peers.filter((p) => p.reachable).length <= 1,
      { timeoutMs: 20_000 },
    );
    const minority = [];
    const majority = [];
    for (let i = 0; i < 60; i++) {
      minority.push(await lab.api(1, "POST", `/ip/min-${i}`, { ifname: "eth0" }));
      majority.push(await lab.api(2 + (i % 2), "POST", `/ip/maj-${i}`, { ifname: "eth0" }));
    }
    // the minority stops when its own space runs out (it cannot ask anyone for more)
    const failed = minority.find((r) => r.code !== 200);
    if (failed) assert.ok([503, 507].includes(failed.code), JSON.stringify(failed));
    assertUnique(await clusterAllocations(lab, [1, 2, 3]));
    await lab.heal();
    await new Promise((r) => setTimeout(r, 3000));
    assertUnique(await clusterAllocations(lab, [1, 2, 3]));
  } finally {
    await lab.destroy();
  }
});
