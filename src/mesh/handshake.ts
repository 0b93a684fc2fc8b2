/**
 * The handshake's cryptography and message shapes, kept pure so they are tested without sockets.
 *
 * Both sides send a fresh nonce, then each proves knowledge of the shared secret with an HMAC over
 * both nonces and the names, labelled by role so a proof cannot be reflected back. The secret
 * never crosses the wire and a replayed proof is useless against a new nonce. The per-connection
 * session key is HKDF over the secret, salted with both nonces and bound to both names, so each
 * connection gets its own key for the data path. Without a secret on both sides there is no key.
 */
import { Buffer } from "node:buffer";
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { HandshakeError } from "./errors.ts";
import { type HelloFrame, PROTOCOL_RANGE } from "./protocol.ts";

export function newNonce(): string {
  return randomBytes(32).toString("base64");
}

export function helloMessage(nonce: string, options: { auth: boolean }): HelloFrame {
  return { t: "hello", proto: [PROTOCOL_RANGE[0], PROTOCOL_RANGE[1]], nonce, auth: options.auth };
}

/** The highest version both ranges share; throws `HandshakeError` when they do not overlap. */
export function negotiateVersion(
  ours: readonly [number, number],
  theirs: readonly [number, number],
): number {
  const low = Math.max(ours[0], theirs[0]);
  const high = Math.min(ours[1], theirs[1]);
  if (low > high) {
    throw new HandshakeError(
      `No common protocol version: ours ${ours[0]}-${ours[1]}, theirs ${theirs[0]}-${theirs[1]}`,
    );
  }
  return high;
}

/** Whether a connection may proceed given who has a password; throws `HandshakeError` if not. */
export function checkAuthModes(ours: boolean, theirs: boolean): void {
  if (ours && !theirs) throw new HandshakeError("Peer has no password but this peer requires one");
  if (!ours && theirs) throw new HandshakeError("Peer requires a password but this peer has none");
}

/** What both proofs and the session key are bound to. */
export interface HandshakeTranscript {
  clientNonce: string;
  serverNonce: string;
  clientName: string;
  /** Absent in the client's proof: the client proves itself before the server names itself. */
  serverName?: string;
}

function transcriptBytes(role: "client" | "server", t: HandshakeTranscript): string {
  return ["weft-mesh-v1", role, t.clientNonce, t.serverNonce, t.clientName, t.serverName ?? ""]
    .join("\n");
}

/** The HMAC-SHA256 proof that `role` knows `secret`, as base64. */
export function makeProof(
  secret: Uint8Array,
  options: { role: "client" | "server"; transcript: HandshakeTranscript },
): string {
  return createHmac("sha256", secret).update(transcriptBytes(options.role, options.transcript))
    .digest("base64");
}

/** Constant-time check of a proof. */
export function verifyProof(
  secret: Uint8Array,
  proof: string | undefined,
  options: { role: "client" | "server"; transcript: HandshakeTranscript },
): boolean {
  if (proof === undefined) return false;
  const expected = Buffer.from(makeProof(secret, options), "base64");
  const given = Buffer.from(proof, "base64");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A 32-byte key for this connection only: HKDF-SHA256(secret, nonces, names). */
export function deriveSessionKey(secret: Uint8Array, transcript: HandshakeTranscript): Uint8Array {
  const salt = `${transcript.clientNonce}\n${transcript.serverNonce}`;
  const info = `weft-session-v1\n${transcript.clientName}\n${transcript.serverName ?? ""}`;
  return new Uint8Array(hkdfSync("sha256", secret, salt, info, 32));
}
