/**
 * The conflist `weft install` writes, used the way a runtime uses it: the installed `weft`
 * (the bundled artifact's wrapper, copied by install) and Debian's reference `portmap` are run in
 * chain order for ADD, a hostPort reaches the pod, and DEL in reverse order cleans up. Kernel
 * work happens only in namespaces named `wtk-inst-*`, swept before and removed after.
 */
import assert from "node:assert/strict";
import { CONFLIST_NAME, install, uninstall } from "../src/install/mod.ts";
import { artifact } from "./support/artifact.ts";
import {
  createNetns,
  invokePlugin,
  must,
  netnsPath,
  sh,
  startAgent,
  sweep,
} from "./support/plugin.ts";

const PREFIX = "wtk-inst";
const NODE = `${PREFIX}-node`;
const POD = `${PREFIX}-pod`;

interface Plugin {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

/** What libcni does per plugin: inject name and cniVersion, capabilities, then prevResult. */
function pluginConfig(
  list: { name: string; cniVersion: string },
  plugin: Plugin,
  runtime: Record<string, unknown>,
  prevResult: unknown,
) {
  const runtimeConfig: Record<string, unknown> = {};
  for (const [capability, enabled] of Object.entries(plugin.capabilities ?? {})) {
    if (enabled && capability in runtime) runtimeConfig[capability] = runtime[capability];
  }
  return {
    ...plugin,
    name: list.name,
    cniVersion: list.cniVersion,
    ...(Object.keys(runtimeConfig).length ? { runtimeConfig } : {}),
    ...(prevResult ? { prevResult } : {}),
  };
}

Deno.test({
  name: "the installed conflist chains weft and portmap: a hostPort reaches the pod",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await sweep(PREFIX);
    const dir = await Deno.makeTempDir({ prefix: "wtk_inst_" });
    const bin = `${dir}/opt/cni/bin`;
    const conf = `${dir}/etc/cni/net.d`;
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    let server: Deno.ChildProcess | undefined;
    try {
      await install({ source: (await artifact()).weft, cniBinDir: bin, cniConfDir: conf });
      const list = JSON.parse(await Deno.readTextFile(`${conf}/${CONFLIST_NAME}`));
      assert.deepEqual(list.plugins.map((p: Plugin) => p.type), ["weft", "portmap"]);

      await createNetns(NODE);
      await createNetns(POD);
      agent = await startAgent(NODE, { kind: "fake", range: "10.32.0.0/24" });
      const runtime = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] };
      const invoke = (command: string, plugin: Plugin, prevResult?: unknown) =>
        invokePlugin({
          binDir: bin,
          command,
          containerID: "wtkinstchain1",
          netns: netnsPath(POD),
          ifname: "eth0",
          inNetns: NODE,
          cniPath: `${bin}:/usr/lib/cni`,
          // libcni looks each type up in CNI_PATH: weft in the dir we installed to, portmap in Debian's.
          program: plugin.type === "weft" ? `${bin}/weft` : `/usr/lib/cni/${plugin.type}`,
          config: pluginConfig(list, plugin, runtime, prevResult),
        });

      let result: unknown;
      for (const plugin of list.plugins as Plugin[]) {
        const answer = await invoke("ADD", plugin, result);
        assert.equal(answer.code, 0, `${plugin.type} ADD: ${answer.stdout} ${answer.stderr}`);
        result = answer.json;
      }
      const podAddress = (result as { ips: { address: string }[] }).ips[0].address.split("/")[0];

      server = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          POD,
          Deno.execPath(),
          "eval",
          "Deno.serve({ hostname: '0.0.0.0', port: 80, onListen() {} }, () => new Response('weft pod'))",
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      // The node reaches the pod's port 80 through the hostPort on the node's own address.
      let reply = "";
      for (let i = 0; i < 100 && reply !== "weft pod"; i++) {
        const curl = await sh(["curl", "-s", "-m", "2", "http://10.32.0.1:8080/"], { netns: NODE });
        reply = curl.stdout;
        if (reply !== "weft pod") await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(reply, "weft pod", `hostPort 8080 did not reach ${podAddress}:80`);

      for (const plugin of [...list.plugins].reverse() as Plugin[]) {
        const answer = await invoke("DEL", plugin, result);
        assert.equal(answer.code, 0, `${plugin.type} DEL: ${answer.stdout} ${answer.stderr}`);
      }
      const nat = await must(["iptables", "-t", "nat", "-S"], { netns: NODE });
      assert.ok(!nat.includes("8080"), `portmap rules left after DEL:\n${nat}`);
      await uninstall({ cniBinDir: bin, cniConfDir: conf });
    } finally {
      try {
        server?.kill("SIGKILL");
        await server?.status;
      } catch { /* already gone */ }
      await agent?.stop();
      await sweep(PREFIX);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
