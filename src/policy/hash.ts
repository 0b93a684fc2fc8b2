/**
 * Short stable ids for kernel object names: FNV-1a (64 bit) of a canonical text, in hex. Not a
 * security boundary; the compiler still checks that no two meanings share an id.
 */
const OFFSET = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;
const encoder = new TextEncoder();

export function stableId(text: string): string {
  let hash = OFFSET;
  for (const byte of encoder.encode(text)) {
    hash = ((hash ^ BigInt(byte)) * PRIME) & MASK;
  }
  return hash.toString(16).padStart(16, "0");
}
