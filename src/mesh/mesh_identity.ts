/**
 * Everything a mesh is, loaded from the state dir: the name and incarnation (`identity.ts`), the
 * identity key (`keys.ts`) and the keys bound to other peers' names (`known_peers.ts`). Without
 * a state dir, a key is made in memory and bindings last as long as the process.
 */
import { loadIdentity, type PeerIdentity } from "./identity.ts";
import { IdentityKey, type SignatureScheme } from "./keys.ts";
import { KNOWN_PEERS_FILE, KnownPeers } from "./known_peers.ts";

export interface MeshIdentity {
  name: string;
  nickname: string;
  incarnation?: string;
  /** The identity key; a new one in memory when absent. */
  key?: SignatureScheme;
  /** Names bound to keys; in memory only when absent. */
  known?: KnownPeers;
}

export async function loadMeshIdentity(options: {
  stateDir?: string;
  name?: string;
  nickname?: string;
  now: number;
  log?: (message: string) => void;
}): Promise<MeshIdentity> {
  const identity: PeerIdentity = await loadIdentity(options);
  const dir = options.stateDir;
  if (dir === undefined) return identity;
  const key = await IdentityKey.load(dir);
  const known = await KnownPeers.load(`${dir}/${KNOWN_PEERS_FILE}`, { log: options.log });
  return { ...identity, key, known };
}
