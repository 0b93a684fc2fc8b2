/**
 * The handshake's cryptography, kept pure so it is tested without sockets.
 *
 * Both sides send a fresh nonce and an ephemeral X25519 public key in their hello. Then each
 * signs the transcript (both nonces, both ephemeral keys, its own claims and, for the server, the
 * client's too) with its Ed25519 identity key, proving it holds the key it names; with a
 * password it also proves knowledge of the password with an HMAC over the same transcript,
 * labelled by role so a proof cannot be reflected back. The secret never crosses the wire and
 * a replayed proof or signature is useless against fresh nonces.
 *
 * Keys: the X25519 shared secret, concatenated with the password when there is one, is the HKDF
 * input; salted with both nonces and bound to both names it gives one integrity key per
 * direction for every frame after the handshake (so frames are protected with or without a
 * password), and, with a password, the session key the data path encrypts with. The ephemeral
 * exchange means that even an insider who knows the password and records a handshake cannot
 * compute that connection's keys (and the identity signatures stop them sitting in the middle).
 */
import { Buffer } from "node:buffer";
import {
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { HandshakeError } from "./errors.ts";
import { type HelloFrame, PROTOCOL_RANGE } from "./protocol.ts";

export function newNonce(): string {
  return randomBytes(32).toString("base64");
}

export function helloMessage(
  nonce: string,
  options: { auth: boolean; dh: string },
): HelloFrame {
  const proto: [number, number] = [PROTOCOL_RANGE[0], PROTOCOL_RANGE[1]];
  return { t: "hello", proto, nonce, auth: options.auth, dh: options.dh };
}

/** An ephemeral X25519 key pair, new for every connection. */
export interface Ephemeral {
  /** Raw 32-byte public key, base64. */
  publicKey: string;
  privateKey: KeyObject;
}

export function newEphemeral(): Ephemeral {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  const x = publicKey.export({ format: "jwk" }).x!;
  return { publicKey: Buffer.from(x, "base64url").toString("base64"), privateKey };
}

/** The X25519 shared secret with the other side's ephemeral key; throws `HandshakeError`. */
export function sharedSecret(ours: Ephemeral, theirs: string): Uint8Array {
  try {
    const x = Buffer.from(theirs, "base64").toString("base64url");
    const publicKey = createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
    const secret = new Uint8Array(diffieHellman({ privateKey: ours.privateKey, publicKey }));
    // An all-zero result means a low-order point: no secret at all.
    if (secret.every((b) => b === 0)) throw new Error("low-order key");
    return secret;
  } catch (error) {
    throw new HandshakeError(`Invalid ephemeral key from peer: ${(error as Error).message}`);
  }
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

/** What one side claims in its auth message, and signs. */
export interface PeerClaims {
  name: string;
  incarnation: string;
  port: number;
  /** Its Ed25519 identity public key, base64. */
  key: string;
}

/** What signatures, proofs and keys are bound to. */
export interface HandshakeTranscript {
  clientNonce: string;
  serverNonce: string;
  clientDh: string;
  serverDh: string;
  client: PeerClaims;
  /** Absent in the client's proof: the client proves itself before the server names itself. */
  server?: PeerClaims;
}

/** The bytes `role` signs (and, with a password, MACs). */
export function transcriptBytes(
  role: "client" | "server",
  t: HandshakeTranscript,
): Uint8Array {
  const claims = (c?: PeerClaims) => (c ? [c.name, c.incarnation, c.port, c.key] : []);
  return new TextEncoder().encode(JSON.stringify([
    "weft-mesh-v2",
    role,
    t.clientNonce,
    t.serverNonce,
    t.clientDh,
    t.serverDh,
    claims(t.client),
    claims(role === "server" ? t.server : undefined),
  ]));
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

export interface ConnectionKeys {
  /** Integrity key for frames the client sends. */
  clientToServer: Uint8Array;
  /** Integrity key for frames the server sends. */
  serverToClient: Uint8Array;
  /** For the data path; only with a password (without one, the data path does not encrypt). */
  session?: Uint8Array;
}

/** This connection's keys, from the ephemeral exchange and (if any) the password. */
export function deriveKeys(
  shared: Uint8Array,
  options: { secret?: Uint8Array; transcript: HandshakeTranscript },
): ConnectionKeys {
  const { secret, transcript: t } = options;
  const ikm = secret ? Buffer.concat([shared, secret]) : Buffer.from(shared);
  const salt = `${t.clientNonce}\n${t.serverNonce}`;
  const names = `${t.client.name}\n${t.server?.name ?? ""}`;
  const derive = (label: string) =>
    new Uint8Array(hkdfSync("sha256", ikm, salt, `${label}\n${names}`, 32));
  return {
    clientToServer: derive("weft-frames-v2 client>server"),
    serverToClient: derive("weft-frames-v2 server>client"),
    session: secret ? derive("weft-session-v2") : undefined,
  };
}
