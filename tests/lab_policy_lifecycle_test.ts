/**
 * NetworkPolicy over a pod's and an agent's life, in a two-node lab on Kubernetes (the fake API):
 * - a pod created after its policy is protected from its first packet: probe loops run into and
 *   out of it from before its ADD, and its address reaches the API only a second later (a slow
 *   kubelet), and no forbidden packet ever gets through while allowed ones do;
 * - a pod the API does not know yet is held pending (everything dropped, and counted), then
 *   gets its real sets when it appears;
 * - its DEL takes its address out of every set and deletes its tracked connections;
 * - policies added, changed and removed are followed;
 * - denied connections are counted per policy in /metrics and logged (--policy-log-rate);
 * - the agent stopping leaves the table (nothing opens), a restart reconciles it with the API,
 *   `weft reset` removes it.
 */
import assert from "node:assert/strict";
import { formatIp, parseIp } from "../src/net/cidr.ts";
import type { NetworkPolicy } from "../src/policy/mod.ts";
import { sh, waitFor } from "./support/lab.ts";
import { PolicyLab, type PolicyPod, type ProbeTarget } from "./support/policy_lab.ts";

const guard: NetworkPolicy = {
  metadata: { namespace: "x", name: "guard" },
  spec: {
    podSelector: { matchLabels: { app: "new" } },
    policyTypes: ["Ingress", "Egress"],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: "friend" } } }] }],
    egress: [{ to: [{ podSelector: { matchLabels: { app: "friend" } } }] }],
  },
};

const both = (ip: string): ProbeTarget[] => [[ip, "tcp", 80], [ip, "udp", 80]];

/** TCP and UDP to port 80; a probe that fails is tried once more (a lost datagram is no denial). */
async function reach(from: PolicyPod, to: PolicyPod, timeoutMs = 1500): Promise<boolean[]> {
  const targets = both(to.lab.ip);
  const first = await from.probe.probe(targets, timeoutMs);
  const again = await from.probe.probe(targets.filter((_, i) => !first[i]), timeoutMs);
  return first.map((ok) => ok || again.shift()!);
}

async function tableOf(lab: PolicyLab, node: number) {
  return await sh(["nft", "-j", "list", "table", "inet", "weft-policy"], {
    netns: lab.lab.node(node).netns,
  });
}

Deno.test("NetworkPolicy over a pod's life and an agent's", async (t) => {
  await using lab = await PolicyLab.create({
    prefix: "wtpl",
    nodes: 2,
    datapath: "fastdp",
    agentArgs: ["--policy-log-rate", "20/s"],
  });
  await lab.addNamespace("x", { team: "x" });
  await lab.addNamespace("y", { team: "y" });
  const friend = await lab.addPod("x", "friend", { node: 1, labels: { app: "friend" } });
  const friend2 = await lab.addPod("x", "friend2", { node: 2, labels: { app: "friend" } });
  const other = await lab.addPod("x", "other", { node: 1, labels: { app: "other" } });
  const stranger = await lab.addPod("y", "stranger", { node: 2, labels: { app: "stranger" } });
  await lab.addPolicy(guard);
  await lab.waitEnforced([guard]);
  let fresh: PolicyPod;

  await t.step("a pod created after its policy is protected from its first packet", async () => {
    // next-fit: node1's next address follows the last one it handed out
    const allocations = (await lab.lab.api(1, "GET", "/ip")).json as {
      address: string;
      createdAt: string;
    }[];
    const last = allocations.sort((a, b) => a.createdAt.localeCompare(b.createdAt)).at(-1)!;
    const base = parseIp(last.address.split("/")[0]);
    const candidates = Array.from({ length: 8 }, (_, i) => formatIp(base + 1 + i));
    const spray = candidates.flatMap(both);
    const sprayers = [friend, friend2, other, stranger];
    const loops = await Promise.all(
      sprayers.map((p) => p.probe.startLoop(spray, { intervalMs: 0, timeoutMs: 60 })),
    );
    let outLoop = 0;
    fresh = await lab.addPod("x", "fresh", {
      node: 1,
      labels: { app: "new" },
      report: false,
      // before the ADD: the pod has no interface yet, its loop will send as soon as it can
      beforeAdd: async (probe) => {
        outLoop = await probe.startLoop(
          [friend, friend2, other, stranger].flatMap((p) => both(p.lab.ip)),
          { intervalMs: 0, timeoutMs: 60 },
        );
      },
    });
    // the kubelet reports the address late: other nodes learn it only then
    await new Promise((r) => setTimeout(r, 1000));
    await lab.reportAddress(fresh);
    await new Promise((r) => setTimeout(r, 1000));
    const out = await fresh.probe.stopLoop(outLoop);
    const sprayed = await Promise.all(sprayers.map((p, i) => p.probe.stopLoop(loops[i])));
    assert.ok(candidates.includes(fresh.lab.ip), `${fresh.lab.ip} not among ${candidates}`);

    // out of the new pod: to friends, never to the others
    const [toFriend, toFriendUdp, toFriend2, toFriend2Udp, ...forbidden] = out.successes;
    assert.ok(toFriend && toFriendUdp && toFriend2 && toFriend2Udp, JSON.stringify(out));
    assert.deepEqual(forbidden, [0, 0, 0, 0], JSON.stringify(out));
    for (const pod of [other, stranger]) {
      const seen = await pod.probe.seen();
      assert.ok(!seen.some((s) => s.endsWith(` ${fresh.lab.ip}`)), `${pod.key} saw ${seen}`);
    }
    // into the new pod: friends from both nodes got through, the others never did
    const at = candidates.indexOf(fresh.lab.ip) * 2;
    const into = sprayed.map((s) => s.successes.slice(at, at + 2));
    assert.ok(into[0][0] && into[0][1] && into[1][0] && into[1][1], JSON.stringify(into));
    assert.deepEqual(into.slice(2), [[0, 0], [0, 0]], JSON.stringify(into));
    const seen = await fresh.probe.seen();
    for (const pod of [other, stranger]) {
      assert.ok(!seen.some((s) => s.endsWith(` ${pod.lab.ip}`)), `fresh saw ${pod.key}: ${seen}`);
    }
    assert.ok(seen.some((s) => s.endsWith(` ${friend2.lab.ip}`)), `fresh saw ${seen}`);
  });

  await t.step("a pod the API does not know is pending, then gets its sets", async () => {
    const before = await lab.metrics(1);
    const late = await lab.addPod("x", "late", { node: 1, labels: { app: "new" }, inApi: false });
    const status = await lab.policyStatus(1);
    assert.equal(status.pods.find((p) => p.pod === "x/late")?.state, "pending");
    // as people see it
    const cli = await lab.lab.weft(1, ["status", "policy"]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^Enforcing: +yes, node node1$/m);
    assert.match(cli.stdout, /^x\/fresh +\S+ +enforced +x\/guard +x\/guard$/m);
    assert.match(cli.stdout, /^x\/late +\S+ +pending since /m);
    assert.match(cli.stdout, /^x\/friend +\S+ +enforced +open +open$/m);
    // everything dropped, even what its policy will allow
    assert.deepEqual(await reach(friend, late, 500), [false, false]);
    assert.deepEqual(await reach(late, friend, 500), [false, false]);
    const pending = (text: string) => Number(/direction="pending"} (\d+)/.exec(text)?.[1] ?? 0);
    assert.ok(pending(await lab.metrics(1)) > pending(before), await lab.metrics(1));
    await lab.createLatePod(late);
    await waitFor(
      "x/late in its sets",
      async () =>
        (await lab.policyStatus(1)).pods.find((p) => p.pod === "x/late")?.state === "enforced",
    );
    await lab.flushConntrack();
    assert.deepEqual(await reach(friend, late), [true, true]);
    assert.deepEqual(await reach(late, friend2), [true, true]);
    assert.deepEqual(await reach(stranger, late, 500), [false, false]);

    // its DEL: out of every set, its tracked connections gone
    const tracked = await sh(["conntrack", "-L", "-d", late.lab.ip], {
      netns: lab.lab.node(1).netns,
    });
    assert.match(tracked.stdout, new RegExp(`dst=${late.lab.ip.replaceAll(".", "\\.")}`));
    await lab.deletePod(late);
    const after = await sh(["conntrack", "-L", "-d", late.lab.ip], {
      netns: lab.lab.node(1).netns,
    });
    assert.equal(after.stdout.trim(), "", after.stdout);
    const table = await tableOf(lab, 1);
    assert.ok(!table.stdout.includes(`"${late.lab.ip}"`), `${late.lab.ip} still in the table`);
  });

  await t.step("policies changed and removed through the API are followed", async () => {
    await lab.flushConntrack();
    assert.deepEqual(await reach(stranger, fresh), [false, false]);
    const opened: NetworkPolicy = {
      ...guard,
      spec: {
        ...guard.spec,
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "y" } } }] }],
      },
    };
    await lab.replacePolicy(opened);
    await waitFor("y let in", async () => (await reach(stranger, fresh, 500)).every(Boolean));
    assert.deepEqual(await reach(friend, fresh, 500), [false, false], "friend no longer");
    await lab.replacePolicy(guard);
    await waitFor("y shut out again", async () => {
      await lab.flushConntrack();
      return (await reach(stranger, fresh, 500)).every((ok) => !ok);
    });
  });

  await t.step("denied connections are counted per policy and logged", async () => {
    const dropped = async () => {
      const text = await lab.metrics(1);
      const line =
        /weft_policy_dropped_packets_total\{namespace="x",policy="guard",direction="ingress"\} (\d+)/
          .exec(text);
      return Number(line?.[1] ?? -1);
    };
    const before = await dropped();
    assert.ok(before >= 0, await lab.metrics(1));
    // a lab node is a network namespace: the kernel logs from one only with this switch
    const LOG_ALL = "/proc/sys/net/netfilter/nf_log_all_netns";
    const was = (await Deno.readTextFile(LOG_ALL)).trim();
    await Deno.writeTextFile(LOG_ALL, "1");
    try {
      assert.deepEqual(await stranger.probe.probe(both(fresh.lab.ip), 500), [false, false]);
      const log = await sh(["dmesg"]);
      const lines = log.stdout.split("\n").filter((l) =>
        l.includes("weft-policy deny x/guard ingress: ") &&
        l.includes(`SRC=${stranger.lab.ip} DST=${fresh.lab.ip}`)
      );
      assert.ok(lines.some((l) => l.includes("PROTO=TCP")), log.stdout.slice(-2000));
      assert.ok(lines.some((l) => l.includes("PROTO=UDP")), log.stdout.slice(-2000));
    } finally {
      await Deno.writeTextFile(LOG_ALL, was);
    }
    assert.ok((await dropped()) >= before + 2, `${before} -> ${await dropped()}`);
  });

  await t.step(
    "a stopped agent leaves the table; a restart reconciles it; reset removes it",
    async () => {
      await lab.lab.stopAgent(1);
      assert.equal((await tableOf(lab, 1)).code, 0, "the table stays");
      await lab.deletePolicy("x", "guard"); // while node1's agent is down
      await new Promise((r) => setTimeout(r, 500));
      await lab.flushConntrack();
      assert.deepEqual(await reach(stranger, fresh, 500), [false, false], "nothing opened");
      assert.deepEqual(await reach(friend, fresh), [true, true]);
      await lab.lab.startAgent(1);
      await lab.waitSynced(1);
      await lab.waitEnforced([]);
      assert.deepEqual(await reach(stranger, fresh), [true, true], "reconciled: no policy");
      await lab.lab.stopAgent(1);
      const reset = await lab.lab.weft(1, [
        "reset",
        "--force",
        "--state-dir",
        lab.lab.node(1).stateDir,
      ]);
      assert.equal(reset.code, 0, reset.stderr);
      assert.match(reset.stdout, /NetworkPolicy table/);
      assert.notEqual((await tableOf(lab, 1)).code, 0, "the table is gone");
    },
  );
});
