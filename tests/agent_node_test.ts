/**
 * The agent on one node, against the kernel: what `weft launch` makes, what a restart keeps,
 * and what `weft reset` removes. One lab node namespace; the bundled artifact runs the agent.
 */
import assert from "node:assert/strict";
import { Lab, sh } from "./support/lab.ts";

async function bridgeState(lab: Lab) {
  const netns = lab.node(1).netns;
  const [link] = JSON.parse(
    (await sh(["ip", "-n", netns, "-json", "-d", "link", "show", "weave"])).stdout,
  );
  const [addr] = JSON.parse(
    (await sh(["ip", "-n", netns, "-json", "-4", "addr", "show", "weave"])).stdout,
  );
  return {
    link,
    addresses: addr.addr_info.map((a: { local: string; prefixlen: number }) =>
      `${a.local}/${a.prefixlen}`
    ),
  };
}

async function rules(lab: Lab, table: string) {
  return (await sh(["iptables", "-w", "-t", table, "-S"], { netns: lab.node(1).netns })).stdout
    .split("\n");
}

Deno.test("launch makes the bridge, forwarding and weft's iptables chains; restart adopts them; reset removes them", async () => {
  const lab = await Lab.create({ nodes: 1, prefix: "wta" });
  try {
    const netns = lab.node(1).netns;
    const { link, addresses } = await bridgeState(lab);
    assert.equal(link.linkinfo.info_kind, "bridge");
    assert.equal(link.address, "0a:58:0a:20:00:01");
    assert.deepEqual(addresses, ["10.32.0.1/12"]);
    assert.equal(
      (await sh(["cat", "/proc/sys/net/ipv4/ip_forward"], { netns })).stdout.trim(),
      "1",
    );
    const nat = await rules(lab, "nat");
    assert.ok(nat.includes("-A POSTROUTING -j WEFT"), nat.join("\n"));
    assert.ok(
      nat.includes("-A WEFT -s 10.32.0.0/12 ! -d 10.32.0.0/12 -j MASQUERADE"),
      nat.join("\n"),
    );
    assert.ok((await rules(lab, "filter")).includes("-A FORWARD -j WEFT-FORWARD"));

    // an allocation made before a restart is kept, and nothing is duplicated by the restart
    const before = await lab.api(1, "POST", "/ip/restart-pod", { ifname: "eth0" });
    assert.equal(before.code, 200);
    await lab.restartAgent(1);
    const after = await lab.api(1, "GET", "/ip/restart-pod?ifname=eth0");
    assert.equal(after.code, 200);
    assert.equal(
      (after.json as { address: string }).address,
      (before.json as { address: string }).address,
    );
    assert.deepEqual((await bridgeState(lab)).addresses, ["10.32.0.1/12"]);
    const natAfter = await rules(lab, "nat");
    assert.equal(natAfter.filter((r) => r === "-A POSTROUTING -j WEFT").length, 1);
    assert.equal(
      natAfter.filter((r) => r.startsWith("-A WEFT ")).length,
      nat.filter((r) => r.startsWith("-A WEFT ")).length,
    );

    // the CLI shows it
    const status = await lab.weft(1, ["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Bridge:\s+weave 10\.32\.0\.1\/12/);
    const ps = await lab.weft(1, ["ps"]);
    assert.match(ps.stdout, /restart-pod\s+eth0\s+0a:58:0a:20:00:02\s+10\.32\.0\.2\/12/);

    // reset asks a running agent to leave the cluster (it gives its space away and exits),
    // then removes everything
    const reset = await lab.weft(1, ["reset", "--state-dir", lab.node(1).stateDir]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /left the cluster/);
    assert.equal((await lab.node(1).agent!.status).success, true, "the agent exited cleanly");
    lab.node(1).agent = undefined;
    assert.equal((await sh(["ip", "-n", netns, "link", "show", "weave"])).code, 1);
    assert.ok(!(await rules(lab, "nat")).some((r) => r.includes("WEFT")));
    assert.ok(!(await rules(lab, "filter")).some((r) => r.includes("WEFT")));
    await assert.rejects(Deno.stat(lab.node(1).stateDir));
    // and a second reset is harmless
    assert.equal((await lab.weft(1, ["reset", "--state-dir", lab.node(1).stateDir])).code, 0);
  } finally {
    await lab.destroy();
  }
});

Deno.test("launch refuses bad configuration with a clear message and makes nothing", async () => {
  const lab = await Lab.create({ nodes: 1, prefix: "wtab", start: false });
  try {
    const netns = lab.node(1).netns;
    const result = await sh([
      lab.artifact.weft,
      "launch",
      "--state-dir",
      lab.node(1).stateDir,
      "--ipalloc-range",
      "10.32.0.1/12",
    ], { netns });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /10\.32\.0\.1\/12.*did you mean 10\.32\.0\.0\/12/);
    assert.equal((await sh(["ip", "-n", netns, "link", "show", "weave"])).code, 1);
    const remote = await sh([lab.artifact.weft, "launch", "--api-addr", "0.0.0.0:6784"], { netns });
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /loopback only/);
  } finally {
    await lab.destroy();
  }
});

Deno.test("expose and hide control the node's access to pods, and survive a restart", async () => {
  const lab = await Lab.create({ nodes: 1, prefix: "wtax" });
  try {
    const netns = lab.node(1).netns;
    const pod = await lab.addPod(1, "p");
    const other = await lab.addPod(1, "q");
    assert.ok(await lab.ping(netns, pod.ip), "the node reaches its pod when exposed (the default)");

    const hide = await lab.weft(1, ["hide"]);
    assert.equal(hide.code, 0, hide.stderr);
    assert.ok(!(await lab.ping(netns, pod.ip)), "hidden: the node cannot open connections to pods");
    assert.ok(await lab.ping(pod, "10.32.0.1"), "hidden: pods still reach their gateway");
    assert.ok(await lab.ping(pod, other.ip), "hidden: pods still reach each other");

    await lab.restartAgent(1);
    assert.ok(!(await lab.ping(netns, pod.ip)), "hide survives an agent restart");

    assert.equal((await lab.weft(1, ["expose"])).code, 0);
    assert.ok(await lab.ping(netns, pod.ip), "exposed again");
  } finally {
    await lab.destroy();
  }
});
