/** Identity keys on disk, trust on first use, re-binding, and the signer other modules use. */
import assert from "node:assert/strict";
import { fingerprint, IdentityKey, verifySignature } from "./keys.ts";
import { KnownPeers } from "./known_peers.ts";
import { SimCluster } from "./testing.ts";

Deno.test("the identity key is made once, kept 0600 in the state dir, and loaded again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-keys-" });
  try {
    const first = await IdentityKey.load(dir);
    assert.equal((await Deno.stat(`${dir}/identity.key`)).mode! & 0o777, 0o600);
    const again = await IdentityKey.load(dir);
    assert.equal(again.publicKey, first.publicKey);
    const data = new TextEncoder().encode("ring v7");
    assert.ok(verifySignature(first.publicKey, data, again.sign(data)));
    await Deno.writeTextFile(`${dir}/identity.key`, "garbage");
    await assert.rejects(() => IdentityKey.load(dir), /Invalid identity key.*delete it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("signature checks are false, never a throw, for malformed keys and signatures", () => {
  const key = IdentityKey.generate();
  const data = new TextEncoder().encode("x");
  const sig = key.sign(data);
  assert.ok(verifySignature(key.publicKey, data, sig));
  assert.ok(!verifySignature("not a key", data, sig));
  assert.ok(!verifySignature(key.publicKey, data, "AAAA"));
  assert.ok(!verifySignature(IdentityKey.generate().publicKey, data, sig));
  assert.match(fingerprint(key.publicKey), /^SHA256:[A-Za-z0-9_-]{16}$/);
});

Deno.test("a name is bound to the first key, persisted, and re-bound only by the operator", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-known-" });
  try {
    const path = `${dir}/known-peers`;
    const [k1, k2, k3] = [IdentityKey.generate(), IdentityKey.generate(), IdentityKey.generate()];
    const known = await KnownPeers.load(path);
    assert.equal(known.admit("p1", k1.publicKey, 1), "bound");
    assert.equal(known.admit("p1", k1.publicKey, 2), "match");
    assert.equal(known.admit("p1", k2.publicKey, 3), "mismatch");
    await known.flush();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const reloaded = await KnownPeers.load(path);
    assert.equal(reloaded.admit("p1", k2.publicKey, 4), "mismatch", "survives a restart");
    // Pinned re-bind: only the key with that fingerprint binds.
    reloaded.rebind("p1", { fingerprint: fingerprint(k2.publicKey) });
    assert.equal(reloaded.admit("p1", k3.publicKey, 5), "mismatch");
    assert.equal(reloaded.admit("p1", k2.publicKey, 6), "bound");
    reloaded.rebind("p1");
    assert.equal(reloaded.admit("p1", k3.publicKey, 7), "bound");
    await reloaded.flush();
    assert.equal((await KnownPeers.load(path)).key("p1"), k3.publicKey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mesh.signer() signs as this peer and verifies with the keys bound to others", async () => {
  await using cluster = new SimCluster({ latencyMs: 1 });
  const p0 = await cluster.add("p0");
  const p1 = await cluster.add("p1", { peers: ["p0"] });
  cluster.converge(2);
  const data = new TextEncoder().encode("ring entry 10.32.0.0/16 -> p0");
  const signature = p0.signer().sign(data);
  assert.ok(p1.signer().verify("p0", data, signature));
  assert.ok(p0.signer().verify("p0", data, signature), "our own key is bound to our name");
  assert.ok(!p1.signer().verify("p1", data, signature), "signed by p0, not p1");
  assert.ok(!p1.signer().verify("nobody", data, signature), "unknown peer");
  assert.ok(!p1.signer().verify("p0", new TextEncoder().encode("other"), signature));
});

Deno.test("after a legitimate reinstall, re-binding the name brings the peer back", async () => {
  await using cluster = new SimCluster({ latencyMs: 2 });
  const options = { retryMinMs: 200, retryMaxMs: 1000 };
  const p0 = await cluster.add("p0", options);
  await cluster.add("p1", { ...options, peers: ["p0"] });
  cluster.converge(2);
  // p1 is reinstalled with its --name kept, but its identity key is new.
  await cluster.get("p1").stop();
  cluster.state.delete("p1");
  const reinstalled = await cluster.add("p1", { ...options, peers: ["p0"] });
  cluster.clock.advance(5000);
  const mismatch = p0.diagnostics().find((d) => d.code === "key-mismatch");
  assert.ok(mismatch, JSON.stringify(p0.diagnostics()));
  assert.ok(mismatch.message.includes(reinstalled.keyFingerprint), mismatch.message);
  assert.equal(p0.peer("p1")?.reachable, false);
  p0.rebindPeer("p1", { fingerprint: reinstalled.keyFingerprint });
  cluster.converge(2);
  assert.equal(p0.peer("p1")!.incarnation, reinstalled.incarnation);
  assert.deepEqual(p0.diagnostics(), []);
  assert.throws(() => p0.rebindPeer("p0"), /own name/);
});

Deno.test("a corrupt known-peers file is refused with the way out", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-known-" });
  try {
    await Deno.writeTextFile(`${dir}/known-peers`, "{not json");
    await assert.rejects(
      () => KnownPeers.load(`${dir}/known-peers`),
      /Cannot read the known peer keys .*known-peers.*delete the file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
