/**
 * Work inside another network namespace, always in a child process.
 *
 * `setns()` applies to one thread, and the JS thread is shared by everything in the program, so
 * switching it would silently move unrelated sockets and commands into the pod. Instead every
 * command that must run inside a namespace is started through `nsenter --net=PATH`, which
 * accepts any namespace file (a bind mount under /var/run/netns or /proc/PID/ns/net), unlike
 * `ip -n`, which only knows names. Commands are batched (`ip -batch -`) so a whole pod setup
 * costs one process.
 */

import { CommandError, run } from "./exec.ts";
import { namespaceKind } from "./netlink.ts";

/** A failed `ip -batch` run: `line` (1-based) tells which command stopped the batch. */
export class IpBatchError extends CommandError {
  readonly line: number | undefined;
  readonly failedCommand: string | undefined;

  /** `lines` is the batch that was fed to the command that failed. */
  constructor(failure: CommandError, lines: readonly string[]) {
    super(failure.command, failure.code, failure.stderr);
    const { command, stderr } = failure;
    this.name = "IpBatchError";
    const match = /Command failed -:(\d+)/.exec(stderr);
    this.line = match ? Number(match[1]) : undefined;
    this.failedCommand = this.line === undefined ? undefined : lines[this.line - 1];
    if (this.failedCommand !== undefined) {
      this.message = `Command "ip ${this.failedCommand}"${
        command[0] === "nsenter" ? ` in netns "${command[1].slice("--net=".length)}"` : ""
      } failed: ${firstErrorLine(stderr)}`;
    }
  }

  /** True when the kernel refused because the object already exists (EEXIST). */
  get alreadyExists(): boolean {
    return /File exists/.test(this.stderr);
  }
}

/** Thrown when a namespace path does not exist or is not a namespace we may enter. */
export class NetnsNotFoundError extends Error {
  constructor(readonly path: string, options: { cause?: unknown } = {}) {
    super(`Cannot open netns "${path}": no such namespace`, options);
    this.name = "NetnsNotFoundError";
  }
}

export interface NetnsOptions {
  /** Path of the network namespace to run in; the current namespace when absent. */
  netns?: string;
}

/** The argv that runs `args` in `netns` (or here when no netns is given). */
export function commandInNetns(args: string[], options: NetnsOptions = {}): string[] {
  return options.netns === undefined ? args : ["nsenter", `--net=${options.netns}`, ...args];
}

/**
 * Runs `ip -batch -` with `lines`, inside `options.netns` when given. The batch stops at the
 * first failing line; callers that made something on an earlier line undo it themselves, using
 * `IpBatchError.line` to know how far it got.
 */
export async function ipBatch(lines: readonly string[], options: NetnsOptions = {}): Promise<void> {
  const command = commandInNetns(["ip", "-batch", "-"], options);
  const result = await run(command, { stdin: lines.join("\n") + "\n", allowFailure: true });
  if (result.code === 0) return;
  if (options.netns !== undefined && /nsenter: cannot open/.test(result.stderr)) {
    throw new NetnsNotFoundError(options.netns, {
      cause: new CommandError(command, result.code, result.stderr),
    });
  }
  throw new IpBatchError(new CommandError(command, result.code, result.stderr), lines);
}

/**
 * Runs several `ip -json` queries in one process and returns one parsed list per query. A
 * query for a missing device yields `undefined` in its slot rather than failing the rest.
 */
export async function ipJsonQueries(
  queries: readonly string[],
  options: NetnsOptions = {},
): Promise<(unknown[] | undefined)[]> {
  // One process per query keeps a missing device from hiding the answers after it; the
  // queries are few and only used off the hot path (CHECK, tests), so clarity wins here.
  return await Promise.all(queries.map(async (query) => {
    const command = commandInNetns(["ip", "-json", ...query.split(/\s+/)], options);
    const result = await run(command, { allowFailure: true });
    if (result.code === 0) return result.stdout.trim() ? JSON.parse(result.stdout) : [];
    if (options.netns !== undefined && /nsenter: cannot open/.test(result.stderr)) {
      throw new NetnsNotFoundError(options.netns);
    }
    if (/does not exist|Cannot find device/.test(result.stderr)) return undefined;
    throw new CommandError(command, result.code, result.stderr);
  }));
}

/** True when `path` exists; a cheap test before starting any process against it. */
export async function netnsExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return false;
    }
    throw error;
  }
}

/**
 * What a namespace path names, for refusing bad CNI_NETNS values before any kernel work:
 * - `missing`: nothing at the path;
 * - `not-network`: something that is not a network namespace (`what` says what: typically the
 *   empty regular file a namespace was bind-mounted on and no longer is);
 * - `current`: the network namespace this process runs in (the node's own, e.g. /proc/1/ns/net);
 * - `other`: another network namespace, the one case a pod can be attached to.
 */
export type NetnsInspection =
  | { kind: "missing" | "current" | "other" }
  | { kind: "not-network"; what: string };

/** Inspects `path` (see `NetnsInspection`): stat, and the kernel's own answer when FFI is here. */
export async function inspectNetns(path: string): Promise<NetnsInspection> {
  let target: Deno.FileInfo;
  try {
    target = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      return { kind: "missing" };
    }
    throw error;
  }
  // the calling thread's namespace: what this process would attach the pod's peer from
  const own = await Deno.stat("/proc/thread-self/ns/net");
  if (target.dev === own.dev && target.ino === own.ino) return { kind: "current" };
  // every namespace file lives on the one nsfs instance, so another device is no namespace
  if (target.dev !== own.dev) return { kind: "not-network", what: describeFile(target) };
  const kind = namespaceKind(path);
  if (kind === "none") return { kind: "not-network", what: describeFile(target) };
  if (kind === "other") return { kind: "not-network", what: "a namespace of another type" };
  return { kind: "other" };
}

function describeFile(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFile) return info.size === 0 ? "an empty regular file" : "a regular file";
  return "not a namespace file";
}

function firstErrorLine(stderr: string): string {
  return stderr.split("\n").find((line) => line.trim() && !line.startsWith("Command failed")) ??
    "no output";
}
