/**
 * The first hour on real machines (#9), in the lab: the same command line on every node,
 * cloned machines that end up with one name, and `weft report` as support would ask for it.
 */
import assert from "node:assert/strict";
import { Lab, sh, waitFor } from "./support/lab.ts";

interface Problem {
  code: string;
  severity: string;
  message: string;
  fix: string;
}

Deno.test("three nodes started with one identical command line (own address included, no --name, one machine id) become ready and carry pod traffic", async () => {
  await using lab = await Lab.create({
    nodes: 3,
    prefix: "wfh1",
    identicalLaunch: true,
    defaultRoute: true,
  });
  assert.deepEqual(lab.launchArgs(1), lab.launchArgs(3), "one command line for every node");
  assert.ok(lab.launchArgs(1).join(" ").includes(lab.node(1).underlayIp), "its own address too");
  assert.ok(!lab.launchArgs(1).includes("--name"));
  // Lab.create waited for all three to be ready: the quorum counted 3 distinct peers, not 4
  assert.equal(new Set(lab.nodes.map((n) => n.peerName)).size, 3, "three distinct peer names");
  const status = await lab.api(2, "GET", "/status");
  assert.deepEqual((status.json as { problems: Problem[] }).problems, []);
  const [a, c] = [await lab.addPod(1, "a"), await lab.addPod(3, "c")];
  await waitFor("pod traffic from node1 to node3", () => lab.ping(a, c.ip));
  await waitFor("pod traffic from node3 to node1", () => lab.ping(c, a.ip));
});

Deno.test("two nodes forced to one name both report the collision, naming the other's address", async () => {
  await using lab = await Lab.create({ nodes: 2, prefix: "wfh2", start: false });
  lab.node(2).peerName = lab.node(1).peerName;
  await Promise.all([1, 2].map((i) => lab.startAgent(i, { wait: "serving" })));
  for (const [self, other] of [[1, 2], [2, 1]]) {
    const collision = await waitFor(`node${self} to report the collision`, async () => {
      const status = await lab.api(self, "GET", "/status");
      const problems = (status.json as { problems?: Problem[] })?.problems ?? [];
      return problems.find((p) => p.code === "name-collision");
    }, { timeoutMs: 30_000 });
    assert.equal(collision.severity, "error");
    assert.match(collision.message, new RegExp(lab.node(other).underlayIp.replaceAll(".", "\\.")));
    assert.match(collision.fix, /--name/);
    const printed = await lab.weft(self, ["status"]);
    assert.equal(printed.code, 1, "not ready");
    assert.match(printed.stdout, /Not ready, because:/);
    assert.match(printed.stdout, /ERROR \(name-collision\) Name collision/);
    assert.match(printed.stdout, /What to do: Give one of the two its own name/);
    assert.match(await lab.log(self), /Name collision/);
  }
});

Deno.test("weft report has the kernel state weft made and the recent log; --redact leaves nothing identifying", async () => {
  // (that no password ever reaches a report is tested against the API: src/api/app_test.ts)
  await using lab = await Lab.create({ nodes: 2, prefix: "wfh3" });
  await lab.addPod(1, "a");
  await lab.addPod(2, "b");
  const report = await waitFor("a report whose VXLAN forwarding table knows node2", async () => {
    const result = await lab.weft(1, ["report"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout);
    const fdb = Object.values(report.kernel.fdb ?? {}).flat() as Array<{ dst?: string }>;
    return fdb.some((row) => row.dst === lab.node(2).underlayIp) ? report : undefined;
  });
  const links = report.kernel.links as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>;
  assert.ok(links.some((l) => l.ifname === "weave" && l.linkinfo?.info_kind === "bridge"));
  assert.ok(links.some((l) => l.linkinfo?.info_kind === "vxlan"));
  assert.ok(
    (report.kernel.addresses as Array<{ ifname: string }>).some((a) => a.ifname === "weave"),
  );
  assert.ok(Array.isArray(report.kernel.routes));
  assert.ok(
    report.kernel.iptables["nat WEFT"].some((r: string) => /MASQUERADE/.test(r)),
    JSON.stringify(report.kernel.iptables),
  );
  assert.ok("inet weft-underlay" in report.kernel.nft && "inet weft-policy" in report.kernel.nft);
  assert.deepEqual(report.kernel.errors, []);
  assert.equal(report.config.password, "none");
  assert.equal(report.status.ready, true);
  assert.equal(report.peers.length, 2);
  assert.ok(report.logs.some((l: { message: string }) => /ready: peer/.test(l.message)));
  assert.ok(report.connections.some((c: { path?: string }) => c.path === "fastdp"));

  const redacted = await lab.weft(1, ["report", "--redact"]);
  assert.equal(redacted.code, 0, redacted.stderr);
  const text = redacted.stdout;
  for (
    const value of [
      "192.168.77.",
      lab.node(1).peerName,
      lab.node(2).peerName,
      "node1",
      "node2",
      lab.node(1).stateDir,
      `${lab.prefix}-1-a`,
    ]
  ) {
    assert.ok(!text.includes(value), `${value} is in the redacted report`);
  }
  const clean = JSON.parse(text);
  assert.equal(clean.weft.redacted, true);
  assert.equal(clean.status.bridge.address, "10.32.0.1/12", "weft's own addresses stay");
  assert.equal(clean.peers.length, 2);
});

Deno.test("the fix a key-mismatch problem prints (weft peer rebind) lets a reinstalled node back in", async () => {
  await using lab = await Lab.create({
    nodes: 2,
    prefix: "wfh4",
    password: "lab-secret",
    agentArgs: ["--datapath", "none"],
  });
  const reachable = async (from: number, nickname: string) => {
    const peers = (await lab.api(from, "GET", "/status/peers")).json as Array<
      { nickname: string; reachable: boolean }
    >;
    return peers.find((p) => p.nickname === nickname)?.reachable === true;
  };
  await waitFor("node1 to reach node2", () => reachable(1, "node2"));
  // node2 keeps its name but loses its identity key, as after a reinstall
  await lab.stopAgent(2);
  await Deno.remove(`${lab.node(2).stateDir}/identity.key`);
  await lab.startAgent(2, { wait: "serving" });
  const mismatch = await waitFor("node1 to report the key mismatch", async () => {
    const status = await lab.api(1, "GET", "/status");
    return (status.json as { problems: Problem[] }).problems.find((p) => p.code === "key-mismatch");
  }, { timeoutMs: 30_000 });
  const command = /'weft (peer rebind [^']+)'/.exec(mismatch.fix)?.[1];
  assert.ok(command, mismatch.fix);
  const rebind = await lab.weft(1, command.split(" "));
  assert.equal(rebind.code, 0, rebind.stderr);
  await waitFor("node1 to reach node2 again", () => reachable(1, "node2"), { timeoutMs: 30_000 });
  const status = await lab.api(1, "GET", "/status");
  const problems = (status.json as { problems: Problem[] }).problems;
  assert.ok(!problems.some((p) => p.code === "key-mismatch"), JSON.stringify(problems));
  // its own name cannot be re-bound
  const self = await lab.weft(1, ["peer", "rebind", lab.node(1).peerName]);
  assert.equal(self.code, 1);
  assert.match(self.stderr, /400: Cannot rebind .* this node's own name/);
});

Deno.test("a lone node without a default route starts", async () => {
  await using lab = await Lab.create({ nodes: 1, prefix: "wfh5", identicalLaunch: true });
  const netns = lab.node(1).netns;
  const status = await lab.api(1, "GET", "/status");
  assert.equal(status.code, 200, status.text);
  assert.deepEqual((status.json as { problems: Problem[] }).problems, []);
  assert.doesNotMatch(
    (await sh(["ip", "-n", netns, "route", "show", "default"])).stdout,
    /default/,
    "the node really has no default route",
  );
  const [a, b] = [await lab.addPod(1, "a"), await lab.addPod(1, "b")];
  assert.ok(await lab.ping(a, b.ip));
});

Deno.test("nodes without a default route, one command line, carry pod traffic (underlay from the route toward the peers)", async () => {
  await using lab = await Lab.create({ nodes: 2, prefix: "wfh6", identicalLaunch: true });
  const [a, b] = [await lab.addPod(1, "a"), await lab.addPod(2, "b")];
  await waitFor("pod traffic from node1 to node2", () => lab.ping(a, b.ip));
});
