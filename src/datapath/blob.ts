import type { Endpoint } from "./types.ts";

/**
 * What a node publishes about its data path. It travels through the mesh as an opaque string,
 * so its shape can change without the mesh or the agent noticing; `v` lets a newer node read an
 * older node's blob.
 */
export interface PeerBlob {
  v: 1;
  /** Underlay address other nodes send VXLAN and sleeve datagrams to. */
  ip: string;
  vxlanPort: number;
  udpPort: number;
  /** VXLAN network identifier; both ends must agree. */
  vni: number;
  /** The bridge's MAC and address: fast-path probes are addressed to the bridge itself. */
  bridgeMac: string;
  bridgeIp: string;
  /** MTU of this node's underlay link: each side's path MTU is bounded by both ends. */
  underlayMtu: number;
  endpoints: Endpoint[];
  /**
   * Set when this node requires encrypted pod traffic (a password without --no-encrypt): a
   * pair is encrypted when either end requires it, so a --no-encrypt node still encrypts to it.
   */
  encrypt?: true;
}

export class PeerBlobError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PeerBlobError";
  }
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpv4(text: unknown): text is string {
  const m = typeof text === "string" ? IPV4.exec(text) : null;
  return m !== null && m.slice(1).every((part) => Number(part) <= 255);
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) < 65536;
}

export function encodePeerBlob(blob: PeerBlob): string {
  return JSON.stringify(blob);
}

/** Parses and validates a peer's blob; anything malformed is rejected, naming the bad field. */
export function decodePeerBlob(text: string): PeerBlob {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PeerBlobError(`Peer blob is not JSON: ${JSON.stringify(text.slice(0, 40))}`, {
      cause: error,
    });
  }
  if (typeof raw !== "object" || raw === null) {
    throw new PeerBlobError("Peer blob is not an object");
  }
  if (raw.v !== 1) {
    throw new PeerBlobError(`Unsupported peer blob version ${JSON.stringify(raw.v)}`);
  }
  if (!isIpv4(raw.ip)) throw new PeerBlobError(`Peer blob has bad ip ${JSON.stringify(raw.ip)}`);
  if (!isIpv4(raw.bridgeIp)) {
    throw new PeerBlobError(`Peer blob has bad bridgeIp ${JSON.stringify(raw.bridgeIp)}`);
  }
  for (const key of ["vxlanPort", "udpPort"] as const) {
    if (!isPort(raw[key])) {
      throw new PeerBlobError(`Peer blob has bad ${key} ${JSON.stringify(raw[key])}`);
    }
  }
  if (!Number.isInteger(raw.vni) || (raw.vni as number) < 0 || (raw.vni as number) >= 1 << 24) {
    throw new PeerBlobError(`Peer blob has bad vni ${JSON.stringify(raw.vni)}`);
  }
  if (!Number.isInteger(raw.underlayMtu) || (raw.underlayMtu as number) < 576) {
    throw new PeerBlobError(`Peer blob has bad underlayMtu ${JSON.stringify(raw.underlayMtu)}`);
  }
  if (typeof raw.bridgeMac !== "string" || !MAC.test(raw.bridgeMac)) {
    throw new PeerBlobError(`Peer blob has bad bridgeMac ${JSON.stringify(raw.bridgeMac)}`);
  }
  if (!Array.isArray(raw.endpoints)) throw new PeerBlobError("Peer blob endpoints is not a list");
  const endpoints: Endpoint[] = raw.endpoints.map((entry: unknown) => {
    const e = entry as Record<string, unknown>;
    if (typeof e?.mac !== "string" || !MAC.test(e.mac) || !isIpv4(e.ip)) {
      throw new PeerBlobError(`Peer blob has bad endpoint ${JSON.stringify(entry)}`);
    }
    return { mac: e.mac, ip: e.ip };
  });
  return {
    v: 1,
    ip: raw.ip,
    vxlanPort: raw.vxlanPort as number,
    udpPort: raw.udpPort as number,
    vni: raw.vni as number,
    bridgeMac: raw.bridgeMac,
    bridgeIp: raw.bridgeIp,
    underlayMtu: raw.underlayMtu as number,
    endpoints,
    ...(raw.encrypt === true ? { encrypt: true as const } : {}),
  };
}
