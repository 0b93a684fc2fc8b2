import assert from "node:assert/strict";
import { CommandError } from "../net/exec.ts";
import { AgentResponseError } from "./agent_client.ts";
import { MAX_STDIN_BYTES, runPlugin } from "./dispatcher.ts";
import { CniCode } from "./errors.ts";
import { MemoryAgent, MemoryKernel } from "./memory.ts";
import { hostVethName } from "./names.ts";

const POD = "/var/run/netns/pod1";

function setup() {
  const agent = new MemoryAgent();
  const kernel = new MemoryKernel();
  kernel.addBridge("weave", 1376);
  kernel.addNetns(POD);
  return { agent, kernel };
}

interface Run {
  code: number;
  // deno-lint-ignore no-explicit-any
  json: any;
}

type Reader = { read(p: Uint8Array): Promise<number | null> };

function isReader(value: unknown): value is Reader {
  return typeof (value as Reader)?.read === "function";
}

/** Hands out `bytes` in reads of at most the caller's buffer, as a pipe does. */
function bytesReader(bytes: Uint8Array): Reader {
  let at = 0;
  return {
    read(p: Uint8Array) {
      if (at >= bytes.length) return Promise.resolve(null);
      const n = Math.min(p.length, bytes.length - at);
      p.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

async function invoke(
  world: { agent: MemoryAgent; kernel: MemoryKernel },
  env: Record<string, string>,
  config: unknown,
): Promise<Run> {
  const chunks: Uint8Array[] = [];
  const stdin = isReader(config) ? config : bytesReader(new TextEncoder().encode(
    typeof config === "string" ? config : JSON.stringify(config),
  ));
  const code = await runPlugin({
    env,
    stdin,
    stdout: {
      write(p: Uint8Array) {
        chunks.push(p.slice());
        return Promise.resolve(p.length);
      },
    },
  }, { agentFor: () => world.agent, kernel: world.kernel });
  const text = new TextDecoder().decode(
    chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
  );
  return { code, json: text.trim() ? JSON.parse(text) : undefined };
}

const env = (command: string, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: "c1",
  CNI_NETNS: POD,
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
  ...extra,
});
const config = { cniVersion: "1.1.0", name: "weft", type: "weft" };

Deno.test("ADD: the pod named in CNI_ARGS goes with the allocation request (NetworkPolicy)", async () => {
  const world = setup();
  const args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_UID=u-42";
  assert.equal((await invoke(world, env("ADD", { CNI_ARGS: args }), config)).code, 0);
  assert.deepEqual(world.agent.pods.get("c1/eth0"), {
    namespace: "shop",
    name: "web-1",
    uid: "u-42",
  });
  // without the pod's name (not Kubernetes) the agent is told nothing
  const other = setup();
  const partial = env("ADD", { CNI_ARGS: "K8S_POD_NAMESPACE=shop" });
  assert.equal((await invoke(other, partial, config)).code, 0);
  assert.equal(other.agent.pods.size, 0);
});

Deno.test("ADD: veth on the bridge, address from the agent, result in 1.1.0 shape", async () => {
  const world = setup();
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.code, 0);
  const host = await hostVethName("c1", "eth0");
  assert.equal(run.json.cniVersion, "1.1.0");
  assert.deepEqual(run.json.interfaces.map((i: { name: string }) => i.name), [host, "eth0"]);
  assert.equal(run.json.interfaces[1].sandbox, POD);
  assert.equal(run.json.interfaces[1].mtu, 1376, "MTU taken from the bridge");
  assert.deepEqual(run.json.ips, [{
    address: "10.32.0.2/12",
    gateway: "10.32.0.1",
    interface: 1,
  }]);
  assert.deepEqual(run.json.routes, [{ dst: "0.0.0.0/0", gw: "10.32.0.1" }]);
  const pod = await world.kernel.readPodLink(POD, "eth0");
  assert.deepEqual(pod?.addresses, ["10.32.0.2/12"]);
  assert.equal(pod?.mac, "0a:58:0a:20:00:02");
  assert.equal((await world.kernel.readHostLink(host))?.master, "weave");
});

Deno.test("ADD: 0.3.1 request gets a 0.3.1 result with ips version", async () => {
  const run = await invoke(setup(), env("ADD"), { ...config, cniVersion: "0.3.1", mtu: 1400 });
  assert.equal(run.json.cniVersion, "0.3.1");
  assert.equal(run.json.ips[0].version, "4");
  assert.equal(run.json.interfaces[1].mtu, undefined);
});

Deno.test("ADD: prevResult entries are kept and ours appended", async () => {
  const prevResult = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "lo0" }],
    ips: [{ address: "192.168.0.2/24", interface: 0 }],
  };
  const run = await invoke(setup(), env("ADD"), { ...config, prevResult });
  assert.equal(run.json.interfaces.length, 3);
  assert.equal(run.json.ips[1].interface, 2);
});

Deno.test("ADD: interface already in the pod is code 101, nothing allocated", async () => {
  const world = setup();
  assert.equal((await invoke(world, env("ADD"), config)).code, 0);
  const second = await invoke(world, env("ADD", { CNI_CONTAINERID: "c2" }), config);
  assert.equal(second.code, 1);
  assert.equal(second.json.code, CniCode.interfaceExists);
  assert.match(second.json.msg, /eth0/);
  assert.deepEqual(world.agent.allocations.map((a) => a.containerID), ["c1"]);
  assert.equal(world.kernel.links().length, 2, "bridge + the first pod's veth only");
});

Deno.test("ADD twice for the same attachment fails and keeps the first one's address", async () => {
  const world = setup();
  world.kernel.addNetns("/var/run/netns/pod2");
  assert.equal((await invoke(world, env("ADD"), config)).code, 0);
  const again = await invoke(world, env("ADD", { CNI_NETNS: "/var/run/netns/pod2" }), config);
  assert.equal(again.json.code, CniCode.interfaceExists);
  assert.equal(world.agent.allocations.length, 1);
  assert.deepEqual((await world.kernel.readPodLink(POD, "eth0"))?.addresses, ["10.32.0.2/12"]);
});

Deno.test("ADD: agent unreachable is code 11 and the veth is removed", async () => {
  const world = setup();
  world.agent.unreachable = true;
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.tryAgainLater);
  assert.deepEqual(world.kernel.links(), ["weave"]);
  assert.deepEqual(world.kernel.links(POD), []);
});

Deno.test("ADD: agent not ready (503) is code 11", async () => {
  const world = setup();
  world.agent.ready = false;
  assert.equal((await invoke(world, env("ADD"), config)).json.code, CniCode.tryAgainLater);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});

Deno.test("ADD: no free address (507) is code 11 with the agent's message", async () => {
  const world = setup();
  world.kernel.addNetns("/var/run/netns/pod2");
  const small = { ...config, subnet: "10.32.9.5/32" };
  assert.equal((await invoke(world, env("ADD"), small)).code, 0);
  const run = await invoke(
    world,
    env("ADD", { CNI_CONTAINERID: "c2", CNI_NETNS: "/var/run/netns/pod2" }),
    small,
  );
  assert.equal(run.json.code, CniCode.tryAgainLater);
  assert.match(run.json.msg, /no free address/);
  assert.equal(world.kernel.links().length, 2);
});

Deno.test("ADD: subnet outside the range (agent 400) is code 7", async () => {
  const run = await invoke(setup(), env("ADD"), { ...config, subnet: "192.168.0.0/24" });
  assert.equal(run.json.code, CniCode.invalidConfig);
});

Deno.test("ADD: pod setup failure removes the veth and releases the address", async () => {
  const world = setup();
  world.kernel.failNext = {
    step: "configurePod",
    error: new CommandError(["ip"], 2, "RTNETLINK answers: Operation not permitted"),
  };
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.kernelFailure);
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(), ["weave"]);
  assert.deepEqual(world.kernel.links(POD), []);
});

Deno.test("ADD: a pod with a default route already is code 102 and undone", async () => {
  const world = setup();
  world.kernel.addDefaultRoute(POD, { gateway: "10.99.0.1", dev: "net1" });
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.defaultRouteConflict);
  assert.match(run.json.msg, /defaultRoute/);
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(POD), []);
  assert.deepEqual(await world.kernel.readPodDefaultRoutes(POD), [{
    gateway: "10.99.0.1",
    dev: "net1",
  }]);
  const secondary = await invoke(world, env("ADD"), { ...config, defaultRoute: false });
  assert.equal(secondary.code, 0);
  assert.deepEqual(secondary.json.routes, []);
});

Deno.test("ADD: clean-up failures are reported in details", async () => {
  const world = setup();
  world.agent.unreachable = true;
  world.kernel.failNext = { step: "deleteHostLink", error: new Error("device busy") };
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.tryAgainLater);
  assert.match(run.json.details, /clean-up failed: device busy/);
});

Deno.test("ADD: a missing netns is code 3, missing bridge code 11", async () => {
  const world = setup();
  const gone = await invoke(world, env("ADD", { CNI_NETNS: "/var/run/netns/gone" }), config);
  assert.equal(gone.json.code, CniCode.containerUnknown);
  assert.match(gone.json.msg, /gone/);
  const noBridge = await invoke(world, env("ADD"), { ...config, bridge: "nobridge" });
  assert.equal(noBridge.json.code, CniCode.tryAgainLater);
  assert.match(noBridge.json.msg, /nobridge/);
  assert.deepEqual(world.agent.allocations, []);
});

Deno.test("ADD/CHECK: a netns path that is no namespace is code 3, nothing made", async () => {
  const world = setup();
  world.kernel.addFile("/var/run/netns/unmounted");
  for (const command of ["ADD", "CHECK"]) {
    const run = await invoke(
      world,
      env(command, { CNI_NETNS: "/var/run/netns/unmounted" }),
      config,
    );
    assert.equal(run.json.code, CniCode.containerUnknown, run.json.msg);
    assert.match(run.json.msg, /"\/var\/run\/netns\/unmounted" is not a network namespace/);
  }
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});

Deno.test("ADD/CHECK: the node's own netns (/proc/1/ns/net) is code 4 naming CNI_NETNS", async () => {
  const world = setup();
  for (const command of ["ADD", "CHECK"]) {
    const run = await invoke(world, env(command, { CNI_NETNS: "/proc/1/ns/net" }), config);
    assert.equal(run.json.code, CniCode.invalidEnvironment, run.json.msg);
    assert.match(run.json.msg, /CNI_NETNS "\/proc\/1\/ns\/net".*node's own network namespace/);
  }
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});

Deno.test("stdin past 1 MiB is refused with code 6 before it is all read", async () => {
  const world = setup();
  let pulled = 0;
  // an endless config of spaces: the plugin must stop reading by itself
  const stdin: Reader = {
    read(p: Uint8Array) {
      p.fill(32);
      pulled += p.length;
      return Promise.resolve(p.length);
    },
  };
  const run = await invoke(world, env("ADD"), stdin);
  assert.equal(run.code, 1);
  assert.equal(run.json.code, CniCode.decodeFailure);
  assert.match(run.json.msg, /larger than 1048576 bytes/);
  assert.ok(pulled <= MAX_STDIN_BYTES + 64 * 1024, `read ${pulled} bytes`);
  assert.deepEqual(world.agent.allocations, []);
});

Deno.test("stdin of exactly the limit is still read", async () => {
  const text = JSON.stringify(config);
  const padded = text + " ".repeat(MAX_STDIN_BYTES - text.length);
  const run = await invoke(setup(), env("ADD"), padded);
  assert.equal(run.code, 0, JSON.stringify(run.json));
});

Deno.test("DEL: removes veth and allocation, repeats fine, works without netns", async () => {
  const world = setup();
  await invoke(world, env("ADD"), config);
  const del = await invoke(world, env("DEL"), config);
  assert.deepEqual([del.code, del.json], [0, undefined]);
  assert.deepEqual(world.kernel.links(), ["weave"]);
  assert.deepEqual(world.agent.allocations, []);
  assert.equal((await invoke(world, env("DEL"), config)).code, 0);
  assert.equal((await invoke(world, env("DEL", { CNI_NETNS: "" }), config)).code, 0);
});

Deno.test("DEL after the netns vanished still releases the address", async () => {
  const world = setup();
  await invoke(world, env("ADD"), config);
  world.kernel.removeNetns(POD);
  assert.equal((await invoke(world, env("DEL", { CNI_NETNS: "" }), config)).code, 0);
  assert.deepEqual(world.agent.allocations, []);
});

Deno.test("DEL: agent unreachable is code 11 (the runtime retries)", async () => {
  const world = setup();
  await invoke(world, env("ADD"), config);
  world.agent.unreachable = true;
  assert.equal((await invoke(world, env("DEL"), config)).json.code, CniCode.tryAgainLater);
  world.agent.unreachable = false;
  assert.equal((await invoke(world, env("DEL"), config)).code, 0);
  assert.deepEqual(world.agent.allocations, []);
});

Deno.test("CHECK: passes after ADD, fails with 104 naming what is wrong", async () => {
  const world = setup();
  const added = await invoke(world, env("ADD"), config);
  const ok = await invoke(world, env("CHECK"), { ...config, prevResult: added.json });
  assert.deepEqual([ok.code, ok.json], [0, undefined]);
  await world.kernel.deleteHostLink(await hostVethName("c1", "eth0"));
  const broken = await invoke(world, env("CHECK"), { ...config, prevResult: added.json });
  assert.equal(broken.json.code, CniCode.checkFailed);
  assert.match(broken.json.msg, /eth0" is missing/);
  assert.equal(world.agent.allocations.length, 1, "CHECK changes nothing");
});

Deno.test("CHECK: without an allocation is 104; before 0.4.0 is code 1", async () => {
  const world = setup();
  assert.equal((await invoke(world, env("CHECK"), config)).json.code, CniCode.checkFailed);
  const old = await invoke(world, env("CHECK"), { ...config, cniVersion: "0.3.1" });
  assert.equal(old.json.code, CniCode.incompatibleVersion);
  assert.equal(old.json.cniVersion, "0.3.1");
});

Deno.test("STATUS: ready is success, unreachable or not ready is code 50", async () => {
  const world = setup();
  assert.deepEqual(await invoke(world, { CNI_COMMAND: "STATUS", CNI_PATH: "/x" }, config), {
    code: 0,
    json: undefined,
  });
  world.agent.ready = false;
  const notReady = await invoke(world, { CNI_COMMAND: "STATUS", CNI_PATH: "/x" }, config);
  assert.equal(notReady.json.code, CniCode.pluginNotAvailable);
  world.agent.unreachable = true;
  const down = await invoke(world, { CNI_COMMAND: "STATUS", CNI_PATH: "/x" }, config);
  assert.equal(down.json.code, CniCode.pluginNotAvailable);
});

Deno.test("GC: releases every allocation not listed; refuses a GC without the list", async () => {
  const world = setup();
  world.kernel.addNetns("/var/run/netns/pod2");
  await invoke(world, env("ADD"), config);
  await invoke(
    world,
    env("ADD", { CNI_CONTAINERID: "c2", CNI_NETNS: "/var/run/netns/pod2" }),
    config,
  );
  const gcEnv = { CNI_COMMAND: "GC", CNI_PATH: "/x" };
  assert.equal((await invoke(world, gcEnv, config)).json.code, CniCode.invalidConfig);
  assert.equal(world.agent.allocations.length, 2);
  const run = await invoke(world, gcEnv, {
    ...config,
    "cni.dev/valid-attachments": [{ containerID: "c2", ifname: "eth0" }],
  });
  assert.equal(run.code, 0);
  assert.deepEqual(world.agent.allocations.map((a) => a.containerID), ["c2"]);
});

Deno.test("VERSION: answers with the supported list, even with empty stdin", async () => {
  const run = await invoke(setup(), { CNI_COMMAND: "VERSION" }, "");
  assert.equal(run.code, 0);
  assert.equal(run.json.cniVersion, "1.1.0");
  assert.ok(run.json.supportedVersions.includes("0.3.0"));
});

Deno.test("errors: JSON with cniVersion, code, msg, details and exit 1", async () => {
  const world = setup();
  const badJson = await invoke(world, env("ADD"), "{oops");
  assert.equal(badJson.code, 1);
  assert.deepEqual(Object.keys(badJson.json).sort(), ["cniVersion", "code", "details", "msg"]);
  assert.equal(badJson.json.code, CniCode.decodeFailure);
  const noEnv = await invoke(world, { CNI_COMMAND: "ADD" }, { ...config, cniVersion: "0.4.0" });
  assert.equal(noEnv.json.code, CniCode.invalidEnvironment);
  assert.equal(noEnv.json.cniVersion, "0.4.0");
  const old = await invoke(world, env("ADD"), { ...config, cniVersion: "0.1.0" });
  assert.equal(old.json.code, CniCode.incompatibleVersion);
  assert.match(old.json.msg, /0\.1\.0/);
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});

Deno.test("errors: an unexpected agent status is code 103", async () => {
  const world = setup();
  world.agent.allocate = () =>
    Promise.reject(new AgentResponseError(500, { message: "disk full", request: "POST /ip/c1" }));
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.agentRejected);
  assert.match(run.json.msg, /disk full/);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});

Deno.test("errors: an unusable agent answer is 103 and is released again", async () => {
  const world = setup();
  const real = world.agent.allocate.bind(world.agent);
  world.agent.allocate = async (id, options) => ({ ...await real(id, options), mac: "nonsense" });
  const run = await invoke(world, env("ADD"), config);
  assert.equal(run.json.code, CniCode.agentRejected);
  assert.deepEqual(world.agent.allocations, []);
  assert.deepEqual(world.kernel.links(), ["weave"]);
});
