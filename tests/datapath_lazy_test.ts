/**
 * The userspace path's threads run only while it has work: two nodes on VXLAN run none (and
 * keep the TAP down); filtering VXLAN moves the pair to the sleeve, which starts them and
 * brings the TAP up; when VXLAN is back they stop after their idle time. Pod traffic flows in
 * every phase. Namespaces: `wtdl`.
 */
import assert from "node:assert/strict";
import { type Lab, labTest, ping } from "./support/datapath_lab.ts";

async function tapState(lab: Lab, node: number): Promise<string> {
  const out = await lab.exec(lab.nodes[node - 1].name, ["ip", "-j", "link", "show", "weft-sleeve"]);
  return JSON.parse(out.stdout)[0].operstate;
}

/** Pods talk (retried: right after a switch the first frames wait for the threads to load). */
async function assertPods(lab: Lab): Promise<void> {
  const reply = await lab.waitFor(
    () => ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) }),
    (r) => r.received === 3,
    15,
  );
  assert.equal(reply.received, 3, reply.output);
}

labTest(
  "userspace threads run only while a peer needs the userspace path",
  { prefix: "wtdl", nodes: 2 },
  async (lab, t) => {
    await lab.startNodes({ mode: "auto", sleeveIdleMs: 1500 });
    await lab.introduce();

    await t.step("on VXLAN: no threads, the TAP is down, pods talk", async () => {
      await lab.waitPath(1, 2, "fastdp");
      await lab.waitPath(2, 1, "fastdp");
      await assertPods(lab);
      for (const node of [1, 2]) {
        assert.equal(await lab.nodes[node - 1].threads(), false, `node${node} threads`);
        assert.equal(await tapState(lab, node), "DOWN");
      }
    });

    await t.step("VXLAN filtered: the sleeve's threads start and carry the pods", async () => {
      await lab.filterUnderlay(1, 2, { port: 6784 });
      await lab.waitPath(1, 2, "sleeve");
      await lab.waitPath(2, 1, "sleeve");
      assert.equal(await lab.nodes[0].threads(), true);
      assert.notEqual(await tapState(lab, 1), "DOWN");
      await assertPods(lab);
      const moved = await lab.waitFor(
        async () => (await lab.nodes[0].counters()).framesToTap,
        (n) => n > 0,
      );
      assert.ok(moved > 0, "frames came in over the sleeve");
    });

    await t.step("VXLAN back: the threads stop after their idle time", async () => {
      await lab.filterUnderlay(1, 2, { port: 6784, remove: true });
      await lab.waitPath(1, 2, "fastdp");
      const stopped = await lab.waitFor(() => lab.nodes[0].threads(), (running) => !running);
      assert.equal(stopped, false);
      assert.equal(await tapState(lab, 1), "DOWN");
      await assertPods(lab);
      assert.match(lab.nodes[0].log, /userspace path idle for 1.5s: stopping its threads/);
    });
  },
);
