/**
 * A sleeve worker thread's body: blocks in poll() on one fd (the TAP, or the sleeve socket) and
 * runs the sleeve engine on what it drains. It stops when the control word's STOP slot is set,
 * and picks up a new configuration when the GENERATION slot moves past the one it holds.
 *
 * Kept apart from the tiny entry module (sleeve_worker.ts) so that importing the constants does
 * not turn the importing thread into a worker, and so a bundled build can start workers from its
 * own file and call `installSleeveWorker()` when `self.name === SLEEVE_WORKER_NAME`.
 */
import { TapDevice } from "../net/tap.ts";
import { UdpSocket } from "../net/udp.ts";
import { SleeveEngine } from "./sleeve.ts";
import type { SleeveConfig } from "./sleeve_types.ts";

export const SLEEVE_WORKER_NAME = "weft-sleeve";
export const CONTROL_STOP = 0;
export const CONTROL_GENERATION = 1;

export interface WorkerInit {
  type: "init";
  role: "tap" | "socket";
  tapName: string;
  tapFd: number;
  udpFd: number;
  control: SharedArrayBuffer;
  config: SleeveConfig;
}

const POLL_MS = 100;
const COUNTERS_EVERY_MS = 500;

let engine: SleeveEngine | undefined;

interface WorkerScope {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

// In a worker `self` is the worker scope; typed locally so this module type-checks anywhere.
const scope = globalThis as unknown as WorkerScope;

function yieldToMessages(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function run(init: WorkerInit): Promise<void> {
  const control = new Int32Array(init.control);
  const udp = UdpSocket.fromFd(init.udpFd);
  const tap = init.tapFd >= 0 ? TapDevice.fromFd(init.tapName, init.tapFd) : undefined;
  const current = new SleeveEngine(udp, { tap, emit: (event) => scope.postMessage(event) });
  current.configure(init.config);
  engine = current;
  const scratch = new Uint8Array(65536 + 1024);
  let lastReport = performance.now();
  while (Atomics.load(control, CONTROL_STOP) === 0) {
    if (Atomics.load(control, CONTROL_GENERATION) > current.generation) {
      await yieldToMessages();
      continue;
    }
    try {
      if (init.role === "tap") {
        if (tap?.waitReadable(POLL_MS)) current.pumpTap(scratch);
      } else if (udp.waitReadable(POLL_MS)) {
        current.pumpSocket(scratch);
      }
    } catch (error) {
      // A dead pump with live heartbeats would report a healthy path that carries nothing, so
      // keep pumping; the error is reported and the next wake-up tries again.
      scope.postMessage({ type: "error", error: String(error) });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const now = performance.now();
    if (now - lastReport >= COUNTERS_EVERY_MS) {
      lastReport = now;
      scope.postMessage({ type: "counters", counters: current.takeCounters() });
    }
  }
  scope.postMessage({ type: "counters", counters: current.takeCounters() });
  scope.postMessage({ type: "stopped" });
}

/** Makes the current thread a sleeve worker: call once, inside a Worker. */
export function installSleeveWorker(): void {
  scope.onmessage = (
    event: MessageEvent<WorkerInit | { type: "config"; config: SleeveConfig }>,
  ) => {
    const message = event.data;
    if (message.type === "init") {
      run(message).catch((error) => scope.postMessage({ type: "error", error: String(error) }));
    } else if (message.type === "config") {
      engine?.configure(message.config);
    }
  };
}
