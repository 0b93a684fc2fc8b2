/**
 * The deleted Node reclaim, against a fake IPAM and mesh view, with simulated time: when it
 * waits, when it removes, and when it decides there is nothing to do.
 */
import assert from "node:assert/strict";
import { DeletedNodeReclaimer, type ReclaimIpam, type ReclaimPeer } from "./reclaim.ts";

class FakeIpam implements ReclaimIpam {
  ready = true;
  ring: Array<{ name: string; removed?: boolean }> = [];
  removed: string[] = [];
  fail: Error | undefined;
  status() {
    return { ready: this.ready, peers: this.ring };
  }
  rmpeer(name: string) {
    if (this.fail) throw this.fail;
    const entry = this.ring.find((p) => p.name === name);
    // as ClusterIpam does
    if (!entry) throw new RangeError(`Cannot rmpeer "${name}": no such peer in the IPAM ring`);
    this.removed.push(name);
    entry.removed = true;
    return { peer: name, gen: 1, addresses: 1024 };
  }
}

/** A reclaimer whose sleeps advance a simulated clock and let the test change the world. */
function setup(world: { ipam?: FakeIpam; peers: ReclaimPeer[] }) {
  let now = 0;
  const log: string[] = [];
  const ticks: Array<() => void> = [];
  const controller = new AbortController();
  const reclaimer = new DeletedNodeReclaimer({
    ipam: () => world.ipam,
    peers: () => world.peers,
    signal: controller.signal,
    log: (line) => log.push(line),
    now: () => now,
    pollMs: 1000,
    sleep: (ms) => {
      now += ms;
      for (const tick of ticks) tick();
      return Promise.resolve();
    },
  });
  return { reclaimer, log, ticks, controller, now: () => now };
}

const peer = (name: string, nickname: string, reachable: boolean): ReclaimPeer => ({
  name,
  nickname,
  reachable,
});

Deno.test("a deleted Node whose peer stays reachable is never removed while it is; then it is", async () => {
  const ipam = new FakeIpam();
  ipam.ring = [{ name: "aa:01" }, { name: "aa:02" }];
  const world = { ipam, peers: [peer("aa:01", "node1", true), peer("aa:02", "node2", true)] };
  const { reclaimer, ticks, now } = setup(world);
  let seen: string[] = [];
  ticks.push(() => {
    // ten minutes of a peer that is really alive (the machine runs on, only the Node went)
    if (now() === 600_000) {
      seen = reclaimer.diagnostics().map((d) => `${d.code}: ${d.message}`);
      world.peers[1].reachable = false;
    }
  });
  await reclaimer.reclaim("node2");
  assert.deepEqual(ipam.removed, ["aa:02"], "removed once, after it became unreachable");
  assert.equal(seen.length, 1, seen.join("\n"));
  assert.match(seen[0], /^reclaim-waiting: .*node2.*aa:02 is still reachable.*\(for 600 s\)/);
  assert.deepEqual(reclaimer.diagnostics(), [], "nothing waits any more");
});

Deno.test("a reclaim that arrives before the IPAM is open waits for it", async () => {
  const world: { ipam?: FakeIpam; peers: ReclaimPeer[] } = {
    peers: [peer("aa:02", "node2", false)],
  };
  const { reclaimer, ticks, now } = setup(world);
  ticks.push(() => {
    if (now() === 5000) {
      world.ipam = new FakeIpam();
      world.ipam.ring = [{ name: "aa:02" }];
    }
  });
  await reclaimer.reclaim("node2");
  assert.deepEqual(world.ipam!.removed, ["aa:02"]);
});

Deno.test("a reclaim that arrives before the IPAM has heard the ring waits for the ring", async () => {
  const ipam = new FakeIpam();
  ipam.ready = false; // restarted: the ring comes from the peers, not yet
  const { reclaimer, ticks, now } = setup({ ipam, peers: [peer("aa:02", "node2", false)] });
  ticks.push(() => {
    if (now() === 3000) {
      ipam.ready = true;
      ipam.ring = [{ name: "aa:01" }, { name: "aa:02" }];
    }
  });
  await reclaimer.reclaim("node2");
  assert.deepEqual(ipam.removed, ["aa:02"]);
});

Deno.test("nothing is reclaimed when there is nothing to reclaim or the Node is back", async () => {
  const ipam = new FakeIpam();
  ipam.ring = [{ name: "aa:01" }, { name: "aa:03", removed: true }];
  const peers = [peer("aa:02", "never-owned", false), peer("aa:03", "gone", false)];
  const { reclaimer, log } = setup({ ipam, peers });
  await reclaimer.reclaim("never-owned"); // a peer that never owned space
  await reclaimer.reclaim("unknown"); // a Node that never ran weft
  await reclaimer.reclaim("gone"); // reclaimed already (by another node's rmpeer)
  ipam.ring.push({ name: "aa:02" });
  await reclaimer.reclaim("never-owned", { nodeExists: () => true }); // re-created meanwhile
  assert.deepEqual(ipam.removed, []);
  assert.ok(log.some((line) => /Node never-owned exists again/.test(line)), log.join("\n"));
});

Deno.test("a failing removal is thrown to the caller, which retries it", async () => {
  const ipam = new FakeIpam();
  ipam.ring = [{ name: "aa:02" }];
  ipam.fail = new Error("database is locked");
  const { reclaimer } = setup({ ipam, peers: [peer("aa:02", "node2", false)] });
  await assert.rejects(reclaimer.reclaim("node2"), /database is locked/);
  assert.deepEqual(reclaimer.diagnostics(), []);
  ipam.fail = undefined;
  await reclaimer.reclaim("node2");
  assert.deepEqual(ipam.removed, ["aa:02"]);
});

Deno.test("stopping the agent ends a wait", async () => {
  const ipam = new FakeIpam();
  ipam.ring = [{ name: "aa:02" }];
  const { reclaimer, ticks, controller, now } = setup({
    ipam,
    peers: [peer("aa:02", "node2", true)],
  });
  ticks.push(() => now() === 10_000 && controller.abort());
  await reclaimer.reclaim("node2");
  assert.deepEqual(ipam.removed, []);
});
