/**
 * The mesh as the agent uses it: made from the configuration, and the admin API's mesh
 * operations over it (peers, connections joined with the data path's paths, targets, rmpeer,
 * re-binding a reinstalled peer's key, the IPAM ring).
 */
import { BadRequestError, type MeshPort } from "../api/mod.ts";
import { Mesh } from "../mesh/mod.ts";
import type { Datapath } from "../datapath/mod.ts";
import type { AgentConfig } from "./config.ts";
import { connectionsView } from "./views.ts";

export function createMesh(
  config: AgentConfig,
  options: { log: (message: string) => void },
): Promise<Mesh> {
  return Mesh.create({
    stateDir: config.stateDir,
    name: config.peerName,
    nickname: config.nickname,
    password: config.password,
    host: config.meshHost,
    port: config.port,
    peers: config.peers,
    discovery: config.discovery,
    connLimit: config.connLimit,
    tls: config.tls,
    caCerts: config.tlsCa,
    log: options.log,
  });
}

export function meshPort(mesh: Mesh, parts: {
  datapath: () => Datapath | undefined;
  /** The IPAM ring as canonical JSON, or undefined while the IPAM is not open. */
  ringState: () => string | undefined;
  removePeer: (name: string) => unknown;
}): MeshPort {
  return {
    peers: () => mesh.peers(),
    connections: () => connectionsView(mesh, parts.datapath()),
    targets: () => mesh.targets(),
    connect: (address, options) => mesh.connect(address, options),
    forget: (address) => mesh.forget(address),
    removePeer: (name) => Promise.resolve(parts.removePeer(name)),
    rebindPeer: (name, options) => {
      if (name === mesh.name) {
        throw new BadRequestError(`Cannot rebind "${name}": it is this node's own name`);
      }
      mesh.rebindPeer(name, options);
      return Promise.resolve({ rebound: name, ...options });
    },
    ring: () => {
      const state = parts.ringState();
      return state === undefined ? undefined : JSON.parse(state);
    },
  };
}
