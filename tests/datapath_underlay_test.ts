/**
 * The underlay address without a default route (#9): the lab's nodes have none, only their
 * link on the underlay network. A node with no peers starts and publishes nothing; the route
 * toward the first peer address (from the mesh, before any blob) gives its underlay address and
 * the VXLAN device; an address with no route is a diagnostic that names it. Namespaces: `wtdu`.
 */
import assert from "node:assert/strict";
import { type Lab, labTest, ping } from "./support/datapath_lab.ts";

async function vxlanLocal(lab: Lab, node: number): Promise<string | undefined> {
  const out = await lab.exec(lab.nodes[node - 1].name, [
    "ip",
    "-d",
    "-j",
    "link",
    "show",
    "vxlan-6784",
  ], { allowFailure: true });
  if (!out.stdout.trim()) return undefined;
  return JSON.parse(out.stdout)[0].linkinfo.info_data.local;
}

labTest(
  "no default route: nodes start without peers and take the underlay from the route to one",
  { prefix: "wtdu", nodes: 3 },
  async (lab, t) => {
    const [n1, n2, n3] = lab.nodes;
    await t.step("without peers: started, nothing published, no VXLAN device yet", async () => {
      const route = await lab.exec(n1.name, ["ip", "route", "show", "default"]);
      assert.equal(route.stdout.trim(), "", "the lab's nodes have no default route");
      await lab.startNodes({ underlayIp: null });
      for (const node of lab.nodes) assert.equal(node.blob, "", `${node.name} publishes nothing`);
      assert.equal(await vxlanLocal(lab, 1), undefined);
      assert.deepEqual(await n1.diagnostics(), []);
    });

    await t.step("a mesh address gives the underlay; pods talk over VXLAN", async () => {
      await n1.command("hints", { addresses: [`${lab.nodeUnderlayIp(2)}:6783`] });
      await n2.command("hints", { addresses: [`${lab.nodeUnderlayIp(1)}:6783`] });
      assert.equal(JSON.parse(n1.blob).ip, lab.nodeUnderlayIp(1));
      assert.equal(JSON.parse(n2.blob).ip, lab.nodeUnderlayIp(2));
      assert.equal(await vxlanLocal(lab, 1), lab.nodeUnderlayIp(1), "VXLAN sends from it");
      await n1.command("upsert", { peer: { name: n2.name, data: n2.blob } });
      await n2.command("upsert", { peer: { name: n1.name, data: n1.blob } });
      await lab.waitPath(1, 2, "fastdp");
      const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) });
      assert.equal(reply.received, 3, reply.output);
    });

    await t.step("a peer address with no route is named, until a routable one comes", async () => {
      await n3.command("hints", { addresses: ["10.99.0.7:6783", "peer.example:6783"] });
      assert.equal(n3.blob, "");
      const [problem, ...rest] = await n3.diagnostics();
      assert.equal(problem?.code, "no-route-to-peer", JSON.stringify(problem));
      assert.equal(problem.severity, "error");
      assert.match(problem.message, /No route to 10\.99\.0\.7: Network is unreachable/);
      assert.match(problem.message, /mesh address 10\.99\.0\.7:6783/);
      assert.deepEqual(rest, [], "names are not routes: only the address is reported");
      await n3.command("upsert", { peer: { name: n1.name, data: n1.blob } });
      const blob = (await n3.command("endpoints", { entries: lab.endpoints(3) })).blob as string;
      assert.equal(JSON.parse(blob).ip, lab.nodeUnderlayIp(3));
      assert.deepEqual(await n3.diagnostics(), []);
    });

    await t.step("a peer whose address has no route: said, then no data path", async () => {
      const ghost = { ...JSON.parse(n2.blob), ip: "10.99.0.9" };
      await n1.command("upsert", { peer: { name: "ghost", data: JSON.stringify(ghost) } });
      const found = await lab.waitFor(
        () => n1.diagnostics(),
        (list) => list.some((d) => d.code === "no-data-path"),
      );
      const codes = found.filter((d) => /ghost/.test(d.message)).map((d) => d.code).sort();
      assert.deepEqual(codes, ["no-data-path", "no-route-to-peer"], JSON.stringify(found));
      assert.ok(found.every((d) => /ghost/.test(d.message)), "only the ghost is a problem");
      await n1.command("remove", { name: "ghost" });
      assert.deepEqual(await n1.diagnostics(), []);
    });
  },
);
