/**
 * The fast path's kernel objects: the VXLAN device on the bridge, and the forwarding entries
 * that steer each remote MAC to the port of its peer's current path.
 *
 * The entries are a pure function of the peers (fdb_plan.ts); this module only applies the
 * difference from what it applied last, one `bridge -batch` per change, strictly in order: a
 * path switch computed while an earlier batch is still running must not be overtaken by it,
 * or the older plan would win. The device is always created fresh, so the bookkeeping starts
 * empty with the device and no entry left by a killed agent survives a restart.
 */
import { ip } from "../net/exec.ts";
import { applyFdb, ensureVxlan } from "../net/vxlan.ts";
import { diffFdb, type FdbEntry, planFdb, type PlannedPeer } from "./fdb_plan.ts";

export interface VxlanDeviceOptions {
  name: string;
  vni: number;
  /** UDP port the device listens on and sends to (6784). */
  port: number;
  bridge: string;
}

/** The kernel VXLAN device (fastdp). */
export class VxlanDevice {
  readonly name: string;
  #options: VxlanDeviceOptions;
  #exists = false;

  constructor(options: VxlanDeviceOptions) {
    this.name = options.name;
    this.#options = options;
  }

  get exists(): boolean {
    return this.#exists;
  }

  /** (Re)creates the device, empty, on the bridge; `local` pins the underlay source address. */
  async create(options: { local?: string; mtu: number }): Promise<void> {
    await ensureVxlan(this.name, {
      vni: this.#options.vni,
      port: this.#options.port,
      local: options.local,
      mtu: options.mtu,
      bridge: this.#options.bridge,
      fresh: true,
    });
    this.#exists = true;
  }

  /** Deletes the device (and with it every entry it held); fine when it is gone already. */
  async remove(): Promise<void> {
    this.#exists = false;
    await ip(["link", "del", this.name]).catch(() => {});
  }
}

/**
 * The bridge's entries towards both overlay ports, and the VXLAN device's own entries. Entries
 * on the VXLAN device are left out while it does not exist (a sleeve-only node).
 */
export class ForwardingEntries {
  #vxlan: VxlanDevice;
  #tap?: string;
  #vxlanPort: number;
  #applied: FdbEntry[] = [];
  #queue: Promise<void> = Promise.resolve();
  #log: (message: string) => void;

  constructor(
    vxlan: VxlanDevice,
    options: { tap?: string; vxlanPort: number; log: (message: string) => void },
  ) {
    this.#vxlan = vxlan;
    this.#tap = options.tap;
    this.#vxlanPort = options.vxlanPort;
    this.#log = options.log;
  }

  /** Brings the kernel's entries in line with `peers`; calls run one after another. */
  sync(peers: () => PlannedPeer[]): Promise<void> {
    const run = async () => {
      // The plan is taken when this pass runs, not when it was queued: the latest state wins.
      const desired = planFdb(peers(), {
        vxlan: this.#vxlan.name,
        tap: this.#tap,
        vxlanPort: this.#vxlanPort,
      });
      const changes = diffFdb(this.#applied, desired);
      if (!this.#vxlan.exists) {
        changes.add = changes.add.filter((e) => e.device !== this.#vxlan.name);
      }
      const refused = await applyFdb(changes);
      for (const line of refused) this.#log(`fdb: ${line}`);
      this.#applied = desired;
    };
    this.#queue = this.#queue.then(run, run);
    return this.#queue;
  }
}
