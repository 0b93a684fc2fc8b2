import assert from "node:assert/strict";
import type { PeerBlob } from "./blob.ts";
import { diffFdb, fdbKey, FLOOD_MAC, planFdb, type PlannedPeer } from "./fdb_plan.ts";

function blob(ip: string, bridgeMac: string, macs: string[]): PeerBlob {
  return {
    v: 1,
    ip,
    vxlanPort: 6784,
    udpPort: 6783,
    vni: 1,
    bridgeMac,
    bridgeIp: "10.32.0.9",
    underlayMtu: 1500,
    endpoints: macs.map((mac, i) => ({ mac, ip: `10.32.1.${i}` })),
  };
}

const devices = { vxlan: "vx", tap: "tp", vxlanPort: 6784 };
const b2 = blob("192.168.0.2", "0a:58:00:00:00:02", ["0a:58:00:00:01:02"]);
const b3 = blob("192.168.0.3", "0a:58:00:00:00:03", ["0a:58:00:00:01:03", "0a:58:00:00:02:03"]);

function keys(peers: PlannedPeer[]): string[] {
  return planFdb(peers, devices).map(fdbKey).sort();
}

Deno.test("fast-path peer: bridge and VXLAN entries per MAC plus one flood entry", () => {
  const entries = planFdb([{ name: "n2", path: "fastdp", blob: b2 }], devices);
  assert.deepEqual(entries.map(fdbKey).sort(), [
    "00:00:00:00:00:00 vx self 192.168.0.2 ",
    "0a:58:00:00:00:02 vx master  ",
    "0a:58:00:00:00:02 vx self 192.168.0.2 ",
    "0a:58:00:00:01:02 vx master  ",
    "0a:58:00:00:01:02 vx self 192.168.0.2 ",
  ]);
  assert.equal(entries.filter((e) => e.mac === FLOOD_MAC).length, 1);
});

Deno.test("sleeve and relay peers point the bridge at the TAP, down peers get nothing", () => {
  assert.deepEqual(keys([{ name: "n3", path: "relay", blob: b3 }]), [
    "0a:58:00:00:00:03 tp master  ",
    "0a:58:00:00:01:03 tp master  ",
    "0a:58:00:00:02:03 tp master  ",
  ]);
  assert.deepEqual(keys([{ name: "n3", path: "down", blob: b3 }]), []);
});

Deno.test("a peer on another VXLAN port gets explicit ports", () => {
  const other = { ...b2, vxlanPort: 4789 };
  const entries = planFdb([{ name: "n2", path: "fastdp", blob: other }], devices);
  assert.ok(entries.filter((e) => !e.master).every((e) => e.port === 4789));
});

Deno.test("diff removes everything of a removed pod, peer, or old path", () => {
  const before = planFdb([
    { name: "n2", path: "fastdp", blob: b2 },
    { name: "n3", path: "fastdp", blob: b3 },
  ], devices);
  const podGone = { ...b3, endpoints: b3.endpoints.slice(0, 1) };
  const after = planFdb([
    { name: "n2", path: "sleeve", blob: b2 },
    { name: "n3", path: "fastdp", blob: podGone },
  ], devices);
  const { remove, add } = diffFdb(before, after);
  const removed = remove.map(fdbKey);
  assert.ok(removed.includes("0a:58:00:00:02:03 vx master  "));
  assert.ok(removed.includes("0a:58:00:00:02:03 vx self 192.168.0.3 "));
  assert.ok(removed.includes("00:00:00:00:00:00 vx self 192.168.0.2 "));
  assert.ok(add.map(fdbKey).includes("0a:58:00:00:01:02 tp master  "));
  const gone = diffFdb(after, planFdb([], devices));
  assert.equal(gone.add.length, 0);
  assert.equal(gone.remove.length, after.length);
  assert.deepEqual(diffFdb(after, after), { remove: [], add: [] });
});
