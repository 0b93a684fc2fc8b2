import assert from "node:assert/strict";
import {
  checkAuthModes,
  deriveKeys,
  type HandshakeTranscript,
  makeProof,
  negotiateVersion,
  newEphemeral,
  newNonce,
  sharedSecret,
  transcriptBytes,
  verifyProof,
} from "./handshake.ts";
import { HandshakeError } from "./errors.ts";
import { IdentityKey, verifySignature } from "./keys.ts";

const secret = new TextEncoder().encode("s3cret");
const clientKey = IdentityKey.generate(), serverKey = IdentityKey.generate();
const clientDh = newEphemeral(), serverDh = newEphemeral();
const transcript: HandshakeTranscript = {
  clientNonce: newNonce(),
  serverNonce: newNonce(),
  clientDh: clientDh.publicKey,
  serverDh: serverDh.publicKey,
  client: { name: "a", incarnation: "00000001aaaa", port: 6783, key: clientKey.publicKey },
  server: { name: "b", incarnation: "00000002bbbb", port: 6783, key: serverKey.publicKey },
};

Deno.test("a proof verifies only with the same secret, role and transcript", () => {
  const proof = makeProof(secret, { role: "client", transcript });
  assert.ok(verifyProof(secret, proof, { role: "client", transcript }));
  assert.ok(!verifyProof(new TextEncoder().encode("other"), proof, { role: "client", transcript }));
  assert.ok(!verifyProof(secret, proof, { role: "server", transcript }));
  const replay = { ...transcript, serverNonce: newNonce() };
  assert.ok(!verifyProof(secret, proof, { role: "client", transcript: replay }));
  const otherDh = { ...transcript, serverDh: newEphemeral().publicKey };
  assert.ok(!verifyProof(secret, proof, { role: "client", transcript: otherDh }));
  assert.ok(!verifyProof(secret, undefined, { role: "client", transcript }));
  assert.ok(!verifyProof(secret, "AAAA", { role: "client", transcript }));
});

Deno.test("the identity signature binds the nonces, ephemeral keys and claims", () => {
  const sig = clientKey.sign(transcriptBytes("client", transcript));
  assert.ok(verifySignature(clientKey.publicKey, transcriptBytes("client", transcript), sig));
  assert.ok(!verifySignature(serverKey.publicKey, transcriptBytes("client", transcript), sig));
  const renamed = { ...transcript, client: { ...transcript.client, name: "mallory" } };
  assert.ok(!verifySignature(clientKey.publicKey, transcriptBytes("client", renamed), sig));
  const fresh = { ...transcript, serverNonce: newNonce() };
  assert.ok(!verifySignature(clientKey.publicKey, transcriptBytes("client", fresh), sig));
  // The client signs before the server names itself: the server's claims are not in its bytes.
  const otherServer = { ...transcript, server: { ...transcript.server!, name: "c" } };
  assert.deepEqual(transcriptBytes("client", otherServer), transcriptBytes("client", transcript));
  assert.notDeepEqual(
    transcriptBytes("server", otherServer),
    transcriptBytes("server", transcript),
  );
});

Deno.test("both ends derive the same keys; they differ per connection and direction", () => {
  const a = deriveKeys(sharedSecret(clientDh, serverDh.publicKey), { secret, transcript });
  const b = deriveKeys(sharedSecret(serverDh, clientDh.publicKey), { secret, transcript });
  assert.deepEqual(a, b);
  assert.equal(a.session?.length, 32);
  assert.notDeepEqual(a.clientToServer, a.serverToClient);
  const other = deriveKeys(sharedSecret(newEphemeral(), serverDh.publicKey), {
    secret,
    transcript,
  });
  assert.notDeepEqual(other.clientToServer, a.clientToServer);
  assert.notDeepEqual(other.session, a.session);
  // Without a password: frames are still keyed, but there is no session key for the data path.
  const open = deriveKeys(sharedSecret(clientDh, serverDh.publicKey), { transcript });
  assert.equal(open.session, undefined);
  assert.notDeepEqual(open.clientToServer, a.clientToServer);
});

Deno.test("a malformed or low-order ephemeral key is refused", () => {
  assert.throws(() => sharedSecret(clientDh, "AAAA"), HandshakeError);
  assert.throws(() => sharedSecret(clientDh, "A".repeat(43) + "="), HandshakeError);
});

Deno.test("version negotiation picks the highest common version or refuses", () => {
  assert.equal(negotiateVersion([1, 3], [2, 5]), 3);
  assert.throws(() => negotiateVersion([2, 2], [1, 1]), HandshakeError);
});

Deno.test("a password on one side only is refused", () => {
  checkAuthModes(true, true);
  checkAuthModes(false, false);
  assert.throws(() => checkAuthModes(true, false), /no password/);
  assert.throws(() => checkAuthModes(false, true), /requires a password/);
});
