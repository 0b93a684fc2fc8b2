/**
 * Peer identity keys: one Ed25519 key pair per peer, made on first start and kept in the state
 * dir (`identity.key`, PKCS#8 PEM, mode 0600). The public key travels in the handshake and in
 * every record the peer signs; what others bind it to is `known_peers.ts`'s business. Everything
 * is synchronous (node:crypto) because the mesh never awaits after start. Verification keys are
 * parsed once and cached: a record costs one signature check, not a key import as well.
 */
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { IdentityError } from "./errors.ts";

export const IDENTITY_KEY_FILE = "identity.key";

/** A raw 32-byte Ed25519 public key in standard base64. */
export const PUBLIC_KEY = /^[A-Za-z0-9+/]{43}=$/;
/** A 64-byte Ed25519 signature in standard base64. */
export const SIGNATURE = /^[A-Za-z0-9+/]{86}==$/;

/** What the mesh signs and checks with: this peer's key, and others' public keys. */
export interface SignatureScheme {
  /** This peer's public key (base64, raw 32 bytes). */
  readonly publicKey: string;
  /** A signature by this peer's key (base64, 64 bytes). */
  sign(data: Uint8Array): string;
  /** Whether `signature` over `data` was made with the key `publicKey`. */
  verify(publicKey: string, data: Uint8Array, signature: string): boolean;
}

const MAX_CACHED_KEYS = 4096;
const parsedKeys = new Map<string, KeyObject | null>();

function publicKeyObject(publicKey: string): KeyObject | null {
  let key = parsedKeys.get(publicKey);
  if (key !== undefined) return key;
  try {
    const x = Buffer.from(publicKey, "base64").toString("base64url");
    key = PUBLIC_KEY.test(publicKey)
      ? createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" })
      : null;
  } catch {
    key = null;
  }
  if (parsedKeys.size >= MAX_CACHED_KEYS) parsedKeys.delete(parsedKeys.keys().next().value!);
  parsedKeys.set(publicKey, key);
  return key;
}

/** Checks an Ed25519 signature; false (never a throw) for malformed keys or signatures. */
export function verifySignature(
  publicKey: string,
  data: Uint8Array,
  signature: string,
): boolean {
  const key = publicKeyObject(publicKey);
  if (key === null || !SIGNATURE.test(signature)) return false;
  try {
    return verify(null, data, key, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

/** A short, stable name for a key that people can compare: `SHA256:` and 16 base64 characters. */
export function fingerprint(publicKey: string): string {
  const digest = createHash("sha256").update(Buffer.from(publicKey, "base64")).digest();
  return `SHA256:${digest.subarray(0, 12).toString("base64url")}`;
}

/** An Ed25519 key pair in memory. */
export class IdentityKey implements SignatureScheme {
  readonly publicKey: string;
  readonly #privateKey: KeyObject;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    const jwk = createPublicKey(privateKey).export({ format: "jwk" });
    this.publicKey = Buffer.from(jwk.x!, "base64url").toString("base64");
  }

  static generate(): IdentityKey {
    return new IdentityKey(generateKeyPairSync("ed25519").privateKey);
  }

  /** Loads `identity.key` from the state dir, or makes one and saves it (0600) first. */
  static async load(stateDir: string): Promise<IdentityKey> {
    const path = `${stateDir}/${IDENTITY_KEY_FILE}`;
    let pem: string | undefined;
    try {
      pem = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        throw new IdentityError(`Cannot read "${path}": ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    if (pem !== undefined) {
      try {
        const key = createPrivateKey(pem);
        if (key.asymmetricKeyType !== "ed25519") throw new Error("not an Ed25519 key");
        return new IdentityKey(key);
      } catch (error) {
        throw new IdentityError(
          `Invalid identity key "${path}": ${(error as Error).message}; ` +
            `delete it to make a new one (other peers will then refuse this peer until they ` +
            `re-bind its name)`,
          { cause: error },
        );
      }
    }
    const created = IdentityKey.generate();
    const text = created.#privateKey.export({ format: "pem", type: "pkcs8" }) as string;
    try {
      const temporary = `${path}.tmp`;
      await Deno.writeTextFile(temporary, text, { mode: 0o600 });
      await Deno.chmod(temporary, 0o600);
      await Deno.rename(temporary, path);
    } catch (error) {
      throw new IdentityError(`Cannot write "${path}": ${(error as Error).message}`, {
        cause: error,
      });
    }
    return created;
  }

  sign(data: Uint8Array): string {
    return sign(null, data, this.#privateKey).toString("base64");
  }

  verify(publicKey: string, data: Uint8Array, signature: string): boolean {
    return verifySignature(publicKey, data, signature);
  }
}
