/**
 * The cluster IPAM's transport, made of the mesh. The IPAM's shared state is broadcast along
 * the mesh's spanning tree on the "ipam-state" channel (on change, and periodically as the IPAM
 * decides), its requests and donations are routed unicasts on "ipam". The state is not
 * attached to the mesh's own peer record: the ring is shared by everyone, and a copy in every
 * peer's record would cost every node memory in the square of the cluster size.
 */
import type { IpamTransport } from "../ipam/mod.ts";
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
