/**
 * Supervision of the userspace path (sleeve): its TAP and UDP socket, the engine on the main
 * thread (heartbeats and probes), and the two worker threads that move frames (one drains the
 * TAP, one the socket; see sleeve_thread.ts for why threads).
 *
 * Configuration flows one way: the switch (kernel.ts) hands over a complete SleeveConfig, this
 * module numbers it (a generation), gives it to its own engine and posts it to the threads,
 * which pick it up between two drains. Unchanged configurations are not re-sent, so a steady
 * cluster posts nothing. A thread that crashes is replaced with back-off, because a path whose
 * heartbeats are answered by the main thread while no thread moves frames would look healthy
 * and carry nothing.
 */
import { ip } from "../net/exec.ts";
import { TapDevice, VNET_HEADER_BYTES } from "../net/tap.ts";
import { UdpSocket } from "../net/udp.ts";
import { setBridgePort } from "../net/vxlan.ts";
import { SleeveEngine } from "./sleeve.ts";
import {
  addCounters,
  emptyCounters,
  type SleeveConfig,
  type SleeveCounters,
  type SleeveEvent,
} from "./sleeve_types.ts";
import {
  CONTROL_GENERATION,
  CONTROL_STOP,
  SLEEVE_WORKER_NAME,
  type WorkerInit,
} from "./sleeve_thread.ts";
import { DatapathStateError } from "./types.ts";
import { MAX_BODY, RECORD_HEADER_BYTES } from "./wire.ts";

export interface SleeveSupervisorOptions {
  /** Module the worker threads run (see KernelDatapathOptions.workerUrl). */
  workerUrl: string;
  tapDevice: string;
  bridge: string;
  udpPort: number;
  onAnswered: (event: SleeveEvent) => void;
  log: (message: string) => void;
}

/** A configuration without its generation: the supervisor numbers them. */
export type SleeveSettings = Omit<SleeveConfig, "generation" | "gsoBytes">;

type Role = WorkerInit["role"];

export class SleeveSupervisor {
  #options: SleeveSupervisorOptions;
  #udp?: UdpSocket;
  #tap?: TapDevice;
  #engine?: SleeveEngine;
  #gsoBytes = 0;
  #workers: Worker[] = [];
  #stopped: Promise<void>[] = [];
  #control = new Int32Array(new SharedArrayBuffer(8));
  #generation = 0;
  #config?: SleeveConfig;
  #published = "";
  #counters = emptyCounters();
  #restarts = new Map<Role, number>();
  #restartTimers = new Set<ReturnType<typeof setTimeout>>();
  #running = false;

  constructor(options: SleeveSupervisorOptions) {
    this.#options = options;
  }

  /** The engine on this thread, for heartbeats and probes; set between open() and close(). */
  get engine(): SleeveEngine | undefined {
    return this.#engine;
  }

  /**
   * Opens the sleeve socket and, when `tap` is set, the TAP on the bridge with `podMtu`.
   * `segmentBytes` is the largest datagram that crosses our underlay unfragmented. On failure
   * nothing stays open.
   */
  async open(options: { tap: boolean; podMtu: number; segmentBytes: number }): Promise<void> {
    const o = this.#options;
    try {
      if (options.tap) {
        this.#tap = TapDevice.open(o.tapDevice);
        const mtu = String(options.podMtu);
        await ip(["link", "set", o.tapDevice, "mtu", mtu, "master", o.bridge, "up"]);
        await setBridgePort(o.tapDevice, { learning: false, isolated: true });
        // A superframe must fit one sleeve datagram with its record and vnet headers; anything
        // bigger (BIG TCP) is segmented by the kernel before it reaches us instead of dropped.
        const limit = String(MAX_BODY - RECORD_HEADER_BYTES - VNET_HEADER_BYTES - 1);
        await ip(["link", "set", o.tapDevice, "gso_max_size", limit]).catch(() => {});
        await ip(["link", "set", o.tapDevice, "gso_ipv4_max_size", limit]).catch(() => {});
      }
      this.#udp = UdpSocket.bind(o.udpPort);
    } catch (error) {
      this.#closeDevices();
      throw error;
    }
    const offloads = this.#udp.enableOffloads(options.segmentBytes);
    this.#gsoBytes = offloads.gso ? options.segmentBytes : 0;
    if (!offloads.gso || !offloads.gro) {
      o.log(`UDP offloads refused (gso ${offloads.gso}, gro ${offloads.gro}): sleeve is slower`);
    }
    this.#engine = new SleeveEngine(this.#udp);
  }

  /** Takes a new configuration; engines and threads get it only when it differs. */
  configure(settings: SleeveSettings, fingerprint: string): void {
    if (!this.#engine) return;
    if (this.#config && fingerprint === this.#published) return;
    this.#published = fingerprint;
    const config = { ...settings, gsoBytes: this.#gsoBytes, generation: ++this.#generation };
    this.#config = config;
    this.#engine.configure(config);
    for (const worker of this.#workers) worker.postMessage({ type: "config", config });
    Atomics.store(this.#control, CONTROL_GENERATION, config.generation);
  }

  /** Throws when there is no module to start the threads from: better at start than later. */
  checkWorkerModule(): void {
    if (this.#options.workerUrl) return;
    // Guessing the main module would run the whole program again in each worker thread.
    throw new DatapathStateError(
      `No sleeve worker module: ${new URL("./sleeve_worker.ts", import.meta.url).href} ` +
        `does not exist (a bundled build?); pass workerUrl: Deno.mainModule and call ` +
        `installSleeveWorker() from the entry when self.name === "${SLEEVE_WORKER_NAME}"`,
    );
  }

  /** Starts the two worker threads (once a configuration exists). */
  startThreads(): void {
    if (this.#running || !this.#config) return;
    this.checkWorkerModule();
    this.#running = true;
    this.#control = new Int32Array(new SharedArrayBuffer(8));
    Atomics.store(this.#control, CONTROL_GENERATION, this.#config.generation);
    this.#startWorker("socket");
    if (this.#tap) this.#startWorker("tap");
  }

  /** Stops the threads; never closes fds under a thread that may still use them. */
  async stopThreads(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    Atomics.store(this.#control, CONTROL_STOP, 1);
    // Workers notice within one poll timeout.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#stopped),
      new Promise((resolve) => timer = setTimeout(resolve, 3000)),
    ]);
    clearTimeout(timer);
    for (const worker of this.#workers) worker.terminate();
    this.#workers = [];
    this.#stopped = [];
  }

  /** Stops the threads and closes the TAP (which deletes it) and the socket. */
  async close(): Promise<void> {
    await this.stopThreads();
    this.#closeDevices();
    this.#engine = undefined;
    this.#config = undefined;
    this.#published = "";
  }

  /** Frame and datagram counts, and why frames were dropped, since open(). */
  counters(): SleeveCounters {
    if (this.#engine) addCounters(this.#counters, this.#engine.takeCounters());
    return structuredClone(this.#counters);
  }

  #closeDevices(): void {
    this.#tap?.close();
    this.#tap = undefined;
    this.#udp?.close();
    this.#udp = undefined;
  }

  #startWorker(role: Role): void {
    const o = this.#options;
    const worker = new Worker(o.workerUrl, { type: "module", name: SLEEVE_WORKER_NAME });
    let stopped!: () => void;
    this.#stopped.push(new Promise((resolve) => stopped = resolve));
    worker.onmessage = (event: MessageEvent) => {
      const message = event.data;
      if (message.type === "answered") o.onAnswered(message as SleeveEvent);
      else if (message.type === "counters") {
        addCounters(this.#counters, message.counters);
        this.#restarts.set(role, 0); // it runs: a later crash starts the back-off afresh
      } else if (message.type === "stopped") stopped();
      else if (message.type === "error") o.log(`sleeve ${role}: ${message.error}`);
    };
    worker.onerror = (event) => {
      // Never leave a path that answers heartbeats but moves no frames: start a new thread,
      // backing off so a worker that cannot even load does not spin.
      event.preventDefault();
      stopped();
      this.#workers = this.#workers.filter((w) => w !== worker);
      worker.terminate();
      const attempt = (this.#restarts.get(role) ?? 0) + 1;
      this.#restarts.set(role, attempt);
      const delay = Math.min(30_000, 250 * 2 ** attempt);
      o.log(
        `sleeve ${role} worker (${o.workerUrl}) crashed: ${event.message}; ` +
          `restarting it in ${delay} ms`,
      );
      const timer = setTimeout(() => {
        this.#restartTimers.delete(timer);
        if (this.#running) this.#startWorker(role);
      }, delay);
      this.#restartTimers.add(timer);
    };
    const init: WorkerInit = {
      type: "init",
      role,
      tapName: o.tapDevice,
      tapFd: this.#tap?.fd ?? -1,
      udpFd: this.#udp!.fd,
      control: this.#control.buffer as SharedArrayBuffer,
      config: this.#config!,
    };
    worker.postMessage(init);
    this.#workers.push(worker);
  }
}
