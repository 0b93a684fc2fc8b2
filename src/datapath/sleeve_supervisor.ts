/**
 * Supervision of the userspace path (sleeve): its TAP and UDP socket, the engine on the main
 * thread (heartbeats and probes), and the two worker threads that move frames (one drains the
 * TAP, one the socket; see sleeve_thread.ts for why threads).
 *
 * The threads are two isolates, most of the agent's memory, and a cluster on VXLAN needs none:
 * they run only while the userspace path has work. Demand comes from the switch (a peer whose
 * frames take the sleeve or a relay) and from the socket (pod traffic arriving for us or to
 * relay, which a peer may send while our own choice for it is VXLAN); the threads stop after
 * `idleMs` without either. Meanwhile the main thread reads the socket on a short timer, since
 * heartbeats, probes and their answers arrive there whether or not frames do; while idle the
 * TAP is down, so the bridge queues nothing for a reader that is not there. Threads start
 * before any forwarding entry points at the TAP, and stop only after none does.
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
  onAnswered: (event: Extract<SleeveEvent, { type: "answered" }>) => void;
  log: (message: string) => void;
  now: () => number;
  /** The threads stop after this long without demand (default 30 s: no start-stop flapping). */
  idleMs?: number;
  /** How often the main thread reads the socket while no thread does (default 50 ms). */
  pollMs?: number;
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
  /** Serialises thread starts and stops (each changes the TAP's state). */
  #transition: Promise<void> = Promise.resolve();
  #lastDemand = -Infinity;
  #wanted = false;
  #poller?: ReturnType<typeof setInterval>;
  #scratch?: Uint8Array;

  constructor(options: SleeveSupervisorOptions) {
    this.#options = options;
  }

  /** True while the worker threads run. */
  get threadsRunning(): boolean {
    return this.#running;
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
        // Down until the threads run (see the notes at the top).
        const mtu = String(options.podMtu);
        await ip(["link", "set", o.tapDevice, "mtu", mtu, "master", o.bridge, "down"]);
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
    this.setSegmentBytes(options.segmentBytes);
    this.#engine = new SleeveEngine(this.#udp, {
      reportTraffic: true,
      emit: (event) => this.#onEvent(event),
    });
    this.#startPolling();
  }

  #onEvent(event: SleeveEvent): void {
    if (event.type === "answered") return this.#options.onAnswered(event);
    // Pod traffic reached the main thread: the workers must carry it.
    this.#lastDemand = this.#options.now();
    this.demand(this.#wanted).catch((e) => this.#options.log(`sleeve threads: ${e}`));
  }

  /** The main thread reads the socket while no worker does. */
  #startPolling(): void {
    if (this.#poller !== undefined || !this.#engine) return;
    this.#scratch ??= new Uint8Array(65536 + 1024);
    this.#poller = setInterval(() => {
      try {
        this.#engine?.pumpSocket(this.#scratch!);
      } catch (error) {
        this.#options.log(`sleeve socket: ${error}`);
      }
    }, this.#options.pollMs ?? 50);
  }

  #stopPolling(): void {
    clearInterval(this.#poller);
    this.#poller = undefined;
  }

  /**
   * Says whether the switch has a peer on the userspace path; starts the threads at once when
   * there is work, stops them after `idleMs` without any. Resolves once the threads (and the
   * TAP) are in the state it decided.
   */
  demand(wanted: boolean): Promise<void> {
    const now = this.#options.now();
    this.#wanted = wanted;
    if (wanted) this.#lastDemand = now;
    const run = async () => {
      const busy = this.#wanted || this.#options.now() - this.#lastDemand < this.#idleMs;
      if (busy && !this.#running && this.#config) await this.#startThreads();
      else if (!busy && this.#running) {
        this.#options.log(`userspace path idle for ${this.#idleMs / 1000}s: stopping its threads`);
        await this.#stopThreads();
      }
    };
    this.#transition = this.#transition.then(run, run);
    return this.#transition;
  }

  get #idleMs(): number {
    return this.#options.idleMs ?? 30_000;
  }

  /**
   * Sets the largest datagram that crosses our underlay unfragmented (UDP GSO's segment size);
   * it changes once, when the underlay becomes known after start. Applies at the next
   * configure().
   */
  setSegmentBytes(segmentBytes: number): void {
    if (!this.#udp) return;
    const offloads = this.#udp.enableOffloads(segmentBytes);
    this.#gsoBytes = offloads.gso ? segmentBytes : 0;
    if (!offloads.gso || !offloads.gro) {
      this.#options.log(
        `UDP offloads refused (gso ${offloads.gso}, gro ${offloads.gro}): sleeve is slower`,
      );
    }
  }

  /** Takes a new configuration; engines and threads get it only when it differs. */
  configure(settings: SleeveSettings): void {
    if (!this.#engine) return;
    const fingerprint = this.#fingerprint(settings);
    const same = fingerprint === this.#published && this.#config?.gsoBytes === this.#gsoBytes;
    if (this.#config && same) return;
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

  /** What identifies a configuration: keys are named by their counter (a new key, a new one). */
  #fingerprint(settings: SleeveSettings): string {
    return JSON.stringify(settings.peers.map((p) => ({
      ...p,
      keys: undefined,
      window: undefined,
      counter: p.counter ? this.#keyEpoch(p.counter) : undefined,
    })));
  }

  #epochs = new WeakMap<SharedArrayBuffer, number>();
  #nextEpoch = 1;
  #keyEpoch(counter: SharedArrayBuffer): number {
    let epoch = this.#epochs.get(counter);
    if (epoch === undefined) {
      epoch = this.#nextEpoch++;
      this.#epochs.set(counter, epoch);
    }
    return epoch;
  }

  /** Starts the two worker threads and brings the TAP up. */
  async #startThreads(): Promise<void> {
    this.checkWorkerModule();
    this.#running = true;
    this.#stopPolling();
    this.#control = new Int32Array(new SharedArrayBuffer(8));
    Atomics.store(this.#control, CONTROL_GENERATION, this.#config!.generation);
    this.#startWorker("socket");
    if (this.#tap) {
      this.#startWorker("tap");
      await ip(["link", "set", this.#options.tapDevice, "up"]);
    }
    this.#options.log("userspace path in use: its threads run");
  }

  /** Stops the threads; never closes fds under a thread that may still use them. */
  async #stopThreads(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#tap) await ip(["link", "set", this.#options.tapDevice, "down"]).catch(() => {});
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
    this.#startPolling();
  }

  /** Stops the threads and closes the TAP (which deletes it) and the socket. */
  async close(): Promise<void> {
    this.#wanted = false;
    this.#lastDemand = -Infinity;
    await this.#transition;
    await this.#stopThreads();
    this.#stopPolling();
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
      if (message.type === "answered") o.onAnswered(message);
      else if (message.type === "counters") {
        const counters = message.counters as SleeveCounters;
        addCounters(this.#counters, counters);
        // Frames moving keep the threads: the demand the switch sees is not all of it.
        if (counters.framesToTap > 0 || counters.relayed > 0) {
          this.#lastDemand = this.#options.now();
        }
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
