/**
 * A child process spoken to in JSON lines: requests on its stdin carry an `id`, answers on its
 * stdout with the same `id` settle them; lines without an `id` (events, a ready line) go to
 * `onLine`. Used for the processes tests and benchmarks run inside lab namespaces.
 */
export class JsonLinesProcess {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiting = new Map<number, (answer: Record<string, unknown>) => void>();
  /** Resolves when stdout ends (the process exited or closed it). */
  readonly ended: Promise<void>;
  #next = 1;

  constructor(
    command: string[],
    options: { onLine?: (line: Record<string, unknown>) => void } = {},
  ) {
    const child = new Deno.Command(command[0], {
      args: command.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.ended = (async () => {
      let buffer = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
          const id = line.id as number | undefined;
          if (id !== undefined && this.#waiting.has(id)) {
            this.#waiting.get(id)!(line);
            this.#waiting.delete(id);
          } else {
            options.onLine?.(line);
          }
        }
      }
    })().catch(() => {});
  }

  /** Sends `request` with a fresh `id`; resolves with the answer that carries it. */
  async call(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const answer = new Promise<Record<string, unknown>>((resolve) =>
      this.#waiting.set(id, resolve)
    );
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ ...request, id }) + "\n"));
    return await answer;
  }

  get pid(): number {
    return this.#child.pid;
  }

  async close(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // gone
    }
    await this.#child.status;
  }
}
