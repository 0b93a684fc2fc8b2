/**
 * Short stable ids for kernel object names: FNV-1a (64 bit) of a canonical text, in hex. Not a
 * security boundary; the compiler still checks that no two meanings share an id.
 *
 * The 64-bit product is done in two 32-bit halves with plain numbers: the same digits as a
 * BigInt would give, without allocating a BigInt per byte (a compile of 200 policies hashes a
 * few hundred keys, and BigInt made hashing the slowest part of planning).
 */
const encoder = new TextEncoder();
const TWO_32 = 4294967296;

export function stableId(text: string): string {
  // offset basis 0xcbf29ce484222325
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (const byte of encoder.encode(text)) {
    lo = (lo ^ byte) >>> 0;
    // prime 0x100000001b3 = 2^40 + 0x1b3: hash * 0x1b3, plus the low half shifted 40 bits up
    const low = lo * 0x1b3;
    const carry = Math.floor(low / TWO_32);
    hi = (hi * 0x1b3 + carry + ((lo << 8) >>> 0)) % TWO_32;
    lo = low % TWO_32;
  }
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}
