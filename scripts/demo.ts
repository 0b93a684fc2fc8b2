/**
 * `make demo`: a three-node weft cluster in network namespaces on this machine. Each node runs
 * the agent from the bundled artifact; pods are attached by the CNI plugin as a runtime would;
 * then pods ping each other within and across nodes, and the CLI shows what it sees. Everything
 * is removed at the end, also on failure or Ctrl-C. Nothing leaves the lab's namespaces.
 */
import { Lab } from "../tests/support/lab.ts";

const nodes = Number(Deno.args.find((a) => a.startsWith("--nodes="))?.split("=")[1] ?? 3);

function say(text: string) {
  console.log(`\n\x1b[1m== ${text}\x1b[0m`);
}

async function show(lab: Lab, node: number, args: string[]) {
  console.log(`\n$ weft ${args.join(" ")}        # on node${node}`);
  const result = await lab.weft(node, args);
  console.log((result.stdout + result.stderr).trimEnd());
}

say(`building the artifact and a ${nodes}-node lab (namespaces wdemo-*)`);
const lab = await Lab.create({
  nodes,
  prefix: "wdemo",
  password: "demo-secret",
  agentArgs: nodes > 1 ? ["--ipalloc-init", `consensus=${nodes}`] : [],
  start: false,
});
const cleanup = async () => {
  say("cleaning up");
  await lab.destroy();
  console.log("removed every namespace, agent and file the demo made");
};
Deno.addSignalListener("SIGINT", () => cleanup().then(() => Deno.exit(130)));

let failed = false;
try {
  await Promise.all(lab.nodes.map((n) => lab.startAgent(n.index)));
  console.log(
    `agents up on ${lab.nodes.map((n) => `node${n.index} (${n.underlayIp})`).join(", ")}`,
  );

  say("attaching pods with the CNI plugin");
  const pods = [];
  for (let node = 1; node <= nodes; node++) {
    for (const name of nodes > 1 ? ["a", "b"] : ["a", "b", "c"]) {
      const pod = await lab.addPod(node, name);
      pods.push(pod);
      console.log(`node${node}/${name}: ${pod.ip} (${pod.netns})`);
    }
  }

  say("pinging between pods");
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      const ok = await lab.ping(from, to.ip, { count: 1, timeout: 3 });
      const where = from.node === to.node ? "same node " : "cross-node";
      console.log(
        `${where}  node${from.node}/${from.name} -> node${to.node}/${to.name} ${to.ip}: ${
          ok ? "ok" : "FAILED"
        }`,
      );
      if (!ok) failed = true;
    }
  }

  say("what the CLI shows");
  await show(lab, 1, ["status"]);
  if (nodes > 1) {
    await show(lab, 1, ["status", "peers"]);
    await show(lab, 1, ["status", "connections"]);
  }
  await show(lab, 1, ["status", "ipam"]);
  await show(lab, 1, ["ps"]);
} catch (error) {
  failed = true;
  console.error(`demo failed: ${(error as Error).message}`);
  for (const node of lab.nodes) {
    console.error(`--- node${node.index} agent log ---\n${await lab.log(node.index)}`);
  }
} finally {
  await cleanup();
}
Deno.exit(failed ? 1 : 0);
