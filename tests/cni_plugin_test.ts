/**
 * The CNI plugin against a real kernel: a node namespace with the bridge and an agent, pod
 * namespaces, and the installed `weft` executable run as a runtime runs it. Everything lives
 * in namespaces named `wtc-p-*`, swept at the start and removed at the end.
 */

import assert from "node:assert/strict";
import {
  agentAllocations,
  createNetns,
  installPlugin,
  type InvokeOptions,
  invokePlugin,
  ipJsonIn,
  linkNames,
  netnsPath,
  ping,
  type RunningAgent,
  startAgent,
  sweep,
} from "./support/plugin.ts";

const PREFIX = "wtc-p";
const NODE = `${PREFIX}-node`;
const config = { cniVersion: "1.1.0", name: "weft", type: "weft" };

interface World {
  binDir: string;
  agent: RunningAgent;
  cni(options: Omit<InvokeOptions, "binDir" | "inNetns">): ReturnType<typeof invokePlugin>;
  pod(name: string): Promise<string>;
}

async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  await sweep(PREFIX);
  const binDir = await Deno.makeTempDir({ prefix: "weft-cni-test-" });
  let agent: RunningAgent | undefined;
  try {
    await createNetns(NODE);
    await installPlugin(binDir);
    agent = await startAgent(NODE);
    const world: World = {
      binDir,
      agent,
      cni: (options) => invokePlugin({ binDir, inNetns: NODE, ...options }),
      pod: (name) => createNetns(`${PREFIX}-${name}`),
    };
    await body(world);
  } finally {
    await agent?.stop();
    await sweep(PREFIX);
    await Deno.remove(binDir, { recursive: true }).catch(() => {});
  }
}

/** The agent's allocations for pods of this test (the real agent also lists its bridge's). */
async function podAllocations() {
  return (await agentAllocations(NODE)).filter((a) => a.containerID.startsWith("ctr-"));
}

async function hostVeths(): Promise<string[]> {
  return (await linkNames(NODE)).filter((n) => n.startsWith("vethwepl"));
}

Deno.test("cni kernel: ADD, the pod matches the result, pods reach each other, DEL cleans", async (t) => {
  await withWorld(async ({ cni, pod }) => {
    const p1 = await pod("a");
    const p2 = await pod("b");
    const [bridge] = await ipJsonIn(NODE, ["link", "show", "dev", "weave"]);
    const add1 = await cni({ command: "ADD", containerID: "ctr-a", netns: netnsPath(p1), config });
    assert.equal(add1.code, 0, add1.stdout);
    const add2 = await cni({
      command: "ADD",
      containerID: "ctr-b",
      netns: netnsPath(p2),
      config: { ...config, mtu: 1400 },
    });
    assert.equal(add2.code, 0, add2.stdout);

    await t.step("the kernel has what the result claims", async () => {
      const result = add1.json;
      assert.equal(result.cniVersion, "1.1.0");
      const podIface = result.interfaces[result.ips[0].interface];
      assert.equal(podIface.name, "eth0");
      assert.equal(podIface.sandbox, netnsPath(p1));
      const [link] = await ipJsonIn(p1, ["addr", "show", "dev", "eth0"]);
      assert.equal(link.address, podIface.mac);
      assert.equal(link.mtu, podIface.mtu);
      assert.equal(link.mtu, bridge.mtu, "the bridge's MTU when the config has none");
      assert.ok(link.flags.includes("UP"));
      const v4 = link.addr_info.filter((a: { family: string }) => a.family === "inet");
      assert.deepEqual(
        v4.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
        [
          result.ips[0].address,
        ],
      );
      assert.match(result.ips[0].address, /\/12$/, "the whole range's prefix");
      const routes = await ipJsonIn(p1, ["route", "show", "default"]);
      assert.deepEqual(routes.map((r: { gateway: string; dev: string }) => [r.gateway, r.dev]), [
        [result.ips[0].gateway, "eth0"],
      ]);
      const hostName = result.interfaces[0].name;
      assert.match(hostName, /^vethwepl[0-9a-f]{7}$/);
      const [host] = await ipJsonIn(NODE, ["-d", "link", "show", "dev", hostName]);
      assert.equal(host.master, "weave");
      assert.equal(host.linkinfo.info_slave_data.hairpin, true);
      assert.ok(host.flags.includes("UP"));
      const [second] = await ipJsonIn(p2, ["link", "show", "dev", "eth0"]);
      assert.equal(second.mtu, 1400, "MTU from the config");
    });

    await t.step("pods ping each other and the bridge", async () => {
      const a = add1.json.ips[0].address.split("/")[0];
      const b = add2.json.ips[0].address.split("/")[0];
      assert.ok(await ping(p1, b), `${p1} -> ${b}`);
      assert.ok(await ping(p2, a), `${p2} -> ${a}`);
      assert.ok(await ping(p1, add1.json.ips[0].gateway), "pod -> bridge");
    });

    await t.step("CHECK passes and changes nothing, then finds a broken pod", async () => {
      // IPv4 addresses, links and routes: IPv6 link-local addresses finish duplicate address
      // detection on their own time, which is the kernel's change, not CHECK's
      const state = async () => [
        await ipJsonIn(p1, ["-4", "addr"]),
        await ipJsonIn(p1, ["link"]),
        await ipJsonIn(p1, ["route"]),
      ];
      const before = await state();
      const check = await cni({
        command: "CHECK",
        containerID: "ctr-a",
        netns: netnsPath(p1),
        config: { ...config, prevResult: add1.json },
      });
      assert.deepEqual([check.code, check.stdout], [0, ""]);
      assert.deepEqual(await state(), before);
      const removeRoute = new Deno.Command("ip", {
        args: ["-n", p1, "route", "del", "default"],
      });
      assert.equal((await removeRoute.output()).code, 0);
      const broken = await cni({
        command: "CHECK",
        containerID: "ctr-a",
        netns: netnsPath(p1),
        config: { ...config, prevResult: add1.json },
      });
      assert.equal(broken.json.code, 104);
      assert.match(broken.json.msg, /no default route/);
    });

    await t.step("ADD on an existing interface fails cleanly, the first pod unharmed", async () => {
      const veths = await hostVeths();
      const allocations = await podAllocations();
      const clash = await cni({
        command: "ADD",
        containerID: "ctr-clash",
        netns: netnsPath(p2),
        config,
      });
      assert.equal(clash.code, 1);
      assert.equal(clash.json.code, 101);
      assert.match(clash.json.msg, /eth0/);
      const again = await cni({
        command: "ADD",
        containerID: "ctr-b",
        netns: netnsPath(p2),
        config,
      });
      assert.equal(again.json.code, 101);
      assert.deepEqual(await hostVeths(), veths);
      assert.deepEqual(await podAllocations(), allocations);
      assert.ok(await ping(p2, add2.json.ips[0].gateway), "the first pod still works");
    });

    await t.step("DEL removes the veth and frees the address; repeated DEL succeeds", async () => {
      const del = await cni({ command: "DEL", containerID: "ctr-a", netns: netnsPath(p1), config });
      assert.deepEqual([del.code, del.stdout], [0, ""]);
      assert.ok(!(await hostVeths()).includes(add1.json.interfaces[0].name));
      assert.deepEqual(await linkNames(p1), ["lo"]);
      assert.deepEqual((await podAllocations()).map((a) => a.containerID), ["ctr-b"]);
      const repeat = await cni({
        command: "DEL",
        containerID: "ctr-a",
        netns: netnsPath(p1),
        config,
      });
      assert.equal(repeat.code, 0);
      const noNetns = await cni({ command: "DEL", containerID: "ctr-a", config });
      assert.equal(noNetns.code, 0, noNetns.stdout);
    });

    await t.step("DEL without a netns after the netns is gone releases the address", async () => {
      await new Deno.Command("ip", { args: ["netns", "del", p2] }).output();
      const del = await cni({ command: "DEL", containerID: "ctr-b", config });
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual(await podAllocations(), []);
      assert.deepEqual(await hostVeths(), []);
    });

    await t.step("GC releases allocations not listed as valid", async () => {
      const p3 = await pod("c");
      const p4 = await pod("d");
      for (const [id, netns] of [["ctr-c", p3], ["ctr-d", p4]]) {
        assert.equal(
          (await cni({ command: "ADD", containerID: id, netns: netnsPath(netns), config })).code,
          0,
        );
      }
      const gc = await cni({
        command: "GC",
        config: {
          ...config,
          "cni.dev/valid-attachments": [{ containerID: "ctr-d", ifname: "eth0" }],
        },
      });
      assert.deepEqual([gc.code, gc.stdout], [0, ""]);
      assert.deepEqual((await podAllocations()).map((a) => a.containerID), ["ctr-d"]);
    });

    await t.step("STATUS answers success while the agent is ready", async () => {
      const status = await cni({ command: "STATUS", config });
      assert.deepEqual([status.code, status.stdout], [0, ""]);
    });
  });
});

Deno.test("cni kernel: the `ip` fallback (no netlink) attaches, clashes and detaches alike", async () => {
  await withWorld(async ({ cni, pod }) => {
    const extraEnv = { WEFT_NETLINK: "0" };
    const p1 = await pod("ipa");
    const p2 = await pod("ipb");
    const add1 = await cni({
      command: "ADD",
      containerID: "ctr-ipa",
      netns: netnsPath(p1),
      config,
      extraEnv,
    });
    assert.equal(add1.code, 0, add1.stdout);
    const add2 = await cni({
      command: "ADD",
      containerID: "ctr-ipb",
      netns: netnsPath(p2),
      config,
      extraEnv,
    });
    assert.equal(add2.code, 0, add2.stdout);
    const [link] = await ipJsonIn(p1, ["addr", "show", "dev", "eth0"]);
    assert.equal(link.address, add1.json.interfaces[1].mac);
    const [host] = await ipJsonIn(NODE, [
      "-d",
      "link",
      "show",
      "dev",
      add1.json.interfaces[0].name,
    ]);
    assert.equal(host.master, "weave");
    assert.equal(host.linkinfo.info_slave_data.hairpin, true);
    assert.ok(await ping(p1, add2.json.ips[0].address.split("/")[0]));
    const clash = await cni({
      command: "ADD",
      containerID: "ctr-ipc",
      netns: netnsPath(p1),
      config,
      extraEnv,
    });
    assert.equal(clash.json.code, 101, clash.stdout);
    // a pod that already has a default route (another network's): 102, nothing left behind
    const p3 = await pod("ipc");
    await new Deno.Command("ip", { args: ["-n", p3, "route", "add", "default", "dev", "lo"] })
      .output();
    const conflict = await cni({
      command: "ADD",
      containerID: "ctr-ipd",
      netns: netnsPath(p3),
      config,
      extraEnv,
    });
    assert.equal(conflict.json.code, 102, conflict.stdout);
    assert.deepEqual(await linkNames(p3), ["lo"]);
    for (const [id, p] of [["ctr-ipa", p1], ["ctr-ipb", p2]]) {
      const del = await cni({
        command: "DEL",
        containerID: id,
        netns: netnsPath(p),
        config,
        extraEnv,
      });
      assert.equal(del.code, 0, del.stdout);
    }
    assert.deepEqual(await hostVeths(), []);
    assert.deepEqual(await podAllocations(), []);
  });
});

Deno.test("cni kernel: malformed input gives the right code and leaves nothing", async (t) => {
  await withWorld(async ({ cni, pod, agent, binDir }) => {
    const p = await pod("m");
    // what an unmounted namespace leaves behind: the empty file it was mounted on
    const notNetns = `${binDir}/unmounted-netns`;
    await Deno.writeFile(notNetns, new Uint8Array());
    const base = { command: "ADD", containerID: "ctr-m", netns: netnsPath(p) };
    const cases: [string, Parameters<World["cni"]>[0], number][] = [
      ["bad JSON", { ...base, config: '{"cniVersion": ' }, 6],
      ["config not an object", { ...base, config: "[1,2]" }, 7],
      ["missing name", { ...base, config: { cniVersion: "1.0.0", type: "weft" } }, 7],
      ["unsupported version", { ...base, config: { ...config, cniVersion: "0.2.0" } }, 1],
      ["missing CNI_CONTAINERID", { ...base, config, unset: ["CNI_CONTAINERID"] }, 4],
      ["missing CNI_NETNS", { ...base, config, unset: ["CNI_NETNS"] }, 4],
      ["missing CNI_IFNAME", { ...base, config, unset: ["CNI_IFNAME"] }, 4],
      ["missing CNI_PATH", { ...base, config, unset: ["CNI_PATH"] }, 4],
      ["IFNAME too long", { ...base, config, ifname: "eth0123456789abc" }, 4],
      ["IFNAME with a slash", { ...base, config, ifname: "eth/0" }, 4],
      ["IFNAME with a colon", { ...base, config, ifname: "eth:0" }, 4],
      ["IFNAME with a space", { ...base, config, ifname: "eth 0" }, 4],
      ["netns that does not exist", { ...base, netns: "/var/run/netns/wtc-p-none", config }, 3],
      ["agent not listening", { ...base, config: { ...config, agent: "127.0.0.1:1" } }, 11],
      // refused at parse (code 7), not tried (the node namespace has no route: 11 before)
      ["agent not on loopback", { ...base, config: { ...config, agent: "192.0.2.1:6784" } }, 7],
      ["netns path is a regular file", { ...base, netns: notNetns, config }, 3],
      ["netns path is a directory", { ...base, netns: binDir, config }, 3],
      // the node's own namespace, as /proc/1/ns/net is on a real node
      ["netns is the node's own (bind mount)", { ...base, netns: netnsPath(NODE), config }, 4],
      ["netns is the node's own (/proc/self)", { ...base, netns: "/proc/self/ns/net", config }, 4],
      ["stdin over 1 MiB", { ...base, config: JSON.stringify(config) + " ".repeat(1 << 20) }, 6],
    ];
    for (const [what, options, expected] of cases) {
      await t.step(`${what} -> code ${expected}`, async () => {
        const run = await cni(options);
        assert.equal(run.code, 1, `${what}: exit code`);
        assert.equal(run.json?.code, expected, `${what}: ${run.stdout}`);
        assert.equal(typeof run.json.msg, "string");
        assert.ok(run.json.cniVersion, "cniVersion is always set");
        assert.deepEqual(await hostVeths(), [], `${what} left a veth`);
        assert.deepEqual(await linkNames(p), ["lo"], `${what} left a pod interface`);
        assert.deepEqual(await podAllocations(), [], `${what} left an allocation`);
      });
    }

    await t.step("agent down: ADD is 11, STATUS is 50, nothing left", async () => {
      await agent.stop();
      const add = await cni({ ...base, config });
      assert.equal(add.json.code, 11);
      assert.match(add.json.msg, /127\.0\.0\.1:6784/);
      assert.deepEqual(await hostVeths(), []);
      assert.deepEqual(await linkNames(p), ["lo"]);
      const status = await cni({ command: "STATUS", config });
      assert.equal(status.json.code, 50);
    });
  });
});
