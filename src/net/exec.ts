/**
 * Running the kernel's own tools (`ip`, `bridge`, `iptables`, `sysctl`).
 *
 * We drive the kernel through iproute2 and iptables rather than a netlink library: they are on
 * every node, their behaviour is what operators already debug with, and a batch of commands
 * costs one process start. Every failure becomes a `CommandError` that carries the command
 * line and the tool's own stderr, because "RTNETLINK answers: File exists" is only useful
 * next to the command that produced it.
 */

export class CommandError extends Error {
  constructor(
    readonly command: string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`Command "${command.join(" ")}" failed (exit ${code}): ${stderr.trim() || "no output"}`);
    this.name = "CommandError";
  }
}

export interface RunOptions {
  /** Text written to the command's stdin (e.g. an `ip -batch -` script). */
  stdin?: string;
  /** Return the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

export async function run(command: string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, ...args] = command;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CommandError(command, 127, `${program}: not found on PATH`);
    }
    throw error;
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const result = {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
  if (result.code !== 0 && !options.allowFailure) {
    throw new CommandError(command, result.code, result.stderr || result.stdout);
  }
  return result;
}

/** Runs `ip` with the given arguments and returns stdout. */
export async function ip(args: string[], options: RunOptions = {}): Promise<string> {
  return (await run(["ip", ...args], options)).stdout;
}

/** Runs `ip -json ...` and parses the answer (iproute2 prints nothing for an empty list). */
export async function ipJson<T>(args: string[]): Promise<T[]> {
  const out = await ip(["-json", ...args]);
  return out.trim() ? JSON.parse(out) as T[] : [];
}
