/**
 * Time as a value passed in, so the same mesh code runs on the wall clock in the agent and in
 * simulated time in tests and the simulation bench (habit 4: time and randomness are passed in).
 */

/** An opaque timer handle; only meaningful to the clock that made it. */
export type TimerId = unknown;

/** The little the mesh needs from time: a reading in milliseconds and one-shot timers. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** The wall clock: `Date.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as number),
};

interface PendingTimer {
  at: number;
  seq: number;
  id: number;
  fn: () => void;
}

/**
 * A discrete-event clock: timers run in (time, creation order) order when the test or bench
 * advances it, so a thousand peers "wait" seconds in milliseconds of real time and every run is
 * reproducible. Callbacks run synchronously; the mesh never awaits on this path.
 */
export class SimClock implements Clock {
  #now: number;
  #seq = 0;
  #heap: PendingTimer[] = [];
  #cancelled = new Set<unknown>();

  constructor(options: { start?: number } = {}) {
    this.#now = options.start ?? 1_700_000_000_000;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const id = ++this.#seq;
    this.#push({ at: this.#now + Math.max(0, ms), seq: id, id, fn });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.#cancelled.add(id);
  }

  /** Number of timers still queued (cancelled ones included until they surface). */
  get pending(): number {
    return this.#heap.length;
  }

  /** Runs every timer due up to `now + ms`, in order, then sets the time to `now + ms`. */
  advance(ms: number): void {
    this.runUntil(this.#now + ms);
  }

  /** Runs timers due at or before `time`; stops early and returns true once `until()` holds. */
  runUntil(time: number, until?: () => boolean): boolean {
    while (this.#heap.length > 0 && this.#heap[0].at <= time) {
      const timer = this.#pop();
      if (this.#cancelled.delete(timer.id)) continue;
      this.#now = Math.max(this.#now, timer.at);
      timer.fn();
      if (until?.()) return true;
    }
    this.#now = Math.max(this.#now, time);
    return until?.() ?? false;
  }

  #less(a: PendingTimer, b: PendingTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(timer: PendingTimer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  #pop(): PendingTimer {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < heap.length && this.#less(heap[l], heap[m])) m = l;
        if (r < heap.length && this.#less(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  }
}
