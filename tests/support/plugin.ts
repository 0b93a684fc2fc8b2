/**
 * Running the weft CNI plugin as a runtime does, for kernel tests and the benchmark: the
 * bundled artifact behind an executable named `weft` in a CNI bin dir, invoked with CNI_*
 * env and the config on stdin, inside a node namespace. Node and pod namespaces are made and
 * swept here, always under a caller-given prefix, so a crashed run's leftovers go at the next
 * start. The agent is started through `startAgent` only, so the tests can switch between the
 * fake agent and the real one (`WEFT_CNI_TEST_AGENT=real|fake`) in one place.
 */

import { artifact, writeWrapper } from "./artifact.ts";
import { must, sh, stopChild, sweepNamespaces, waitFor } from "./lab.ts";

export { must, sh };

const repoRoot = new URL("../../", import.meta.url).pathname;

/** The bundle of main.ts (built once per process and shared with every other test helper). */
export async function bundlePlugin(): Promise<string> {
  return (await artifact()).bundle;
}

/** Writes the `weft` launcher into `binDir` and returns its path. */
export async function installPlugin(binDir: string): Promise<string> {
  const path = `${binDir}/weft`;
  await writeWrapper(path, await bundlePlugin());
  return path;
}

export interface InvokeOptions {
  binDir: string;
  command: string;
  containerID?: string;
  /** Path of the pod namespace (CNI_NETNS); omitted from env when undefined. */
  netns?: string;
  ifname?: string;
  /** Config object (serialized) or raw stdin text. */
  config?: unknown;
  /** CNI_ARGS. */
  args?: string;
  /** CNI_PATH; defaults to binDir plus /usr/lib/cni. */
  cniPath?: string;
  /** Node namespace to run the plugin in (`ip netns exec`). */
  inNetns?: string;
  /** Variables to leave out of the environment (malformed-input tests). */
  unset?: string[];
  /** The program to run instead of `<binDir>/weft` (the reference plugins). */
  program?: string;
  /** More environment variables (e.g. WEFT_NETLINK=0 for the `ip` fallback). */
  extraEnv?: Record<string, string>;
  /**
   * Runs the plugin under this command prefix, inside the node namespace and outside the
   * cleared environment (the benchmark's GNU time: the plugin's CPU time and peak memory).
   */
  measuredBy?: string[];
}

export interface InvokeResult {
  code: number;
  // deno-lint-ignore no-explicit-any
  json: any;
  stdout: string;
  stderr: string;
}

/** Runs the plugin once, as a runtime would, and parses its stdout. */
export async function invokePlugin(options: InvokeOptions): Promise<InvokeResult> {
  const env: Record<string, string | undefined> = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: options.command,
    CNI_CONTAINERID: options.containerID,
    CNI_NETNS: options.netns,
    CNI_IFNAME: options.ifname ?? "eth0",
    CNI_PATH: options.cniPath ?? `${options.binDir}:/usr/lib/cni`,
    CNI_ARGS: options.args,
    // lets a test run choose the plugin's `ip` fallback over netlink (WEFT_NETLINK=0)
    WEFT_NETLINK: Deno.env.get("WEFT_NETLINK"),
    ...options.extraEnv,
  };
  for (const name of options.unset ?? []) delete env[name];
  const pairs = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const stdin = typeof options.config === "string"
    ? options.config
    : JSON.stringify(options.config ?? {});
  const result = await runWithStdin(
    [
      ...options.measuredBy ?? [],
      "env",
      "-i",
      ...pairs,
      options.program ?? `${options.binDir}/weft`,
    ],
    { netns: options.inNetns, stdin },
  );
  let json: unknown = undefined;
  try {
    json = result.stdout.trim() ? JSON.parse(result.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { code: result.code, json, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs a command with `stdin` written to it. Unlike a plain pipe write, a program that exits
 * without reading its input (a crash, or an early error) is reported through its exit code and
 * output instead of failing the caller with EPIPE.
 */
async function runWithStdin(
  command: string[],
  options: { netns?: string; stdin: string },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const full = options.netns ? ["ip", "netns", "exec", options.netns, ...command] : command;
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Removes every namespace named `<prefix>-...` (and kills what runs in it). */
export async function sweep(prefix: string): Promise<void> {
  await sweepNamespaces(prefix);
}

export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

/** Creates an empty namespace with loopback up and returns its name. */
export async function createNetns(name: string): Promise<string> {
  await must(["ip", "netns", "add", name]);
  await must(["ip", "-n", name, "link", "set", "lo", "up"]);
  return name;
}

export type AgentKind = "fake" | "real";

export interface RunningAgent {
  kind: AgentKind;
  /** Where the agent listens, inside the node namespace. */
  address: string;
  stop(): Promise<void>;
}

export interface StartAgentOptions {
  kind?: AgentKind;
  bridge?: string;
  /** Pod range; the fake agent gives the bridge its first address. */
  range?: string;
  /** Scratch directory for the real agent's state. */
  stateDir?: string;
  address?: string;
}

/** Which agent kernel tests run against unless a test says otherwise. */
export function defaultAgentKind(): AgentKind {
  // the real agent by default: the plugin is tested against what users run
  return Deno.env.get("WEFT_CNI_TEST_AGENT") === "fake" ? "fake" : "real";
}

/**
 * Starts an agent inside `nodeNetns` and waits until /status answers. For the fake agent this
 * also makes the bridge (with the range's first address), which is the real agent's job.
 */
export async function startAgent(
  nodeNetns: string,
  options: StartAgentOptions = {},
): Promise<RunningAgent> {
  const kind = options.kind ?? defaultAgentKind();
  const bridge = options.bridge ?? "weave";
  const range = options.range ?? "10.32.0.0/12";
  const address = options.address ?? "127.0.0.1:6784";
  let args: string[];
  let scratch: string | undefined;
  if (kind === "fake") {
    const [base, prefix] = range.split("/");
    const octets = base.split(".").map(Number);
    octets[3] += 1;
    const gateway = octets.join(".");
    await must(["ip", "-n", nodeNetns, "link", "add", bridge, "type", "bridge"]);
    await must(["ip", "-n", nodeNetns, "addr", "add", `${gateway}/${prefix}`, "dev", bridge]);
    // An MTU set after creation is pinned: ports with a smaller MTU no longer shrink the bridge.
    await must(["ip", "-n", nodeNetns, "link", "set", bridge, "mtu", "1500", "up"]);
    args = [
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      `${repoRoot}tests/support/fake_agent.ts`,
      "--addr",
      address,
      "--range",
      range,
      "--gateway",
      gateway,
      "--bridge",
      bridge,
    ];
  } else {
    scratch = options.stateDir ? undefined : await Deno.makeTempDir({ prefix: "weft-cni-agent-" });
    const stateDir = options.stateDir ?? scratch!;
    // The agent's data path wants an underlay address; a veth pair kept inside the node
    // namespace gives it one without any traffic leaving the namespace.
    const underlay = "192.168.254.1";
    await must([
      "ip",
      "-n",
      nodeNetns,
      "link",
      "add",
      "ul0",
      "type",
      "veth",
      "peer",
      "name",
      "ul1",
    ]);
    await must(["ip", "-n", nodeNetns, "addr", "add", `${underlay}/24`, "dev", "ul0"]);
    await must(["ip", "-n", nodeNetns, "link", "set", "ul0", "up"]);
    await must(["ip", "-n", nodeNetns, "link", "set", "ul1", "up"]);
    args = [
      (await artifact()).weft,
      "--api-addr",
      address,
      "launch",
      "--state-dir",
      stateDir,
      "--bridge",
      bridge,
      "--ipalloc-range",
      range,
      "--host",
      underlay,
    ];
  }
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", nodeNetns, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    await stopChild(child);
    await stderr;
    if (scratch) await Deno.remove(scratch, { recursive: true }).catch(() => {});
  };
  let exited: Deno.CommandStatus | undefined;
  child.status.then((status) => exited = status);
  try {
    await waitFor(`the ${kind} agent in ${nodeNetns}`, async () => {
      const probe = await sh([
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `http://${address}/status`,
      ], { netns: nodeNetns });
      // an agent that died will never answer: stop waiting (waitFor retries on errors)
      return probe.stdout === "200" || exited !== undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    if (exited) throw new Error(`The ${kind} agent exited (${exited.code}): ${await stderr}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { kind, address, stop };
}

/** Calls the agent's API from inside the node namespace. */
export async function agentRequest(
  nodeNetns: string,
  options: { method: string; path: string; address?: string; body?: unknown },
  // deno-lint-ignore no-explicit-any
): Promise<{ code: number; json: any }> {
  const args = ["curl", "-s", "-X", options.method, "-o", "-", "-w", "\n%{http_code}"];
  if (options.body !== undefined) {
    args.push("-H", "content-type: application/json", "-d", JSON.stringify(options.body));
  }
  args.push(`http://${options.address ?? "127.0.0.1:6784"}${options.path}`);
  const result = await sh(args, { netns: nodeNetns });
  const lines = result.stdout.trimEnd().split("\n");
  const code = Number(lines.pop());
  const text = lines.join("\n");
  return { code, json: text ? JSON.parse(text) : undefined };
}

/** Every allocation the agent holds (both agents serve `GET /ip`). */
export async function agentAllocations(
  nodeNetns: string,
): Promise<{ containerID: string; ifname: string; address: string }[]> {
  const answer = await agentRequest(nodeNetns, { method: "GET", path: "/ip" });
  if (answer.code !== 200) throw new Error(`GET /ip answered ${answer.code}`);
  return answer.json;
}

/** Names of links in a namespace. */
export async function linkNames(netns: string): Promise<string[]> {
  const out = await must(["ip", "-n", netns, "-json", "link", "show"]);
  return (JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname);
}

// deno-lint-ignore no-explicit-any
export async function ipJsonIn(netns: string, args: string[]): Promise<any[]> {
  const out = await must(["ip", "-n", netns, "-json", ...args]);
  return out.trim() ? JSON.parse(out) : [];
}

/**
 * True when a ping from `netns` to `address` is answered. Two tries: the first packet may wait
 * on ARP on a loaded machine; a path that is really broken fails both.
 */
export async function ping(netns: string, address: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const result = await sh(["ping", "-c", "1", "-W", "2", "-q", address], { netns });
    if (result.code === 0) return true;
  }
  return false;
}
