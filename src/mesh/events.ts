/** Listeners of the mesh's peer events; a failing listener is logged and does not stop others. */
import type { MeshEvent, PeerStatus } from "./types.ts";

export class PeerEvents {
  #listeners = new Map<MeshEvent, Array<(peer: PeerStatus) => void>>();
  #log: (message: string) => void;

  constructor(options: { log(message: string): void }) {
    this.#log = options.log;
  }

  on(event: MeshEvent, handler: (peer: PeerStatus) => void): void {
    const list = this.#listeners.get(event) ?? [];
    list.push(handler);
    this.#listeners.set(event, list);
  }

  /** Calls the listeners of `event`; `status` is built only if there are any. */
  emit(event: MeshEvent, status: () => PeerStatus): void {
    const handlers = this.#listeners.get(event);
    if (!handlers) return;
    const peer = status();
    for (const handler of handlers) {
      try {
        handler(peer);
      } catch (error) {
        this.#log(`${event} handler failed: ${(error as Error).message}`);
      }
    }
  }
}
