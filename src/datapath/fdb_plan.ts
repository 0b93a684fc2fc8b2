/**
 * Which forwarding entries the node should hold, as a pure function of its peers and their
 * current paths. The kernel side applies only the difference from what it applied last, so a
 * pod or peer that goes away takes its entries with it and nothing stale survives a path switch.
 *
 * Two tables are programmed. The bridge ("master") table sends each remote MAC to the port of
 * the peer's current path: the VXLAN device or the sleeve TAP; learning is off on both ports, so
 * these static entries are the only truth. The VXLAN device's own ("self") table maps each remote
 * MAC to the owner's underlay address, and holds one all-zero entry per fast-path peer so
 * broadcasts and unknown unicast are replicated to each of them (head-end replication, no
 * underlay multicast).
 */
import type { PeerBlob } from "./blob.ts";
import type { PathKind } from "./types.ts";

export const FLOOD_MAC = "00:00:00:00:00:00";

export interface FdbEntry {
  mac: string;
  device: string;
  /** true: bridge table entry; false: VXLAN device entry with an underlay destination. */
  master: boolean;
  destination?: string;
  port?: number;
}

export interface PlannedPeer {
  name: string;
  path: PathKind;
  blob: PeerBlob;
}

export interface FdbDevices {
  vxlan: string;
  tap?: string;
  /** Our VXLAN port; a peer on another port gets an explicit `port` on its entries. */
  vxlanPort: number;
}

export function fdbKey(entry: FdbEntry): string {
  return [
    entry.mac,
    entry.device,
    entry.master ? "master" : "self",
    entry.destination ?? "",
    entry.port ?? "",
  ]
    .join(" ");
}

export function peerMacs(blob: PeerBlob): string[] {
  return [...new Set([blob.bridgeMac, ...blob.endpoints.map((e) => e.mac)])];
}

export function planFdb(peers: PlannedPeer[], devices: FdbDevices): FdbEntry[] {
  const master = new Map<string, FdbEntry>();
  const self = new Map<string, FdbEntry>();
  for (const peer of [...peers].sort((a, b) => a.name.localeCompare(b.name))) {
    const port = peer.blob.vxlanPort === devices.vxlanPort ? undefined : peer.blob.vxlanPort;
    if (peer.path === "fastdp") {
      const flood = {
        mac: FLOOD_MAC,
        device: devices.vxlan,
        master: false,
        destination: peer.blob.ip,
        port,
      };
      self.set(fdbKey(flood), flood);
      for (const mac of peerMacs(peer.blob)) {
        master.set(mac, { mac, device: devices.vxlan, master: true });
        const unicast = {
          mac,
          device: devices.vxlan,
          master: false,
          destination: peer.blob.ip,
          port,
        };
        self.set(mac, unicast);
      }
    } else if ((peer.path === "sleeve" || peer.path === "relay") && devices.tap) {
      for (const mac of peerMacs(peer.blob)) {
        master.set(mac, { mac, device: devices.tap, master: true });
      }
    }
  }
  return [...master.values(), ...self.values()];
}

export function diffFdb(
  current: FdbEntry[],
  desired: FdbEntry[],
): { remove: FdbEntry[]; add: FdbEntry[] } {
  const have = new Map(current.map((e) => [fdbKey(e), e]));
  const want = new Map(desired.map((e) => [fdbKey(e), e]));
  return {
    remove: [...have].filter(([key]) => !want.has(key)).map(([, e]) => e),
    add: [...want].filter(([key]) => !have.has(key)).map(([, e]) => e),
  };
}
