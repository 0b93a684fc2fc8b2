/**
 * Relay: with the underlay between node1 and node3 cut, their pods still talk because node2
 * (the mesh's next hop) forwards the sleeve datagrams. Namespaces: `wtdr`.
 */
import assert from "node:assert/strict";
import { Lab, ping, sweepLab, tcpTransfer } from "./support/datapath_lab.ts";

const PREFIX = "wtdr";
await sweepLab(PREFIX);

async function cut(lab: Lab, a: number, b: number): Promise<void> {
  for (const [here, there] of [[a, b], [b, a]]) {
    const ns = lab.nodes[here - 1].name;
    const ip = lab.nodeUnderlayIp(there);
    await lab.exec(ns, ["iptables", "-I", "INPUT", "-s", ip, "-j", "DROP"]);
    await lab.exec(ns, ["iptables", "-I", "OUTPUT", "-d", ip, "-j", "DROP"]);
  }
}

for (const encrypted of [false, true]) {
  Deno.test({
    name: `relay ${encrypted ? "encrypted" : "plain"}: node2 carries node1 <-> node3`,
    sanitizeResources: false,
    sanitizeOps: false,
  }, async () => {
    const lab = await Lab.create(PREFIX, { nodes: 3 });
    try {
      await cut(lab, 1, 3);
      await lab.startNodes({ mode: "auto" });
      await lab.introduce({
        nextHop: (from, to) => (from === 1 && to === 3) || (from === 3 && to === 1) ? 2 : undefined,
        keys: encrypted ? (a, b) => `0${a}0${b}`.repeat(16) : undefined,
      });
      for (const [from, to] of [[1, 3], [3, 1]]) {
        const status = await lab.waitFor(() => lab.pathTo(from, to), (s) => s?.path === "relay");
        assert.equal(status?.path, "relay", JSON.stringify(status));
        assert.match(status!.reason, new RegExp(`relayed via ${lab.nodes[1].name}`));
        assert.equal(status?.encrypted, encrypted);
      }
      const expected = encrypted ? "sleeve" : "fastdp";
      const direct = await lab.waitFor(() => lab.pathTo(1, 2), (s) => s?.path === expected);
      assert.equal(direct?.path, expected);

      const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(3, 1) });
      assert.equal(reply.received, 3, reply.output);
      const transfer = await tcpTransfer(lab, {
        from: lab.podNs(1, 1),
        to: lab.podNs(3, 1),
        toIp: lab.podIp(3, 1),
      });
      assert.ok(transfer.ok && transfer.sent >= 20_000_000, JSON.stringify(transfer));
      // Workers report their counters twice a second, so poll rather than read once.
      const relayed = await lab.waitFor(
        async () =>
          ((await lab.nodes[1].command("status")).counters as { relayed: number }).relayed,
        (n) => n > 100,
      );
      assert.ok(relayed > 100, `node2 relayed ${relayed} datagrams`);
    } catch (error) {
      for (const node of lab.nodes) console.error(node.log);
      throw error;
    } finally {
      await lab.destroy();
    }
  });
}
