import assert from "node:assert/strict";
import { ConfigError, parseApiAddr, parseDuration, resolveAgentConfig } from "./config.ts";
import { formatCidr } from "../net/cidr.ts";

Deno.test("defaults match Weave Net's", async () => {
  const config = await resolveAgentConfig({}, {});
  assert.equal(config.bridge, "weave");
  assert.equal(formatCidr(config.ipallocRange), "10.32.0.0/12");
  assert.deepEqual(config.apiAddr, { hostname: "127.0.0.1", port: 6784 });
  assert.equal(config.port, 6783);
  assert.equal(config.vxlanPort, 6784);
  assert.equal(config.connLimit, 200);
  assert.equal(config.stateDir, "/var/lib/weft");
  assert.equal(config.mtu, undefined);
});

Deno.test("Weave Net's environment names configure weft", async () => {
  const config = await resolveAgentConfig({}, {
    IPALLOC_RANGE: "10.100.0.0/16",
    WEAVE_PASSWORD: "s3cret",
    WEAVE_MTU: "8916",
    CONN_LIMIT: "30",
  });
  assert.equal(formatCidr(config.ipallocRange), "10.100.0.0/16");
  assert.equal(config.password, "s3cret");
  assert.equal(config.mtu, 8916);
  assert.equal(config.connLimit, 30);
});

Deno.test("flags win over environment, WEFT_ names over WEAVE_ names", async () => {
  const config = await resolveAgentConfig({ ipallocRange: "10.0.0.0/16", mtu: "1400" }, {
    IPALLOC_RANGE: "10.100.0.0/16",
    WEFT_MTU: "1300",
    WEAVE_MTU: "1200",
    WEFT_PASSWORD: "a",
    WEAVE_PASSWORD: "b",
  });
  assert.equal(formatCidr(config.ipallocRange), "10.0.0.0/16");
  assert.equal(config.mtu, 1400);
  assert.equal(config.password, "a");
  assert.equal((await resolveAgentConfig({}, { WEFT_MTU: "1300", WEAVE_MTU: "1200" })).mtu, 1300);
});

Deno.test("bad values are refused with a message naming them", async () => {
  const cases: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
    [{ ipallocRange: "10.32.0.1/12" }, {}, /ipalloc-range.*10\.32\.0\.1\/12/],
    [{}, { IPALLOC_RANGE: "banana" }, /banana/],
    [{ mtu: "70000" }, {}, /MTU.*70000/],
    [{ bridge: "a-bridge-name-too-long" }, {}, /a-bridge-name-too-long/],
    [{ apiAddr: "0.0.0.0:6784" }, {}, /loopback only/],
    [{ connLimit: "-1" }, {}, /-1/],
    [{ datapath: "warp" }, {}, /warp/],
    [{ ipallocInit: "paxos" }, {}, /paxos/],
    [{ ipallocInit: "consensus=0" }, {}, /consensus=0/],
    [{ passwordFile: "/nonexistent/weft-password" }, {}, /nonexistent/],
    [{ tlsCert: "cert.pem" }, {}, /go together/],
    [
      { tlsCert: "/nonexistent/c.pem", tlsKey: "/nonexistent/k.pem" },
      {},
      /--tls-cert.*nonexistent/,
    ],
  ];
  for (const [flags, env, message] of cases) {
    await assert.rejects(
      resolveAgentConfig(flags, env),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
    );
  }
});

Deno.test("the password file is read and trimmed", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, "from-file\n");
    const config = await resolveAgentConfig({ passwordFile: file }, { WEFT_PASSWORD: "env" });
    assert.equal(config.password, "from-file");
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("API addresses must be loopback", () => {
  assert.deepEqual(parseApiAddr("127.0.0.2:7000"), { hostname: "127.0.0.2", port: 7000 });
  assert.deepEqual(parseApiAddr("[::1]:6784"), { hostname: "::1", port: 6784 });
  assert.throws(() => parseApiAddr("10.0.0.1:6784"), /loopback/);
  assert.throws(() => parseApiAddr("localhost"), /host:port/);
});

Deno.test("the first split defaults to consensus among this peer and its --peers", async () => {
  assert.deepEqual((await resolveAgentConfig({}, {})).ipallocInit, { mode: "consensus", peers: 1 });
  assert.deepEqual(
    (await resolveAgentConfig({ peers: "10.0.0.2,10.0.0.3:6783" }, {})).ipallocInit,
    { mode: "consensus", peers: 3 },
  );
  assert.deepEqual(
    (await resolveAgentConfig({ peers: "10.0.0.2,10.0.0.2:6783,10.0.0.3" }, {})).ipallocInit,
    { mode: "consensus", peers: 3 },
    "a peer named twice counts once",
  );
  assert.deepEqual(
    (await resolveAgentConfig({}, { IPALLOC_INIT: "seed=a,b" })).ipallocInit,
    { mode: "seed", seeds: ["a", "b"] },
  );
  // on Kubernetes the Node list decides, unless told
  const kube = await resolveAgentConfig({}, {
    KUBERNETES_SERVICE_HOST: "10.96.0.1",
    NODE_NAME: "n1",
  });
  assert.equal(kube.kubernetes, true);
  assert.equal(kube.ipallocInit, undefined);
});

Deno.test("durations", () => {
  assert.equal(parseDuration("90s", "x"), 90_000);
  assert.equal(parseDuration("2h", "x"), 7_200_000);
  assert.throws(() => parseDuration("soon", "--ipam-reclaim-after"), /--ipam-reclaim-after "soon"/);
});

Deno.test("the same --peers on every node gives every node the same quorum (itself left out)", async () => {
  const peers = "192.168.1.11,192.168.1.12,192.168.1.13";
  for (const self of ["192.168.1.11", "192.168.1.12", "192.168.1.13"]) {
    const config = await resolveAgentConfig({ peers }, {}, {
      hostAddresses: ["127.0.0.1", self, "10.32.0.1"],
    });
    assert.deepEqual(config.ipallocInit, { mode: "consensus", peers: 3 }, self);
    // the list itself is kept: the mesh skips its own entry when dialling
    assert.equal(config.peers.length, 3);
  }
  // another port on this host is another peer (two agents on one machine, as in tests)
  const other = await resolveAgentConfig({ peers: "192.168.1.11:7000" }, {}, {
    hostAddresses: ["192.168.1.11"],
  });
  assert.deepEqual(other.ipallocInit, { mode: "consensus", peers: 2 });
  const moved = await resolveAgentConfig({ peers: "192.168.1.11:7000", port: "7000" }, {}, {
    hostAddresses: ["192.168.1.11"],
  });
  assert.deepEqual(moved.ipallocInit, { mode: "consensus", peers: 1 });
  await assert.rejects(
    resolveAgentConfig({ peers: "10.0.0.2,bad!" }, {}),
    /Invalid --peers.*"bad!"/,
  );
});

Deno.test("NetworkPolicy: on by default, off by flag or environment, a deny-log rate", async () => {
  const on = await resolveAgentConfig({}, {});
  assert.equal(on.networkPolicy, true);
  assert.equal(on.policyLogRate, undefined);
  assert.equal((await resolveAgentConfig({ networkPolicy: false }, {})).networkPolicy, false);
  const envOff = await resolveAgentConfig({}, { WEFT_NETWORK_POLICY: "false" });
  assert.equal(envOff.networkPolicy, false);
  // commander gives `true` when --no-network-policy is absent: the environment still counts
  const both = await resolveAgentConfig({ networkPolicy: true }, { WEFT_NETWORK_POLICY: "off" });
  assert.equal(both.networkPolicy, false);
  await assert.rejects(
    resolveAgentConfig({}, { WEFT_NETWORK_POLICY: "maybe" }),
    /Invalid WEFT_NETWORK_POLICY "maybe"/,
  );
  assert.equal((await resolveAgentConfig({ policyLogRate: "5/s" }, {})).policyLogRate, 5);
  const fromEnv = await resolveAgentConfig({}, { WEFT_POLICY_LOG_RATE: "20" });
  assert.equal(fromEnv.policyLogRate, 20);
  assert.equal((await resolveAgentConfig({ policyLogRate: "0" }, {})).policyLogRate, undefined);
  await assert.rejects(
    resolveAgentConfig({ policyLogRate: "fast" }, {}),
    /Invalid --policy-log-rate\/WEFT_POLICY_LOG_RATE "fast"/,
  );
});
