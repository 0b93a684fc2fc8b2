/**
 * The mesh between real agents in a lab of node namespaces: convergence with a password,
 * refusal of peers that cannot prove it, failure detection and recovery, partitions, forget,
 * identity keys kept across restarts and a replaced key refused with a diagnostic.
 */
import assert from "node:assert/strict";
import { Lab, waitFor } from "./support/lab.ts";
import { makeTestCertificates } from "./support/tls.ts";

interface Peer {
  name: string;
  nickname: string;
  reachable: boolean;
  self: boolean;
}
interface Connection {
  address: string;
  peer?: string;
  direction: "inbound" | "outbound";
  state: string;
  lastError?: string;
}

async function peers(lab: Lab, node: number): Promise<Peer[]> {
  const result = await lab.api(node, "GET", "/status/peers");
  return (result.json ?? []) as Peer[];
}

interface Problem {
  code: string;
  message: string;
  fix: string;
}

async function statusProblems(lab: Lab, node: number): Promise<Problem[]> {
  const status = await lab.api(node, "GET", "/status");
  return ((status.json as { problems?: Problem[] })?.problems ?? []);
}

async function connections(lab: Lab, node: number): Promise<Connection[]> {
  return ((await lab.api(node, "GET", "/status/connections")).json ?? []) as Connection[];
}

function reachableNicknames(list: Peer[]): string[] {
  return list.filter((p) => p.reachable).map((p) => p.nickname).sort();
}

async function converged(lab: Lab, nodes: number[]): Promise<boolean> {
  const want = nodes.map((n) => `node${n}`).sort();
  for (const node of nodes) {
    if (JSON.stringify(reachableNicknames(await peers(lab, node))) !== JSON.stringify(want)) {
      return false;
    }
    const established = (await connections(lab, node)).filter((c) => c.state === "established");
    if (established.length < nodes.length - 1) return false;
  }
  return true;
}

Deno.test("three agents with a password converge; failures are noticed and healed", async () => {
  const lab = await Lab.create({
    nodes: 3,
    prefix: "wtlm",
    password: "lab-secret",
    agentArgs: ["--datapath", "none"],
  });
  try {
    await waitFor("the mesh to converge", () => converged(lab, [1, 2, 3]));

    // the CLI shows the same
    const table = await lab.weft(1, ["status", "peers"]);
    for (const n of [1, 2, 3]) assert.match(table.stdout, new RegExp(`node${n}`));

    // kill node3: the others mark it unreachable within the heartbeat bound (4 s dead-after,
    // waited for up to 10 s here: a bound, not a benchmark)
    await lab.stopAgent(3, "SIGKILL");
    await waitFor("node3 to be marked down", async () => {
      for (const node of [1, 2]) {
        const node3 = (await peers(lab, node)).find((p) => p.nickname === "node3");
        if (node3?.reachable) return false;
      }
      return true;
    }, { timeoutMs: 10_000 });

    // restart: accepted back, with a new incarnation
    await lab.startAgent(3);
    await waitFor("the mesh to converge after node3's restart", () => converged(lab, [1, 2, 3]));

    // partition {1} | {2,3}, then heal
    await lab.partition([1], [2, 3]);
    await waitFor(
      "node1 to see the others down",
      async () => reachableNicknames(await peers(lab, 1)).join() === "node1",
      { timeoutMs: 15_000 },
    );
    // each side notices on its own heartbeat clock
    await waitFor(
      "node2 to see node1 down and node3 still up",
      async () => reachableNicknames(await peers(lab, 2)).join() === "node2,node3",
      { timeoutMs: 15_000 },
    );
    await lab.heal();
    await waitFor("the partition to heal", () => converged(lab, [1, 2, 3]), { timeoutMs: 90_000 });

    // the mesh identity is kept in the state dir, private; the restart above kept node3's key,
    // so nobody reports a mismatch
    const state = lab.node(1).stateDir;
    for (const file of ["identity.key", "known-peers"]) {
      assert.equal((await Deno.stat(`${state}/${file}`)).mode! & 0o777, 0o600, file);
    }
    const known = JSON.parse(await Deno.readTextFile(`${state}/known-peers`)).peers;
    for (const n of [1, 2, 3]) assert.ok(lab.node(n).peerName in known, `node${n} is bound`);
    for (const node of [1, 2]) {
      const problems = await statusProblems(lab, node);
      assert.ok(!problems.some((p) => p.code === "key-mismatch"), JSON.stringify(problems));
    }

    // metrics expose the connections
    const metrics = (await lab.api(1, "GET", "/metrics")).text;
    assert.match(metrics, /^weft_connections\{state="established"\} [1-9]/m);
    assert.match(metrics, /^weft_gossip_bytes_sent_total [1-9]/m);
  } finally {
    await lab.destroy();
  }
});

Deno.test("a node whose identity key was replaced is refused, and the others say why", async () => {
  const lab = await Lab.create({
    nodes: 2,
    prefix: "wtlk",
    password: "lab-secret",
    agentArgs: ["--datapath", "none"],
  });
  try {
    await waitFor("the mesh to converge", () => converged(lab, [1, 2]));
    // node2 keeps its name (--name) but loses its identity key, as after a careless reinstall
    await lab.stopAgent(2);
    await Deno.remove(`${lab.node(2).stateDir}/identity.key`);
    await lab.startAgent(2, { wait: "serving" });
    await waitFor("node1 to report the key mismatch", async () => {
      const problems = await statusProblems(lab, 1);
      return problems.some((p) =>
        p.code === "key-mismatch" && p.message.includes(lab.node(2).peerName) &&
        /weft peer rebind/.test(p.fix)
      );
    }, { timeoutMs: 20_000 });
    assert.equal(
      (await peers(lab, 1)).find((p) => p.nickname === "node2")?.reachable,
      false,
      "the new key does not speak for node2",
    );
  } finally {
    await lab.destroy();
  }
});

Deno.test("a peer with a wrong password or none is refused and learns nothing", async () => {
  const lab = await Lab.create({
    nodes: 3,
    prefix: "wtlp",
    password: "right",
    start: false,
    agentArgs: ["--datapath", "none"],
  });
  try {
    // the IPAM waits for all three initial peers, so "serving" is as ready as they get here
    await lab.startAgent(1, { wait: "serving" });
    await lab.startAgent(2, { wait: "serving" });
    await waitFor("nodes 1 and 2 to converge", () => converged(lab, [1, 2]));
    // node3 with the wrong password, then with none
    for (const password of ["wrong", undefined]) {
      lab.options.password = password;
      await lab.startAgent(3, { wait: "serving" });
      await new Promise((r) => setTimeout(r, 3000));
      const seen = await peers(lab, 3);
      assert.deepEqual(
        seen.map((p) => p.nickname),
        ["node3"],
        `node3 (${password}) learnt ${JSON.stringify(seen)}`,
      );
      for (const node of [1, 2]) {
        assert.ok(!(await peers(lab, node)).some((p) => p.nickname === "node3"));
      }
      await lab.stopAgent(3);
      lab.options.password = "right";
    }
  } finally {
    await lab.destroy();
  }
});

Deno.test("forget stops reconnection; connect brings the peer back", async () => {
  const lab = await Lab.create({
    nodes: 2,
    prefix: "wtlf",
    agentArgs: ["--no-discovery", "--datapath", "none"],
  });
  try {
    await waitFor("the mesh to converge", () => converged(lab, [1, 2]));
    const node1 = lab.node(1).underlayIp;
    const node2 = lab.node(2).underlayIp;
    // both sides forget each other (as Weave Net's forget: no more attempts; a live
    // connection is not cut, so an operator can forget before taking a node away)
    assert.equal((await lab.weft(1, ["forget", node2])).code, 0);
    assert.equal((await lab.weft(2, ["forget", node1])).code, 0);
    assert.deepEqual((await lab.api(1, "GET", "/status/targets")).json, []);
    assert.deepEqual((await lab.api(2, "GET", "/status/targets")).json, []);

    // node2 restarts: nobody dials anybody any more
    lab.options.peers = false;
    await lab.stopAgent(2);
    // its IPAM must hear from a live peer before it is ready again: serving is enough here
    await lab.startAgent(2, { wait: "serving" });
    await new Promise((r) => setTimeout(r, 5000));
    for (const node of [1, 2]) {
      const list = await connections(lab, node);
      assert.ok(list.every((c) => c.state !== "established"), JSON.stringify(list));
    }

    const connect = await lab.weft(1, ["connect", node2]);
    assert.equal(connect.code, 0, connect.stderr);
    await waitFor("the peers to reconnect", () => converged(lab, [1, 2]));

    // bad input to the API gets a 400 naming it
    const bad = await lab.api(1, "POST", "/connect?peer=no%20such%20host");
    assert.equal(bad.code, 400);
    assert.match((bad.json as { error: string }).error, /no such host/);
  } finally {
    await lab.destroy();
  }
});

Deno.test("TLS: agents given --tls-cert/--tls-key/--tls-ca converge; one without the CA is refused", async () => {
  const lab = await Lab.create({ nodes: 2, prefix: "wtlt", start: false });
  try {
    const certs = await makeTestCertificates(lab.workDir, lab.nodes.map((n) => n.underlayIp));
    const tls = ["--tls-cert", certs.certFile, "--tls-key", certs.keyFile, "--datapath", "none"];
    lab.node(1).extraArgs = [...tls, "--tls-ca", certs.caFile];
    lab.node(2).extraArgs = tls; // cannot verify node1's certificate
    await lab.startAgent(1, { wait: "serving" });
    await lab.startAgent(2, { wait: "serving" });
    // node1 dials node2 and verifies it: one connection is enough for the mesh to form
    await waitFor(
      "the TLS mesh to converge",
      async () => reachableNicknames(await peers(lab, 1)).join() === "node1,node2",
    );
    // node2 keeps dialling node1 (it is in its --peers) and keeps failing verification
    await waitFor("node2's dial to fail certificate verification", async () => {
      const outbound = (await connections(lab, 2)).filter((c) =>
        c.direction === "outbound" && c.address.startsWith(lab.node(1).underlayIp)
      );
      return outbound.some((c) =>
        c.state !== "established" && /certificate|issuer|tls/i.test(c.lastError ?? "")
      );
    });
  } finally {
    await lab.destroy();
  }
});
