/**
 * The cluster IPAM over the mesh: its transport, and the mesh events it must hear.
 *
 * The transport. The IPAM's shared state is broadcast along
 * the mesh's spanning tree on the "ipam-state" channel (on change, and periodically as the IPAM
 * decides), its requests and donations are routed unicasts on "ipam". The state is not
 * attached to the mesh's own peer record: the ring is shared by everyone, and a copy in every
 * peer's record would cost every node memory in the square of the cluster size.
 */
import { ClusterIpam, type IpamInit, type IpamTransport, type Store } from "../ipam/mod.ts";
import type { Cidr } from "../net/cidr.ts";
import type { Mesh } from "../mesh/mod.ts";

export const IPAM_MESSAGE_CHANNEL = "ipam";
export const IPAM_STATE_CHANNEL = "ipam-state";

export function meshIpamTransport(mesh: Mesh): IpamTransport {
  return {
    broadcast(state) {
      mesh.broadcast(IPAM_STATE_CHANNEL, state);
    },
    send(peer, message) {
      mesh.send(peer, IPAM_MESSAGE_CHANNEL, message);
    },
    onMessage(handler) {
      mesh.onMessage(IPAM_MESSAGE_CHANNEL, (payload, from) => handler(from, payload));
    },
    onState(handler) {
      mesh.onMessage(IPAM_STATE_CHANNEL, (payload, from) => handler(from, payload));
    },
    peers() {
      return mesh.peers().filter((p) => !p.self).map((p) => ({
        name: p.name,
        reachable: p.reachable,
      }));
    },
  };
}

/** Opens the cluster IPAM on the mesh and keeps it told of peers coming, restarting and going. */
export async function openMeshIpam(
  mesh: Mesh,
  options: {
    store: Store;
    clusterRange: Cidr;
    init: IpamInit;
    reclaimAfterMs?: number;
    log: (message: string) => void;
  },
): Promise<ClusterIpam> {
  const ipam = await ClusterIpam.open({
    store: options.store,
    clusterRange: options.clusterRange,
    peerName: mesh.name,
    transport: meshIpamTransport(mesh),
    init: options.init,
    // every IPAM record and ring write is signed with this peer's identity key (CONTRACTS #2)
    signer: mesh.signer(),
    reclaimAfterMs: options.reclaimAfterMs,
    onEvent: (event) => options.log(`ipam: ${event.message}`),
  });
  // A peer that just came up, or restarted (a new incarnation, which the others may see
  // without it ever going down), needs the ring now, not at the next periodic gossip: a
  // restarted IPAM must hear from a live peer before it allocates again.
  const incarnations = new Map<string, string>();
  const gossipOnNewIncarnation = (peer: { name: string; incarnation: string }) => {
    if (incarnations.get(peer.name) === peer.incarnation) return;
    incarnations.set(peer.name, peer.incarnation);
    ipam.gossip();
  };
  mesh.on("peer-up", gossipOnNewIncarnation);
  mesh.on("peer-changed", gossipOnNewIncarnation);
  // The ring is broadcast along the mesh's spanning tree, and a broadcast sent while the tree
  // still runs through a peer that just died is lost: push our state when a peer goes down.
  // (The IPAM itself keeps re-sending while a reclaim waits for acknowledgements.)
  mesh.on("peer-down", () => ipam.gossip());
  return ipam;
}
