/**
 * The agent's recent log lines, kept in memory for `weft report`: a fixed number of lines,
 * each cut to a fixed length, so a chatty failure loop costs a bounded amount of memory and
 * the report stays small. Oldest lines go first.
 */

export interface LogLine {
  /** ISO 8601. */
  time: string;
  message: string;
}

export interface LogBufferOptions {
  /** Lines kept (default 500). */
  lines?: number;
  /** Characters kept of each line (default 1000); longer lines end in "…". */
  lineLength?: number;
  now?: () => number;
}

export class LogBuffer {
  readonly #lines: LogLine[] = [];
  readonly #capacity: number;
  readonly #lineLength: number;
  readonly #now: () => number;
  #next = 0;
  #dropped = 0;

  constructor(options: LogBufferOptions = {}) {
    this.#capacity = options.lines ?? 500;
    this.#lineLength = options.lineLength ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  push(message: string): void {
    const text = message.length > this.#lineLength
      ? message.slice(0, this.#lineLength - 1) + "…"
      : message;
    const line = { time: new Date(this.#now()).toISOString(), message: text };
    if (this.#lines.length < this.#capacity) {
      this.#lines.push(line);
      return;
    }
    // a ring: overwrite the oldest in place instead of shifting the array
    this.#lines[this.#next] = line;
    this.#next = (this.#next + 1) % this.#capacity;
    this.#dropped++;
  }

  /** The kept lines, oldest first, and how many older ones were dropped. */
  read(): { lines: LogLine[]; dropped: number } {
    const lines = [...this.#lines.slice(this.#next), ...this.#lines.slice(0, this.#next)];
    return { lines, dropped: this.#dropped };
  }
}
