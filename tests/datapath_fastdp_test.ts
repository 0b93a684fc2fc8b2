/**
 * Kernel fast path in a lab of three node namespaces: pod-to-pod ping and TCP over VXLAN,
 * forwarding entries that follow pods and peers, and fail-over to the sleeve when the VXLAN
 * port is filtered mid-transfer, then back. Namespaces start with `wtdf`.
 */
import assert from "node:assert/strict";
import { run } from "../src/net/exec.ts";
import { macForAddress, parseIp } from "../src/net/cidr.ts";
import { type Lab, labTest, ping, tcpTransfer } from "./support/datapath_lab.ts";

const PREFIX = "wtdf";

interface FdbRow {
  mac: string;
  dst?: string;
  master?: string;
  ifname?: string;
  state?: string;
}

async function fdb(lab: Lab, node: number): Promise<FdbRow[]> {
  const out = await lab.exec(lab.nodes[node - 1].name, ["bridge", "-j", "fdb", "show"]);
  return JSON.parse(out.stdout || "[]");
}

/** Entries weft programs: remote MACs on the overlay ports (not the ports' own addresses). */
function weftRows(rows: FdbRow[]): FdbRow[] {
  return rows.filter((r) =>
    (r.ifname === "vxlan-6784" || r.ifname === "weft-sleeve") &&
    (r.dst !== undefined || r.state === "static")
  );
}

labTest(
  "fast path: pods on three nodes talk over VXLAN, entries follow pods and peers",
  { prefix: PREFIX, nodes: 3, podsPerNode: 2 },
  async (lab, t) => {
    await lab.startNodes({ mode: "auto" });
    assert.equal(lab.nodes[0].mtu, 1500 - 50, "pod MTU is the underlay MTU minus VXLAN overhead");
    await lab.introduce();
    for (const to of [2, 3]) {
      const status = await lab.waitPath(1, to, "fastdp");
      assert.equal(status.encrypted, false);
      assert.equal(status.mtu, 1450);
    }

    await t.step("ping and TCP from node1's pod to pods on node2 and node3", async () => {
      for (const to of [2, 3]) {
        const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(to, 1) });
        assert.equal(reply.received, 3, reply.output);
        const transfer = await tcpTransfer({
          from: lab.podNs(1, 1),
          to: lab.podNs(to, 1),
          toIp: lab.podIp(to, 1),
        });
        assert.ok(transfer.ok, transfer.error);
        assert.ok(transfer.sent >= 20_000_000 && transfer.bytes > 0, JSON.stringify(transfer));
      }
      const counters = await lab.nodes[0].counters();
      assert.ok(counters.bytesFromTap < 1_000_000, "bulk traffic did not go through the sleeve");
    });

    await t.step("a full-size frame fits the path, a bigger one is refused, not lost", async () => {
      const fits = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) }, {
        size: 1450 - 28,
        dontFragment: true,
      });
      assert.equal(fits.received, 3, fits.output);
      const tooBig = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) }, {
        size: 1450 - 27,
        dontFragment: true,
        count: 1,
      });
      assert.equal(tooBig.received, 0);
      assert.match(tooBig.output, /mtu|too long/i);
    });

    await t.step("a deleted pod disappears from the other nodes' forwarding state", async () => {
      const gone = macForAddress(parseIp(lab.podIp(2, 2)));
      assert.ok((await fdb(lab, 1)).some((r) => r.mac === gone), "pod MAC programmed first");
      await lab.removePod(2, 2);
      const blob = (await lab.nodes[1].command("endpoints", { entries: lab.endpoints(2, 1) }))
        .blob as string;
      for (const node of [lab.nodes[0], lab.nodes[2]]) {
        await node.command("upsert", { peer: { name: lab.nodes[1].name, data: blob } });
      }
      for (const node of [1, 3]) {
        assert.deepEqual((await fdb(lab, node)).filter((r) => r.mac === gone), []);
      }
      const still = macForAddress(parseIp(lab.podIp(2, 1)));
      assert.ok((await fdb(lab, 1)).some((r) => r.mac === still), "other pods stay");
    });

    await t.step(
      "fast path filtered mid-transfer: sleeve takes over, then fast path returns",
      async () => {
        const transfer = tcpTransfer({
          from: lab.podNs(1, 1),
          to: lab.podNs(2, 1),
          toIp: lab.podIp(2, 1),
        }, ["-t", "9", "-i", "0.5"]);
        await new Promise((resolve) => setTimeout(resolve, 1000));
        await lab.filterUnderlay(1, 2, { port: 6784 });
        const failed = await lab.waitPath(1, 2, "sleeve");
        assert.match(failed.reason, /fastdp silent/);
        assert.equal(failed.healthy, true);
        const macsOnTap = (await fdb(lab, 1)).filter((r) => r.ifname === "weft-sleeve" && r.master);
        assert.ok(macsOnTap.length > 0, "node2's MACs moved to the sleeve port");
        const sleeveBytes = async () => (await lab.nodes[0].counters()).bytesFromTap;
        const before = await sleeveBytes();
        const flowing = await lab.waitFor(sleeveBytes, (bytes) => bytes > before + 1_000_000);
        assert.ok(flowing > before + 1_000_000, "the transfer continues over the sleeve");
        await lab.filterUnderlay(1, 2, { port: 6784, remove: true });
        await lab.waitPath(1, 2, "fastdp");
        const result = await transfer;
        assert.ok(result.ok, result.error);
        const afterSwitch = result.intervals.slice(-4).reduce((a, b) => a + b, 0);
        assert.ok(afterSwitch > 0, `data flows at the end again: ${result.intervals}`);
        assert.equal((await lab.pathTo(2, 1))?.path, "fastdp");
      },
    );

    await t.step("a node leaving removes all of its entries", async () => {
      const ip3 = lab.nodeUnderlayIp(3);
      const macs3 = lab.endpoints(3).map((e) => e.mac);
      const has3 = (rows: FdbRow[]) => rows.filter((r) => r.dst === ip3 || macs3.includes(r.mac));
      assert.ok(has3(await fdb(lab, 1)).length > 0);
      await lab.nodes[0].command("remove", { name: lab.nodes[2].name });
      assert.deepEqual(has3(await fdb(lab, 1)), []);
      assert.ok(weftRows(await fdb(lab, 1)).length > 0, "node2's entries stay");
      assert.equal((await lab.nodes[0].status()).length, 1);
    });

    await t.step("an agent killed without cleanup restarts with no stale entries", async () => {
      const node1 = lab.nodes[0];
      await node1.kill();
      assert.ok(weftRows(await fdb(lab, 1)).length > 0, "the killed agent left entries");
      await node1.start(node1.config);
      assert.deepEqual(weftRows(await fdb(lab, 1)), [], "a fresh start forgets them");
      await node1.command("upsert", { peer: { name: lab.nodes[1].name, data: lab.nodes[1].blob } });
      await lab.waitPath(1, 2, "fastdp");
      const macs2 = lab.endpoints(2, 1).map((e) => e.mac);
      const rows = weftRows(await fdb(lab, 1)).filter((r) => r.mac !== "00:00:00:00:00:00");
      assert.deepEqual([...new Set(rows.map((r) => r.mac))].sort(), [...macs2].sort());
    });

    await t.step("stopping a node's data path leaves no device or entry behind", async () => {
      await lab.nodes[0].stop();
      const links = await run(["ip", "-n", lab.nodes[0].name, "-o", "link", "show"]);
      assert.doesNotMatch(links.stdout, /vxlan-6784|weft-sleeve/);
      assert.deepEqual(weftRows(await fdb(lab, 1)), []);
    });
  },
);

labTest(
  "MTU override above what the underlay fits: oversize frames get frag-needed, TCP adapts",
  { prefix: PREFIX, nodes: 2 },
  async (lab) => {
    await lab.startNodes({ mode: "auto", mtu: 1500 });
    assert.equal(lab.nodes[0].mtu, 1500, "the override wins over detection");
    await lab.introduce();
    const status = await lab.waitPath(1, 2, "fastdp");
    assert.equal(status.mtu, 1450, "status still reports what the path really fits");
    const big = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) }, {
      size: 1500 - 28,
      dontFragment: true,
      count: 3,
    });
    assert.equal(big.received, 0);
    assert.match(big.output, /Frag needed and DF set \(mtu = 1450\)|message too long, mtu=1450/);
    const route = await lab.exec(lab.podNs(1, 1), ["ip", "route", "get", lab.podIp(2, 1)]);
    assert.match(route.stdout, /mtu 1450/, "the pod learned the path MTU");
    const transfer = await tcpTransfer({
      from: lab.podNs(1, 1),
      to: lab.podNs(2, 1),
      toIp: lab.podIp(2, 1),
    });
    assert.ok(transfer.ok && transfer.sent >= 20_000_000, JSON.stringify(transfer));
  },
);
