/**
 * For the simulation bench only: a signature scheme that signs nothing and accepts everything,
 * so the bench can show what signatures cost by running the same mesh with and without them.
 * Exported from testing.ts, never from mod.ts: a mesh built with it has no defence against
 * forged records.
 */
import { randomBytes } from "node:crypto";
import type { SignatureScheme } from "./keys.ts";

const PLACEHOLDER = "A".repeat(86) + "==";

export function unsignedScheme(): SignatureScheme {
  return {
    publicKey: randomBytes(32).toString("base64"),
    sign: () => PLACEHOLDER,
    verify: () => true,
  };
}
