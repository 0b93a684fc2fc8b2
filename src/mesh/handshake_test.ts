import assert from "node:assert/strict";
import {
  checkAuthModes,
  deriveSessionKey,
  type HandshakeTranscript,
  makeProof,
  negotiateVersion,
  newNonce,
  verifyProof,
} from "./handshake.ts";
import { HandshakeError } from "./errors.ts";

const secret = new TextEncoder().encode("s3cret");
const transcript: HandshakeTranscript = {
  clientNonce: newNonce(),
  serverNonce: newNonce(),
  clientName: "a",
  serverName: "b",
};

Deno.test("a proof verifies only with the same secret, role and transcript", () => {
  const proof = makeProof(secret, { role: "client", transcript });
  assert.ok(verifyProof(secret, proof, { role: "client", transcript }));
  assert.ok(!verifyProof(new TextEncoder().encode("other"), proof, { role: "client", transcript }));
  assert.ok(!verifyProof(secret, proof, { role: "server", transcript }));
  const replay = { ...transcript, serverNonce: newNonce() };
  assert.ok(!verifyProof(secret, proof, { role: "client", transcript: replay }));
  assert.ok(!verifyProof(secret, undefined, { role: "client", transcript }));
  assert.ok(!verifyProof(secret, "AAAA", { role: "client", transcript }));
});

Deno.test("the proof does not contain the secret", () => {
  const proof = makeProof(secret, { role: "client", transcript });
  assert.ok(!atob(proof).includes("s3cret"));
});

Deno.test("session keys are equal on both sides and differ per connection", () => {
  const key = deriveSessionKey(secret, transcript);
  assert.equal(key.length, 32);
  assert.deepEqual(deriveSessionKey(secret, { ...transcript }), key);
  assert.notDeepEqual(deriveSessionKey(secret, { ...transcript, clientNonce: newNonce() }), key);
  assert.notDeepEqual(deriveSessionKey(secret, { ...transcript, serverName: "c" }), key);
});

Deno.test("version negotiation picks the highest common version or refuses", () => {
  assert.equal(negotiateVersion([1, 3], [2, 5]), 3);
  assert.throws(() => negotiateVersion([1, 1], [2, 3]), HandshakeError);
});

Deno.test("a password on one side only is refused", () => {
  checkAuthModes(true, true);
  checkAuthModes(false, false);
  assert.throws(() => checkAuthModes(true, false), /no password/);
  assert.throws(() => checkAuthModes(false, true), /requires a password/);
});
