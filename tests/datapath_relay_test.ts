/**
 * Relay: with the underlay between node1 and node3 cut, their pods still talk because node2
 * (the mesh's next hop) forwards the sleeve datagrams. Namespaces: `wtdr`.
 */
import assert from "node:assert/strict";
import { labTest, ping, tcpTransfer } from "./support/datapath_lab.ts";

const PREFIX = "wtdr";

for (const encrypted of [false, true]) {
  labTest(
    `relay ${encrypted ? "encrypted" : "plain"}: node2 carries node1 <-> node3`,
    { prefix: PREFIX, nodes: 3 },
    async (lab) => {
      await lab.filterUnderlay(1, 3);
      await lab.startNodes({ mode: "auto", encrypt: encrypted });
      await lab.introduce({
        nextHop: (from, to) => (from === 1 && to === 3) || (from === 3 && to === 1) ? 2 : undefined,
        keys: encrypted ? (a, b) => `0${a}0${b}`.repeat(16) : undefined,
      });
      for (const [from, to] of [[1, 3], [3, 1]]) {
        const status = await lab.waitPath(from, to, "relay");
        assert.match(status.reason, new RegExp(`relayed via ${lab.nodes[1].name}`));
        assert.equal(status.encrypted, encrypted);
      }
      await lab.waitPath(1, 2, encrypted ? "sleeve" : "fastdp");
      if (!encrypted) {
        // Node2's own choices are VXLAN: only the traffic it relays can start its threads.
        await lab.waitPath(2, 1, "fastdp");
        await lab.waitPath(2, 3, "fastdp");
      }

      const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(3, 1) });
      assert.equal(reply.received, 3, reply.output);
      const transfer = await tcpTransfer({
        from: lab.podNs(1, 1),
        to: lab.podNs(3, 1),
        toIp: lab.podIp(3, 1),
      });
      assert.ok(transfer.ok && transfer.sent >= 20_000_000, JSON.stringify(transfer));
      // Workers report their counters twice a second, so poll rather than read once.
      const relayed = await lab.waitFor(
        async () => (await lab.nodes[1].counters()).relayed,
        (n) => n > 100,
      );
      assert.ok(relayed > 100, `node2 relayed ${relayed} datagrams`);
      assert.equal(await lab.nodes[1].threads(), true, "relayed pod traffic runs node2's threads");
    },
  );
}
