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
 * Layout: `mesh.ts` is the public face and owns the connections; `connection_maker.ts` dials,
 * `gossip.ts` spreads records, `messages.ts` carries unicasts and broadcasts, `route_keeper.ts`
 * recomputes routes, `own_record.ts` writes this peer's record; `protocol.ts` decodes every
 * frame in one place and `session.ts` runs one connection. Test doubles (the in-memory network,
 * the simulated clock) are exported from `testing.ts`, never from here.
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
export { AddressError, HandshakeError, IdentityError, MalformedFrameError } from "./errors.ts";
