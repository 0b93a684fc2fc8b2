import assert from "node:assert/strict";
import { parseCidr } from "../net/cidr.ts";
import { redact } from "./redact.ts";

const podRange = parseCidr("10.32.0.0/12");

Deno.test("redact replaces identifying values everywhere, consistently, and keeps weft's own", () => {
  const document = {
    status: { peerName: "02:1a:b0:00:00:01", nickname: "db-host-7" },
    peers: [
      { name: "02:1a:b0:00:00:02", nickname: "web-3", address: "192.168.77.12:6783" },
    ],
    ring: { seen: { "02:1a:b0:00:00:02": 4 } },
    allocations: [{
      containerID: "acme-payroll-5f7c",
      address: "10.32.0.5/12",
      mac: "0a:58:0a:20:00:05",
    }],
    kernel: {
      links: [{ ifname: "eth0", address: "52:54:00:12:34:56", broadcast: "ff:ff:ff:ff:ff:ff" }],
      addresses: ["192.168.77.11/24", "127.0.0.1/8", "fe80::5054:ff:fe12:3456/64", "::1/128"],
      fdb: [{ mac: "0a:58:0a:20:00:09", dst: "192.168.77.12" }, { mac: "01:00:5e:00:00:01" }],
    },
    logs: [
      "mesh: connected to 02:1a:b0:00:00:02 (web-3) at 192.168.77.12:6783",
      "kubernetes: Node web-3 deleted; web-30 is another node",
      "loaded /home/alice/kubeconfig at 12:30:05; version 1.2.3.4000",
      "dns 2001:db8::1 on db-host-7.corp.example",
    ],
  };
  const out = redact(document, {
    podRange,
    known: [
      { kind: "peer", value: "02:1a:b0:00:00:01" },
      { kind: "peer", value: "02:1a:b0:00:00:02" },
      { kind: "node", value: "db-host-7" },
      { kind: "node", value: "web-3" },
      { kind: "container", value: "acme-payroll-5f7c" },
      { kind: "path", value: "/home/alice/kubeconfig" },
    ],
  });
  const text = JSON.stringify(out);
  for (
    const secret of [
      "02:1a:b0",
      "db-host-7",
      'web-3"',
      "web-3)",
      "192.168.77",
      "acme-payroll",
      "alice",
      "52:54:00",
      "fe80::",
      "2001:db8",
    ]
  ) {
    assert.ok(!text.includes(secret), `${secret} left in ${text}`);
  }
  // the same value, the same placeholder, wherever it appears (keys too)
  assert.equal(out.peers[0].name, "peer-2");
  assert.deepEqual(Object.keys(out.ring.seen), ["peer-2"]);
  assert.equal(out.logs[0], "mesh: connected to peer-2 (node-2) at ip-1:6783");
  assert.equal(out.peers[0].address, "ip-1:6783");
  // whole names only: web-30 is not web-3
  assert.equal(out.logs[1], "kubernetes: Node node-2 deleted; web-30 is another node");
  // weft's own addresses and MACs, loopback, broadcast, multicast, times and versions stay
  assert.deepEqual(out.allocations[0], {
    containerID: "container-1",
    address: "10.32.0.5/12",
    mac: "0a:58:0a:20:00:05",
  });
  assert.equal(out.kernel.links[0].broadcast, "ff:ff:ff:ff:ff:ff");
  assert.equal(out.kernel.addresses[1], "127.0.0.1/8");
  assert.equal(out.kernel.addresses[3], "::1/128");
  assert.equal(out.kernel.fdb[0].mac, "0a:58:0a:20:00:09");
  assert.equal(out.kernel.fdb[1].mac, "01:00:5e:00:00:01");
  assert.match(out.logs[2], /^loaded path-1 at 12:30:05; version 1\.2\.3\.4000$/);
  assert.equal(out.logs[3], "dns ip6-2 on node-1.corp.example");
  assert.equal(out.kernel.addresses[0], "ip-2/24");
});
