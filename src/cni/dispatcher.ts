/**
 * The plugin's edge: read env and stdin, pick the verb's handler from one table, print its
 * result, and turn any failure into the spec's error JSON exactly once. Env, stdin and stdout
 * are parameters, so the whole edge runs in unit tests without a process or a kernel.
 */

import { type AgentApi, HttpAgentClient } from "./agent_client.ts";
import { add } from "./add.ts";
import { check } from "./check.ts";
import { parseEnvironment, peekVersion } from "./config.ts";
import { type Handler, HandlerContext } from "./context.ts";
import { del } from "./del.ts";
import { CniCode, CniError, toCniError } from "./errors.ts";
import { gc } from "./gc.ts";
import { linuxKernel, type PodKernel } from "./kernel.ts";
import {
  assertVerbAllowed,
  type CniCommand,
  isSupportedVersion,
  LATEST_VERSION,
  versionResult,
} from "./spec.ts";
import { status } from "./status.ts";

/**
 * Where the plugin reads and writes: `Deno.stdin` and `Deno.stdout` in the real plugin (their
 * plain `read`/`write`, not their streams, whose first use loads extra runtime modules), a
 * test's buffers otherwise.
 */
export interface PluginIo {
  env: Record<string, string>;
  stdin: { read(p: Uint8Array): Promise<number | null> };
  stdout: { write(p: Uint8Array): Promise<number> };
}

export interface PluginOptions {
  /** Builds the agent client for the config's address (tests pass an in-memory agent). */
  agentFor?: (address: string) => AgentApi;
  kernel?: PodKernel;
}

// deno-lint-ignore require-await
async function version(context: HandlerContext): Promise<object> {
  return versionResult(peekVersion(context.stdin));
}

const HANDLERS: Record<CniCommand, Handler> = {
  VERSION: version,
  ADD: add,
  DEL: del,
  CHECK: check,
  STATUS: status,
  GC: gc,
};

/**
 * The most config text the plugin reads. A real network config with a long chain's prevResult
 * is a few KiB; the cap keeps a runaway or hostile writer from making the plugin buffer
 * without bound (the runtime starts one plugin per pod, many at once).
 */
export const MAX_STDIN_BYTES = 1024 * 1024;

/** Runs one plugin invocation and returns the exit code (0 success, 1 CNI error). */
export async function runPlugin(io: PluginIo, options: PluginOptions = {}): Promise<number> {
  let replyVersion: string = LATEST_VERSION;
  try {
    const stdin = await readStdin(io.stdin, MAX_STDIN_BYTES);
    const requested = peekVersion(stdin);
    if (isSupportedVersion(requested)) replyVersion = requested;
    const env = parseEnvironment(io.env);
    const context = new HandlerContext(env, {
      stdin,
      kernel: options.kernel ?? linuxKernel,
      agentFor: options.agentFor ?? ((address) => new HttpAgentClient(address)),
    });
    if (env.command !== "VERSION") assertVerbAllowed(env.command, context.config.cniVersion);
    const output = await HANDLERS[env.command](context);
    if (output !== undefined) await writeJson(io.stdout, output);
    return 0;
  } catch (error) {
    await writeJson(io.stdout, toCniError(error).toJson(replyVersion));
    return 1;
  }
}

/** Reads stdin as text, refusing (code 6) once it passes `limit` bytes, before buffering more. */
async function readStdin(stdin: PluginIo["stdin"], limit: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const buffer = new Uint8Array(64 * 1024);
    const n = await stdin.read(buffer);
    if (n === null) break;
    total += n;
    if (total > limit) {
      throw new CniError(
        CniCode.decodeFailure,
        `Network config on stdin is larger than ${limit} bytes: refusing to read it`,
      );
    }
    chunks.push(buffer.subarray(0, n));
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}

async function writeJson(stdout: PluginIo["stdout"], value: unknown): Promise<void> {
  let bytes = new TextEncoder().encode(JSON.stringify(value) + "\n");
  while (bytes.length) {
    const written = await stdout.write(bytes);
    bytes = bytes.subarray(written);
  }
}
