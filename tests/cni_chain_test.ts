/**
 * The weft plugin next to Debian's reference plugins, as a runtime chains them: first in a
 * conflist followed by `portmap`, and sharing a pod with the reference `bridge` (+ host-local)
 * as a second network. Namespaces are `wtc-c-*`.
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
  must,
  netnsPath,
  ping,
  type RunningAgent,
  sh,
  startAgent,
  sweep,
} from "./support/plugin.ts";

const PREFIX = "wtc-c";
const NODE = `${PREFIX}-node`;
// 1.0.0: the newest version Debian's reference plugins (1.1.1) speak
const weftConfig = { cniVersion: "1.0.0", name: "weft", type: "weft" };

interface World {
  cni(options: Omit<InvokeOptions, "binDir" | "inNetns">): ReturnType<typeof invokePlugin>;
  reference(
    plugin: string,
    options: Omit<InvokeOptions, "binDir" | "inNetns" | "program">,
  ): ReturnType<typeof invokePlugin>;
  pod(name: string): Promise<string>;
  hostLocalDir: string;
}

async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  await sweep(PREFIX);
  const binDir = await Deno.makeTempDir({ prefix: "weft-cni-chain-" });
  const hostLocalDir = await Deno.makeTempDir({ prefix: "weft-cni-hostlocal-" });
  let agent: RunningAgent | undefined;
  try {
    await createNetns(NODE);
    await installPlugin(binDir);
    agent = await startAgent(NODE);
    await body({
      cni: (options) => invokePlugin({ binDir, inNetns: NODE, ...options }),
      reference: (plugin, options) =>
        invokePlugin({
          binDir,
          inNetns: NODE,
          cniPath: "/usr/lib/cni",
          program: `/usr/lib/cni/${plugin}`,
          ...options,
        }),
      pod: (name) => createNetns(`${PREFIX}-${name}`),
      hostLocalDir,
    });
  } finally {
    await agent?.stop();
    await sweep(PREFIX);
    await Deno.remove(binDir, { recursive: true }).catch(() => {});
    await Deno.remove(hostLocalDir, { recursive: true }).catch(() => {});
  }
}

const address = (result: { ips: { address: string }[] }, index = 0) =>
  result.ips[index].address.split("/")[0];

Deno.test("cni chain: weft then portmap, the mapped port answers from the node", async () => {
  await withWorld(async ({ cni, reference, pod }) => {
    const p = await pod("web");
    const netns = netnsPath(p);
    const add = await cni({ command: "ADD", containerID: "ctr-web", netns, config: weftConfig });
    assert.equal(add.code, 0, add.stdout);
    const portmapConfig = {
      cniVersion: "1.0.0",
      name: "weft",
      type: "portmap",
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: "tcp" }] },
      prevResult: add.json,
    };
    const mapped = await reference("portmap", {
      command: "ADD",
      containerID: "ctr-web",
      netns,
      config: portmapConfig,
    });
    assert.equal(mapped.code, 0, mapped.stdout + mapped.stderr);
    assert.deepEqual(mapped.json.ips, add.json.ips, "portmap passed our result on");

    const server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        p,
        Deno.execPath(),
        "eval",
        "Deno.serve({ hostname: '0.0.0.0', port: 8080, onListen() {} }, () => new Response('pong'))",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const curl = (url: string) =>
        sh(["curl", "-s", "--max-time", "2", url], { netns: NODE }).then((r) => r.stdout);
      let direct = "";
      for (let i = 0; i < 100 && direct !== "pong"; i++) {
        direct = await curl(`http://${address(add.json)}:8080/`);
        if (direct !== "pong") await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(direct, "pong", "the pod's server is up");
      const gateway = add.json.ips[0].gateway;
      assert.equal(await curl(`http://${gateway}:18080/`), "pong", "mapped port on the node");
    } finally {
      server.kill("SIGKILL");
      await server.status;
    }

    const unmapped = await reference("portmap", {
      command: "DEL",
      containerID: "ctr-web",
      netns,
      config: portmapConfig,
    });
    assert.equal(unmapped.code, 0, unmapped.stdout);
    const del = await cni({ command: "DEL", containerID: "ctr-web", netns, config: weftConfig });
    assert.equal(del.code, 0, del.stdout);
    assert.deepEqual(await linkNames(p), ["lo"]);
  });
});

Deno.test("cni chain: a pod on weft and on the reference bridge, DEL of either leaves the other", async (t) => {
  await withWorld(async ({ cni, reference, pod, hostLocalDir }) => {
    const refConfig = (extra: Record<string, unknown> = {}) => ({
      cniVersion: "1.0.0",
      name: "ref",
      type: "bridge",
      bridge: "cniref0",
      isGateway: true,
      ipam: { type: "host-local", subnet: "10.99.0.0/16", dataDir: hostLocalDir },
      ...extra,
    });
    const pods = [await pod("m1"), await pod("m2")];
    const results: { weft: { ips: { address: string }[] }; ref: { ips: { address: string }[] } }[] =
      [];
    for (const [index, p] of pods.entries()) {
      const netns = netnsPath(p);
      const id = `ctr-m${index + 1}`;
      const weft = await cni({ command: "ADD", containerID: id, netns, config: weftConfig });
      assert.equal(weft.code, 0, weft.stdout);
      const ref = await reference("bridge", {
        command: "ADD",
        containerID: id,
        netns,
        ifname: "net1",
        config: refConfig(),
      });
      assert.equal(ref.code, 0, ref.stdout);
      results.push({ weft: weft.json, ref: ref.json });
    }
    const [m1, m2] = pods;

    await t.step("both networks work, default route stays weft's", async () => {
      assert.ok(await ping(m1, address(results[1].weft)), "weft path");
      assert.ok(await ping(m1, address(results[1].ref)), "reference bridge path");
      assert.ok(await ping(m2, address(results[0].weft)), "weft path, other way");
      assert.ok(await ping(m2, address(results[0].ref)), "reference path, other way");
      const routes = await ipJsonIn(m1, ["route", "show", "default"]);
      assert.deepEqual(routes.map((r: { dev: string }) => r.dev), ["eth0"]);
    });

    await t.step("DEL of the weft interface leaves the reference one working", async () => {
      const del = await cni({
        command: "DEL",
        containerID: "ctr-m1",
        netns: netnsPath(m1),
        config: weftConfig,
      });
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual((await linkNames(m1)).sort(), ["lo", "net1"]);
      assert.ok(await ping(m1, address(results[1].ref)));
      const re = await cni({
        command: "ADD",
        containerID: "ctr-m1",
        netns: netnsPath(m1),
        config: weftConfig,
      });
      assert.equal(re.code, 0, re.stdout);
      results[0].weft = re.json;
    });

    await t.step("DEL of the reference interface leaves weft working", async () => {
      const del = await reference("bridge", {
        command: "DEL",
        containerID: "ctr-m1",
        netns: netnsPath(m1),
        ifname: "net1",
        config: refConfig(),
      });
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual((await linkNames(m1)).sort(), ["eth0", "lo"]);
      assert.ok(await ping(m1, address(results[1].weft)));
      const routes = await ipJsonIn(m1, ["route", "show", "default"]);
      assert.deepEqual(routes.map((r: { dev: string }) => r.dev), ["eth0"]);
    });

    await t.step(
      "a pod whose default route is the other network's: 102, nothing left, then defaultRoute false works",
      async () => {
        const m3 = await pod("m3");
        const netns = netnsPath(m3);
        const ref = await reference("bridge", {
          command: "ADD",
          containerID: "ctr-m3",
          netns,
          ifname: "net1",
          config: refConfig({ isDefaultGateway: true }),
        });
        assert.equal(ref.code, 0, ref.stdout);
        const before = await ipJsonIn(m3, ["route", "show"]);
        const allocationsBefore = await agentAllocations(NODE);
        const vethsBefore = (await linkNames(NODE)).filter((n) => n.startsWith("vethwepl"));

        const clash = await cni({
          command: "ADD",
          containerID: "ctr-m3",
          netns,
          config: weftConfig,
        });
        assert.equal(clash.code, 1);
        assert.equal(clash.json.code, 102, clash.stdout);
        assert.match(clash.json.msg, /defaultRoute/);
        assert.deepEqual(await ipJsonIn(m3, ["route", "show"]), before);
        assert.deepEqual((await linkNames(m3)).sort(), ["lo", "net1"]);
        assert.deepEqual(await agentAllocations(NODE), allocationsBefore);
        assert.deepEqual(
          (await linkNames(NODE)).filter((n) => n.startsWith("vethwepl")),
          vethsBefore,
        );
        assert.ok(await ping(m3, address(results[1].ref)), "the other network still works");

        const secondary = await cni({
          command: "ADD",
          containerID: "ctr-m3",
          netns,
          config: { ...weftConfig, defaultRoute: false },
        });
        assert.equal(secondary.code, 0, secondary.stdout);
        assert.deepEqual(secondary.json.routes, []);
        const routes = await ipJsonIn(m3, ["route", "show", "default"]);
        assert.deepEqual(routes.map((r: { dev: string }) => r.dev), ["net1"]);
        assert.ok(await ping(m3, address(results[1].weft)), "weft range reachable as secondary");
        await must(["ip", "netns", "del", m3]);
      },
    );
  });
});
