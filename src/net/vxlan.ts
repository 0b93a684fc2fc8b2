/**
 * The kernel half of the fast path: a VXLAN device on the node bridge and the forwarding
 * entries that steer frames to it. Entries are applied in one `bridge -batch` so a peer with a
 * hundred pods costs one process start, and `-force` so that removing an entry the kernel
 * already dropped (a device that went away) does not stop the rest of the batch.
 */
import { ip, ipJson, run } from "./exec.ts";

export interface VxlanOptions {
  vni: number;
  port: number;
  /** Underlay address to send from (the device also binds its socket to it). */
  local?: string;
  mtu: number;
  bridge: string;
  fresh?: boolean;
}

/**
 * Creates the VXLAN device (or adopts an identical one) and enslaves it to the bridge. With
 * `fresh`, an existing device is replaced, which drops every forwarding entry a previous run
 * (perhaps killed before it could clean up) left on it.
 */
export async function ensureVxlan(name: string, options: VxlanOptions): Promise<void> {
  if (options.fresh) await ip(["link", "del", name]).catch(() => {});
  const existing = await ipJson<{ linkinfo?: { info_data?: { id?: number; port?: number } } }>([
    "-d",
    "link",
    "show",
    "dev",
    name,
  ]).catch(() => []);
  const data = existing[0]?.linkinfo?.info_data;
  if (existing.length && (data?.id !== options.vni || data?.port !== options.port)) {
    await ip(["link", "del", name]);
  }
  if (!existing.length || data?.id !== options.vni || data?.port !== options.port) {
    const args = ["link", "add", name, "type", "vxlan", "id", String(options.vni)];
    args.push("dstport", String(options.port), "nolearning", "udpcsum");
    if (options.local) args.push("local", options.local);
    await ip(args);
  }
  await ip(["link", "set", name, "mtu", String(options.mtu), "master", options.bridge, "up"]);
  await setBridgePort(name, { learning: false, isolated: true });
}

export interface BridgePortOptions {
  learning?: boolean;
  /** Isolated ports never forward to each other: keeps VXLAN and TAP from looping frames. */
  isolated?: boolean;
}

export async function setBridgePort(name: string, options: BridgePortOptions): Promise<void> {
  const args = ["bridge", "link", "set", "dev", name];
  if (options.learning !== undefined) args.push("learning", options.learning ? "on" : "off");
  if (options.isolated !== undefined) args.push("isolated", options.isolated ? "on" : "off");
  await run(args);
}

export interface FdbLine {
  mac: string;
  device: string;
  master: boolean;
  destination?: string;
  port?: number;
}

function describe(entry: FdbLine): string {
  let text = `${entry.mac} dev ${entry.device}`;
  if (entry.master) return `${text} master`;
  if (entry.destination) text += ` dst ${entry.destination}`;
  if (entry.port) text += ` port ${entry.port}`;
  return `${text} self`;
}

/** Applies removals then additions; returns the stderr lines of entries the kernel refused. */
export async function applyFdb(changes: { remove: FdbLine[]; add: FdbLine[] }): Promise<string[]> {
  const lines = changes.remove.map((e) => `fdb del ${describe(e)}`);
  for (const entry of changes.add) {
    const flood = /^00(:00){5}$/.test(entry.mac);
    const verb = flood ? "append" : "replace";
    lines.push(`fdb ${verb} ${describe(entry)} ${entry.master ? "static" : "permanent"}`);
  }
  if (lines.length === 0) return [];
  const result = await run(["bridge", "-force", "-batch", "-"], {
    stdin: lines.join("\n") + "\n",
    allowFailure: true,
  });
  // Deleting an entry that is already gone is the normal case after a device went away.
  return result.stderr.split("\n").filter((line) =>
    line.trim() && !/No such file|Cannot find device|Command failed/.test(line)
  );
}

export interface FdbRow {
  mac: string;
  ifname?: string;
  dst?: string;
  master?: string;
  flags?: string[];
  state?: string;
}

export async function listFdb(device: string): Promise<FdbRow[]> {
  const out = (await run(["bridge", "-j", "fdb", "show", "dev", device])).stdout;
  return out.trim() ? JSON.parse(out) as FdbRow[] : [];
}
