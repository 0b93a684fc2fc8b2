/**
 * The mesh: weft peers find each other, prove a shared secret, and keep the whole topology.
 *
 * Design notes. Each peer owns one versioned record (its connections plus opaque blobs other
 * modules attach), so merging is "larger (incarnation, version) wins" and needs no coordination.
 * Changes travel once along a spanning tree; a periodic digest per link repairs whatever was lost,
 * and a quiet mesh sends nothing but digests and heartbeats, so cost per peer grows with its own
 * links, not with N^2 as Weave's topology gossip did. The wire is behind a Transport interface:
 * WebSocket in the agent, an in-memory network with faults and simulated time in tests and the
 * bench. The mesh imports nothing else of weft: the data path and IPAM ride as opaque blobs.
 *
 * Trust: the password keeps outsiders out; identity keys keep insiders honest. Every peer signs
 * its own record and messages with its Ed25519 key, bound to its name at first contact (trust
 * on first use), so no one else can speak for it; every frame after the handshake is sealed.
 *
 * Layout: `mesh.ts` is the public face; `connections.ts` owns the live connections,
 * `connection_maker.ts` dials, `gossip.ts` spreads records, `messages.ts` carries unicasts and
 * broadcasts, `route_keeper.ts` recomputes routes, `own_record.ts` writes this peer's record,
 * `peer_keys.ts` decides who may speak for whom, `collisions.ts` notices a second peer with our
 * name; `protocol.ts` decodes every frame in one place, `session.ts` runs one connection and
 * `seal.ts` protects its frames. Test doubles (the in-memory network, the simulated clock, a
 * cluster of meshes, an insider client) are exported from `testing.ts`, never from here.
 */
export { Mesh } from "./mesh.ts";
export type {
  ConnectionState,
  ConnectionStatus,
  MeshEvent,
  MeshMetrics,
  MeshOptions,
  MessageHandler,
  PeerStatus,
} from "./types.ts";
export { type Clock, systemClock } from "./clock.ts";
export type { Link, Transport } from "./transport.ts";
export { WebSocketTransport, type WebSocketTransportOptions } from "./websocket_transport.ts";
export { loadIdentity, nameFromSeed, newIncarnation, type PeerIdentity } from "./identity.ts";
export { type ConnectionInfo, mergeRecord, type PeerRecord } from "./record.ts";
export { DEFAULT_PORT, isLocalAddress, localHostAddresses, normalizeAddress } from "./address.ts";
export type { Diagnostic } from "./diagnostics.ts";
export type { PeerSigner } from "./peer_keys.ts";
export { AddressError, HandshakeError, IdentityError, MalformedFrameError } from "./errors.ts";
