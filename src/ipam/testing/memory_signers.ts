/**
 * Per-peer Ed25519 keys in memory, for tests, the simulation and the benchmark: what the
 * mesh's identity keys with their trust-on-first-use binding give the agent (`mesh.signer()`).
 * Each peer's signer signs only with that peer's key; every signer verifies with the key
 * registered for the name it is given. An insider is a peer like any other: it holds its own
 * key and can sign only as itself, whatever it then claims.
 */
import { generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { Buffer } from "node:buffer";
import type { PeerSigner } from "../authority.ts";

export class MemorySigners {
  #keys = new Map<string, { publicKey: KeyObject; privateKey: KeyObject }>();

  /** The signer of peer `name`; its key is made on first use and kept (a restart keeps it). */
  for(name: string): PeerSigner {
    const own = this.#key(name);
    return {
      sign: (data) => sign(null, data, own.privateKey).toString("base64"),
      verify: (peer, data, signature) => {
        const key = this.#keys.get(peer);
        if (!key || signature === "") return false;
        try {
          return verify(null, data, key.publicKey, Buffer.from(signature, "base64"));
        } catch {
          return false;
        }
      },
    };
  }

  #key(name: string): { publicKey: KeyObject; privateKey: KeyObject } {
    let key = this.#keys.get(name);
    if (!key) {
      key = generateKeyPairSync("ed25519");
      this.#keys.set(name, key);
    }
    return key;
  }
}

/**
 * A signer that signs nothing and believes everything: the benchmark's baseline without
 * signatures, never for a running node (it is exported from testing.ts only).
 */
export function unverifiedSigner(): PeerSigner {
  return { sign: () => "unsigned", verify: () => true };
}
