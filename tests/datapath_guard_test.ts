/**
 * The data path's guard (#10 points 1c, 3, 6) against the kernel: nft sets that follow the
 * peers, forged VXLAN and sleeve packets from a host that is not a peer never reaching a pod,
 * pods kept away from their node's weft ports and from peers' ones, and forged fast-path probe
 * answers that cannot keep a pair on VXLAN once the pair has a key. Every control (the same
 * forgery with the check out of the way) shows the check is what stops it. Namespaces: `wtdg`.
 */
import assert from "node:assert/strict";
import { macForAddress, parseIp } from "../src/net/cidr.ts";
import { listTable } from "../src/net/nft.ts";
import { GUARD_RULES, removeUnderlayGuard } from "../src/datapath/mod.ts";
import {
  encodeDatagram,
  encodeSequence,
  encodeVxlanProbe,
  Kind,
  packRecords,
  peerId,
} from "../src/datapath/wire.ts";
import { Lab, labTest } from "./support/datapath_lab.ts";

const ATTACKER = Lab.ATTACKER;
const FORGED_SOURCE = "10.32.9.9";

/** Counts, inside pod (i, 1), packets from the forged source: what the pod would answer. */
async function witness(lab: Lab, i: number): Promise<() => Promise<number>> {
  const ns = lab.podNs(i, 1);
  const script = "table inet wtd-witness {\n  chain pre {\n" +
    "    type filter hook prerouting priority -300; policy accept;\n" +
    `    ip saddr ${FORGED_SOURCE} counter\n  }\n}\n`;
  await lab.exec(ns, ["nft", "-f", "-"], { stdin: script });
  return async () =>
    (await listTable("inet", "wtd-witness", { netns: ns }))!.rules[0].counter!.packets;
}

/** A frame from a made-up pod to pod (i, 1): UDP to port 5555 saying "forged". */
function forgedFrame(lab: Lab, i: number): Uint8Array {
  return encodeVxlanProbe(new TextEncoder().encode("forged"), {
    vni: 1,
    sourceMac: macForAddress(parseIp(FORGED_SOURCE)),
    destinationMac: macForAddress(parseIp(lab.podIp(i, 1))),
    sourceIp: FORGED_SOURCE,
    destinationIp: lab.podIp(i, 1),
    sourcePort: 5555,
    destinationPort: 5555,
  });
}

async function addPeerElement(lab: Lab, node: number, address: string, verb: "add" | "delete") {
  await lab.exec(lab.nodes[node - 1].name, [
    "nft",
    `${verb} element inet weft-underlay peers { ${address} }`,
  ]);
}

/** Whether a TCP connection from `ns` to `address:port` opens within 2 s. */
async function connects(lab: Lab, ns: string, address: string, port: number): Promise<boolean> {
  const probe = `exec 3<>/dev/tcp/${address}/${port}`;
  const result = await lab.exec(ns, ["timeout", "2", "bash", "-c", probe], { allowFailure: true });
  return result.code === 0;
}

labTest(
  "guard: peers only on the data path ports, pods kept off the weft ports",
  { prefix: "wtdg", nodes: 2 },
  async (lab, t) => {
    await lab.startNodes({ mode: "auto" });
    await lab.introduce();
    await lab.waitPath(1, 2, "fastdp");
    const [n1, n2] = lab.nodes;

    await t.step("the sets hold the peers, and follow one leaving and coming back", async () => {
      const inet = await lab.guard(1);
      const set = (name: string) => inet?.sets.find((s) => s.name === name)?.elements;
      assert.deepEqual(set("peers"), [lab.nodeUnderlayIp(2)]);
      assert.deepEqual(set("peer-bridges"), [lab.bridgeIp(2)]);
      const bridges = (await lab.guard(1, "bridge"))?.sets[0].elements;
      assert.deepEqual([...bridges!].sort(), [lab.bridgeIp(1), lab.bridgeIp(2)]);
      assert.deepEqual(
        inet?.chains.map((c) => [c.name, c.hook]),
        [["input", "input"], ["forward", "forward"]],
      );
      await n1.command("remove", { name: n2.name });
      assert.deepEqual((await lab.guard(1))?.sets.find((s) => s.name === "peers")?.elements, []);
      await n1.command("upsert", { peer: { name: n2.name, data: n2.blob } });
      const back = (await lab.guard(1))?.sets.find((s) => s.name === "peers")?.elements;
      assert.deepEqual(back, [lab.nodeUnderlayIp(2)]);
      await lab.waitPath(1, 2, "fastdp");
    });

    await lab.attacker();
    const seen = await witness(lab, 1);

    await t.step("forged VXLAN from a non-peer never reaches the pod", async () => {
      const before = await lab.guardDrops(1, GUARD_RULES.vxlanFromStranger);
      const to = { address: lab.nodeUnderlayIp(1), port: 6784 };
      await lab.sendUdp(lab.underlay, to, [forgedFrame(lab, 1)], { rounds: 5, everyMs: 20 });
      assert.equal(await lab.guardDrops(1, GUARD_RULES.vxlanFromStranger), before + 5);
      assert.equal(await seen(), 0, "the pod saw none of it");
      // Control: the same packets from an address in the set are decapsulated and delivered.
      await addPeerElement(lab, 1, ATTACKER, "add");
      await lab.sendUdp(lab.underlay, to, [forgedFrame(lab, 1)], { rounds: 5, everyMs: 20 });
      await addPeerElement(lab, 1, ATTACKER, "delete");
      assert.equal(await seen(), 5, "without the check the pod gets them");
    });

    await t.step("forged sleeve datagrams from a non-peer never reach the sleeve", async () => {
      const vnet = new Uint8Array(10);
      const frame = forgedFrame(lab, 1).subarray(8); // the Ethernet frame inside
      const datagram = encodeDatagram(
        {
          kind: Kind.Data,
          ttl: 8,
          sender: peerId(n2.name),
          origin: peerId(n2.name),
          destination: peerId(n1.name),
        },
        packRecords([new Uint8Array([...vnet, ...frame])]),
        { id: 1 },
      );
      const reason = "plaintext from wrong address";
      const before = await lab.guardDrops(1, GUARD_RULES.sleeveFromStranger);
      const to = { address: lab.nodeUnderlayIp(1), port: 6783 };
      await lab.sendUdp(lab.underlay, to, [datagram], { rounds: 3, everyMs: 20 });
      assert.equal(await lab.guardDrops(1, GUARD_RULES.sleeveFromStranger), before + 3);
      // Control: let it through the guard, and the sleeve engine sees (and refuses) it.
      await addPeerElement(lab, 1, ATTACKER, "add");
      await lab.sendUdp(lab.underlay, to, [datagram], { rounds: 3, everyMs: 20 });
      await addPeerElement(lab, 1, ATTACKER, "delete");
      const refused = await lab.waitFor(() => n1.dropped(reason), (n) => n >= 3);
      assert.equal(refused, 3, "only the datagrams the guard let through reached the engine");
      assert.equal(await seen(), 5, "and the pod saw nothing more");
    });

    await t.step("a pod cannot open its node's weft ports, on any of its addresses", async () => {
      const listener = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          n1.name,
          Deno.execPath(),
          "eval",
          "for (const port of [6783, 6785]) (async () => { for await (const c of " +
          "Deno.listen({ port })) c.close(); })();",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        const pod = lab.podNs(1, 1);
        const ready = await lab.waitFor(
          () => connects(lab, n1.name, "127.0.0.1", 6785),
          (ok) => ok,
        );
        assert.ok(ready, "the node's listener runs");
        const before = await lab.guardDrops(1, GUARD_RULES.podToNodeTcp);
        assert.equal(await connects(lab, pod, lab.bridgeIp(1), 6783), false, "via the gateway");
        assert.equal(await connects(lab, pod, lab.nodeUnderlayIp(1), 6783), false, "via eth0");
        assert.ok(await lab.guardDrops(1, GUARD_RULES.podToNodeTcp) > before);
        assert.equal(await connects(lab, pod, lab.bridgeIp(1), 6785), true, "control: 6785 is not");
        assert.equal(await connects(lab, n1.name, lab.bridgeIp(1), 6783), true, "the node itself");
        const udpBefore = await lab.guardDrops(1, GUARD_RULES.podToNodeUdp);
        const to = { address: lab.bridgeIp(1), port: 6784 };
        await lab.sendUdp(pod, to, [forgedFrame(lab, 1)], { rounds: 2 });
        assert.equal(await lab.guardDrops(1, GUARD_RULES.podToNodeUdp), udpBefore + 2);
      } finally {
        listener.kill("SIGKILL");
        await listener.status;
      }
    });

    await t.step("a pod cannot send to a peer's weft ports through its node", async () => {
      await lab.exec(n1.name, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      const pod = lab.podNs(1, 1);
      const tcp = await lab.guardDrops(1, GUARD_RULES.podToPeerTcp);
      await connects(lab, pod, lab.nodeUnderlayIp(2), 6783);
      assert.ok(await lab.guardDrops(1, GUARD_RULES.podToPeerTcp) > tcp);
      const udp = await lab.guardDrops(1, GUARD_RULES.podToPeerUdp);
      const to = { address: lab.nodeUnderlayIp(2), port: 6784 };
      await lab.sendUdp(pod, to, [forgedFrame(lab, 2)], { rounds: 2 });
      assert.equal(await lab.guardDrops(1, GUARD_RULES.podToPeerUdp), udp + 2);
    });

    await t.step("a pod cannot pass as a gateway on the bridge", async () => {
      const pod = lab.podNs(1, 1);
      await lab.exec(pod, ["ip", "addr", "add", `${lab.bridgeIp(2)}/32`, "dev", "eth0"]);
      const before = await lab.guardDrops(1, GUARD_RULES.spoofedGateway);
      const to = { address: lab.bridgeIp(1), port: 6783, sourceAddress: lab.bridgeIp(2) };
      await lab.sendUdp(pod, to, [new Uint8Array(8)], { rounds: 2 });
      assert.equal(await lab.guardDrops(1, GUARD_RULES.spoofedGateway), before + 2);
      await lab.exec(pod, ["ip", "addr", "del", `${lab.bridgeIp(2)}/32`, "dev", "eth0"]);
    });

    await t.step("a restarted node keeps its peers' addresses until they are back", async () => {
      await n1.kill();
      await n1.start(n1.config);
      const peers = (await lab.guard(1))?.sets.find((s) => s.name === "peers")?.elements;
      assert.deepEqual(peers, [lab.nodeUnderlayIp(2)], "adopted, not dropped at the restart");
      assert.equal(await lab.guardDrops(1, GUARD_RULES.vxlanFromStranger), 0, "rules rewritten");
      await n1.command("upsert", { peer: { name: n2.name, data: n2.blob } });
      await lab.waitPath(1, 2, "fastdp");
    });

    await t.step("weft reset's removal takes both tables", async () => {
      await n1.stop();
      await removeUnderlayGuard({ netns: n1.name });
      assert.equal(await lab.guard(1), undefined);
      assert.equal(await lab.guard(1, "bridge"), undefined);
      await removeUnderlayGuard({ netns: n1.name });
    });
  },
);

/** Probe answers in node2's name for node1, as VXLAN from node2's address. */
function forgedProbeAnswers(lab: Lab): Uint8Array[] {
  const [n1, n2] = lab.nodes;
  return [1, 2, 3].map((seq) =>
    encodeVxlanProbe(
      encodeDatagram(
        {
          kind: Kind.ProbeAck,
          ttl: 1,
          sender: peerId(n2.name),
          origin: peerId(n2.name),
          destination: peerId(n1.name),
        },
        encodeSequence(seq),
      ),
      {
        vni: 1,
        sourceMac: macForAddress(parseIp(lab.bridgeIp(2))),
        destinationMac: macForAddress(parseIp(lab.bridgeIp(1))),
        sourceIp: lab.bridgeIp(2),
        destinationIp: lab.bridgeIp(1),
        sourcePort: 6783,
        destinationPort: 6783,
      },
    )
  );
}

labTest(
  "guard: forged fast-path probe answers do not keep a keyed pair on VXLAN",
  { prefix: "wtdg", nodes: 2 },
  async (lab, t) => {
    const [n1] = lab.nodes;
    // VXLAN into node2 is cut: node1's probes never get a real answer.
    const cut = [
      "INPUT",
      "-p",
      "udp",
      "--dport",
      "6784",
      "-s",
      lab.nodeUnderlayIp(1),
      "-j",
      "DROP",
    ];
    const forge = (rounds: number) =>
      lab.sendUdp(
        lab.underlay,
        { address: lab.nodeUnderlayIp(1), port: 6784, sourceAddress: lab.nodeUnderlayIp(2) },
        forgedProbeAnswers(lab),
        { rounds, everyMs: 100 },
      );
    await lab.startNodes({ mode: "auto" });
    await lab.impersonate(2, 1);

    await t.step("with a key (a password, --no-encrypt): forged answers are refused", async () => {
      await lab.introduce({ keys: (a, b) => `${a}${b}`.repeat(32) });
      const status = await lab.waitPath(1, 2, "fastdp");
      assert.equal(status.encrypted, false, "the pair's data is not encrypted");
      await lab.exec(lab.nodes[1].name, ["iptables", "-w", "-I", ...cut]);
      const forging = forge(60);
      try {
        await lab.waitPath(1, 2, "sleeve");
        const refused = await n1.dropped("unauthenticated control message");
        assert.ok(refused > 0, "the forged answers arrived, and were refused");
      } finally {
        await forging;
      }
      await lab.exec(lab.nodes[1].name, ["iptables", "-w", "-D", ...cut]);
    });

    await t.step("control, without a key: the same forgery keeps the pair on VXLAN", async () => {
      await lab.introduce();
      await lab.waitPath(1, 2, "fastdp");
      await lab.exec(lab.nodes[1].name, ["iptables", "-w", "-I", ...cut]);
      const forging = forge(100);
      try {
        // node2 sees the fast path die (its answers come back through the cut), node1 does not
        await lab.waitPath(2, 1, "sleeve");
        await new Promise((resolve) => setTimeout(resolve, 3000));
        assert.equal((await lab.pathTo(1, 2))?.path, "fastdp", "fooled: the documented limit");
      } finally {
        await forging;
      }
    });
  },
);
