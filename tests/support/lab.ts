/**
 * A lab: a small weft cluster on one machine, made of network namespaces.
 *
 *   <prefix>-ul        the underlay: one bridge `br0` standing in for the node network
 *   <prefix>-n1..nN    the nodes: `eth0` on the underlay (192.168.77.1N/24), a weft agent each,
 *                      started from the bundled artifact exactly as a user would run it
 *   <prefix>-n1-<pod>  pods: namespaces attached to their node by the real CNI plugin
 *
 * Faults are injected where an operator would see them: a cut link or a partition is iptables
 * DROP rules on the nodes' underlay interface (kept in a chain of the lab's own), a dead node is
 * a killed agent. Everything the lab makes carries its prefix, and `destroy()` (or a sweep of a
 * crashed run's leftovers at the next `create()`) removes it all, also when a test failed.
 * Test traffic never leaves these namespaces.
 */
import { type Artifact, artifact } from "./artifact.ts";
import { addNamespace, addVeth, iperfTransfer } from "./netns.ts";

const LAB_CHAIN = "LAB-FAULTS";
/** The underlay namespace's address on the node network. */
export const UNDERLAY_HOST = "192.168.77.1";
const decoder = new TextDecoder();

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command, optionally inside a network namespace; never throws for a non-zero exit. */
export async function sh(
  command: string[],
  options: { netns?: string; stdin?: string; env?: Record<string, string> } = {},
): Promise<CommandResult> {
  const full = options.netns ? ["ip", "netns", "exec", options.netns, ...command] : command;
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Like `sh` but throws with the command's stderr when it fails. */
export async function must(command: string[], options: { netns?: string; stdin?: string } = {}) {
  const result = await sh(command, options);
  if (result.code !== 0) {
    throw new Error(
      `${options.netns ? `[${options.netns}] ` : ""}${command.join(" ")} failed (${result.code}): ${
        result.stderr || result.stdout
      }`,
    );
  }
  return result.stdout;
}

/**
 * Signals a child process (none with `null`: it was asked to stop some other way) and waits for
 * it to exit, killing it if it has not within `graceMs`: a stuck process must not hang a
 * test's clean-up.
 */
export async function stopChild(
  child: Deno.ChildProcess,
  signal: Deno.Signal | null = "SIGTERM",
  graceMs = 5000,
): Promise<Deno.CommandStatus> {
  const kill = (how: Deno.Signal) => {
    try {
      child.kill(how);
    } catch {
      // already gone
    }
  };
  if (signal) kill(signal);
  const timer = setTimeout(() => kill("SIGKILL"), graceMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/** Removes every namespace whose name starts with `prefix` (left by a crashed run). */
export async function sweepNamespaces(prefix: string): Promise<void> {
  const list = await sh(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const name = line.split(" ")[0];
    if (name && name.startsWith(prefix + "-")) {
      // kill anything still running in it first, or the namespace lingers until it exits
      const pids = await sh(["ip", "netns", "pids", name]);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        await sh(["kill", "-9", pid]);
      }
      await sh(["ip", "netns", "del", name]);
    }
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 200));
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

export interface LabNode {
  index: number;
  netns: string;
  /** The node's mesh peer name. */
  peerName: string;
  underlayIp: string;
  stateDir: string;
  logFile: string;
  agent?: Deno.ChildProcess;
  extraArgs: string[];
}

export interface LabPod {
  name: string;
  node: number;
  netns: string;
  containerID: string;
  ifname: string;
  /** Address without prefix. */
  ip: string;
  result: Record<string, unknown>;
}

export interface LabOptions {
  nodes: number;
  /** Namespace prefix, unique per test file (e.g. "wtl1"); at most 6 characters. */
  prefix: string;
  password?: string;
  ipallocRange?: string;
  /** Extra `weft launch` arguments for every node. */
  agentArgs?: string[];
  /** Start the agents right away (default true). */
  start?: boolean;
  /** Underlay MTU (default 1500). */
  underlayMtu?: number;
  /** Give every agent the other nodes as --peers (default true; false when peers come from Kubernetes). */
  peers?: boolean;
  /**
   * Start every node with ONE identical command line, as a user copying one line would:
   * `--peers` lists every node, its own address included, and there is no --name, --nickname
   * or --host (the state dir, different per machine in real life, comes from WEFT_STATE_DIR).
   * Node names then come from the shared machine id and each state dir's salt; `peerName` is
   * filled in from /status once the agent answers. Without --host the underlay address comes
   * from the default route (`defaultRoute`) or the route toward the peers.
   */
  identicalLaunch?: boolean;
  /** Give each node a default route via the underlay host, as machines on a LAN have. */
  defaultRoute?: boolean;
}

export class Lab {
  readonly prefix: string;
  readonly nodes: LabNode[] = [];
  readonly pods: LabPod[] = [];
  readonly options: LabOptions;
  readonly workDir: string;
  artifact!: Artifact;

  private constructor(options: LabOptions, workDir: string) {
    this.options = options;
    this.prefix = options.prefix;
    this.workDir = workDir;
  }

  get underlay(): string {
    return `${this.prefix}-ul`;
  }

  static async create(options: LabOptions): Promise<Lab> {
    if (options.prefix.length > 6) {
      throw new Error(`Lab prefix "${options.prefix}" is over 6 characters`);
    }
    await sweepNamespaces(options.prefix);
    const lab = new Lab(options, await Deno.makeTempDir({ prefix: `weft-lab-${options.prefix}-` }));
    try {
      lab.artifact = await artifact();
      await lab.#buildNetwork();
      if (options.start !== false) {
        await Promise.all(lab.nodes.map((n) => lab.startAgent(n.index)));
      }
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  async #buildNetwork(): Promise<void> {
    const ul = this.underlay;
    const mtu = this.options.underlayMtu ?? 1500;
    await addNamespace(ul);
    await must(["ip", "-n", ul, "link", "add", "br0", "mtu", String(mtu), "type", "bridge"]);
    await must(["ip", "-n", ul, "link", "set", "br0", "up"]);
    // the underlay's own host address, for services the nodes use (a fake Kubernetes API)
    await must(["ip", "-n", ul, "addr", "add", `${UNDERLAY_HOST}/24`, "dev", "br0"]);
    for (let index = 1; index <= this.options.nodes; index++) {
      const netns = `${this.prefix}-n${index}`;
      const node: LabNode = {
        index,
        netns,
        peerName: `02:1a:b0:00:00:${index.toString(16).padStart(2, "0")}`,
        underlayIp: `192.168.77.${10 + index}`,
        stateDir: `${this.workDir}/n${index}/state`,
        logFile: `${this.workDir}/n${index}/agent.log`,
        extraArgs: [],
      };
      await Deno.mkdir(`${this.workDir}/n${index}`, { recursive: true });
      await addNamespace(netns);
      await addVeth({ netns: ul, name: `${this.prefix}n${index}` }, { netns, name: "eth0" }, {
        mtu,
      });
      await must(["ip", "-n", ul, "link", "set", `${this.prefix}n${index}`, "master", "br0"]);
      await must(["ip", "-n", netns, "addr", "add", `${node.underlayIp}/24`, "dev", "eth0"]);
      if (this.options.defaultRoute) {
        await must(["ip", "-n", netns, "route", "add", "default", "via", UNDERLAY_HOST]);
      }
      this.nodes.push(node);
    }
  }

  node(index: number): LabNode {
    const node = this.nodes[index - 1];
    if (!node) throw new Error(`The lab has no node ${index}`);
    return node;
  }

  /** `weft launch` arguments for a node: its peers are every other node's underlay address. */
  launchArgs(index: number): string[] {
    const node = this.node(index);
    if (this.options.identicalLaunch) {
      return [
        "launch",
        "--peers",
        this.nodes.map((n) => n.underlayIp).join(","),
        ...(this.options.ipallocRange ? ["--ipalloc-range", this.options.ipallocRange] : []),
        ...(this.options.agentArgs ?? []),
        ...node.extraArgs,
      ];
    }
    const peers = this.options.peers === false
      ? []
      : this.nodes.filter((n) => n.index !== index).map((n) => n.underlayIp);
    return [
      "launch",
      "--state-dir",
      node.stateDir,
      // lab nodes share this machine's /etc/machine-id like cloned VMs would, so each is
      // named explicitly (a real node derives its name from its own machine id)
      "--name",
      node.peerName,
      "--nickname",
      `node${index}`,
      "--host",
      node.underlayIp,
      ...(this.options.ipallocRange ? ["--ipalloc-range", this.options.ipallocRange] : []),
      ...(peers.length ? ["--peers", peers.join(",")] : []),
      ...(this.options.agentArgs ?? []),
      ...node.extraArgs,
    ];
  }

  /**
   * Starts a node's agent. By default waits until it is ready (node up, IPAM ready); with
   * `wait: "serving"` only until its API answers (e.g. while its IPAM waits for peers that
   * are not started yet), with `wait: false` not at all.
   */
  async startAgent(
    index: number,
    options: { wait?: boolean | "serving" } = {},
  ): Promise<void> {
    const node = this.node(index);
    if (node.agent) throw new Error(`node${index}'s agent is already running`);
    const env: Record<string, string> = { ...Deno.env.toObject(), LOG: node.logFile };
    delete env.WEFT_PASSWORD;
    delete env.WEAVE_PASSWORD;
    if (this.options.password) env.WEFT_PASSWORD = this.options.password;
    if (this.options.identicalLaunch) env.WEFT_STATE_DIR = node.stateDir;
    // exec all the way down (sh, ip netns exec, the weft wrapper), so the child's pid is the
    // agent's own and a signal reaches it directly
    node.agent = new Deno.Command("sh", {
      args: [
        "-c",
        'exec "$@" >>"$LOG" 2>&1',
        "sh",
        "ip",
        "netns",
        "exec",
        node.netns,
        this.artifact.weft,
        ...this.launchArgs(index),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      env,
      clearEnv: true,
    }).spawn();
    let status: Record<string, unknown> | undefined;
    if (options.wait === "serving") status = await this.waitReady(index, { serving: true });
    else if (options.wait !== false) status = await this.waitReady(index);
    if (this.options.identicalLaunch && status) node.peerName = String(status.peerName);
  }

  /** Waits until the node's agent answers /status with ready (or at all, with `serving`). */
  async waitReady(
    index: number,
    options: { timeoutMs?: number; serving?: boolean } = {},
  ): Promise<Record<string, unknown>> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    return await waitFor(
      `node${index}'s agent to be ${options.serving ? "serving" : "ready"}`,
      async () => {
        const node = this.node(index);
        if (node.agent) {
          const exited = await Promise.race([
            node.agent.status.then((s) => s),
            new Promise<undefined>((r) => setTimeout(() => r(undefined), 0)),
          ]);
          if (exited) {
            throw new Error(
              `node${index}'s agent exited (${exited.code}): ${await this.log(index)}`,
            );
          }
        }
        const status = await this.api(index, "GET", "/status");
        const answered = status.code === 200 || (options.serving && status.code === 503);
        return answered ? status.json as Record<string, unknown> : undefined;
      },
      { timeoutMs },
    );
  }

  async stopAgent(index: number, signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const node = this.node(index);
    const agent = node.agent;
    if (!agent) return;
    node.agent = undefined;
    // `ip netns exec` execs the agent, so the child's pid is the agent's
    await stopChild(agent, signal);
  }

  async restartAgent(index: number): Promise<void> {
    await this.stopAgent(index);
    await this.startAgent(index);
  }

  log(index: number): Promise<string> {
    return Deno.readTextFile(this.node(index).logFile).catch(() => "");
  }

  /** Calls a node's admin API from inside the node (it listens on the node's loopback only). */
  async api(
    index: number,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ code: number; json: unknown; text: string }> {
    const args = [
      "curl",
      "-s",
      "--max-time",
      "10",
      "-X",
      method,
      "-o",
      "-",
      "-w",
      "\n%{http_code}",
      `http://127.0.0.1:6784${path}`,
    ];
    if (body !== undefined) {
      args.push("-H", "content-type: application/json", "-d", JSON.stringify(body));
    }
    const result = await sh(args, { netns: this.node(index).netns });
    const lines = result.stdout.trimEnd().split("\n");
    const code = Number(lines.pop());
    const text = lines.join("\n");
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { code: code || 0, json, text };
  }

  /** Runs the weft CLI on a node. */
  weft(index: number, args: string[]): Promise<CommandResult> {
    return sh([this.artifact.weft, ...args], { netns: this.node(index).netns });
  }

  /**
   * Creates a pod namespace on a node and attaches it with the CNI plugin (ADD). `args` is
   * CNI_ARGS as a kubelet sets it (K8S_POD_NAMESPACE, K8S_POD_NAME, ...); `prepare` runs once
   * the namespace exists, before the ADD (to start something inside the pod first).
   */
  async addPod(
    index: number,
    name: string,
    options: {
      ifname?: string;
      config?: Record<string, unknown>;
      args?: Record<string, string>;
      prepare?: (netns: string) => Promise<void>;
    } = {},
  ): Promise<LabPod> {
    const node = this.node(index);
    const netns = `${node.netns}-${name}`;
    await addNamespace(netns);
    const containerID = `${this.prefix}-${index}-${name}`;
    const ifname = options.ifname ?? "eth0";
    await options.prepare?.(netns);
    const result = await this.cni(index, "ADD", {
      containerID,
      netns,
      ifname,
      config: options.config,
      args: options.args,
    });
    if (result.code !== 0) {
      await sh(["ip", "netns", "del", netns]);
      throw new Error(
        `CNI ADD of ${name} on node${index} failed: ${result.stdout}${result.stderr}`,
      );
    }
    const json = JSON.parse(result.stdout);
    const pod: LabPod = {
      name,
      node: index,
      netns,
      containerID,
      ifname,
      ip: String(json.ips[0].address).split("/")[0],
      result: json,
    };
    this.pods.push(pod);
    return pod;
  }

  async delPod(pod: LabPod): Promise<CommandResult> {
    const result = await this.cni(pod.node, "DEL", pod);
    await sh(["ip", "netns", "del", pod.netns]);
    this.pods.splice(this.pods.indexOf(pod), 1);
    return result;
  }

  /** The network config the runtime would pass (one plugin of the conflist, at 1.1.0). */
  netConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { cniVersion: "1.1.0", name: "weft", type: "weft", ...extra };
  }

  /** Runs the CNI plugin on a node as the runtime would: env plus config on stdin. */
  cni(
    index: number,
    command: string,
    options: {
      containerID: string;
      netns?: string;
      ifname?: string;
      config?: Record<string, unknown>;
      args?: Record<string, string>;
    },
  ): Promise<CommandResult> {
    const env: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: options.containerID,
      CNI_NETNS: options.netns ? `/var/run/netns/${options.netns}` : "",
      CNI_IFNAME: options.ifname ?? "eth0",
      CNI_PATH: `${this.artifact.binDir}:/usr/lib/cni`,
    };
    if (options.args) {
      env.CNI_ARGS = Object.entries(options.args).map(([k, v]) => `${k}=${v}`).join(";");
    }
    return sh([
      "env",
      "-i",
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      this.artifact.weft,
    ], {
      netns: this.node(index).netns,
      stdin: JSON.stringify(this.netConfig(options.config)),
    });
  }

  /** Pings from a pod; true when at least one reply came back. */
  async ping(
    from: LabPod | string,
    to: string,
    options: { count?: number; timeout?: number } = {},
  ) {
    const netns = typeof from === "string" ? from : from.netns;
    const result = await sh([
      "ping",
      "-c",
      String(options.count ?? 1),
      "-W",
      String(options.timeout ?? 2),
      "-q",
      to,
    ], { netns });
    return result.code === 0;
  }

  /** Drops all underlay traffic between two nodes, both ways. */
  async cutLink(a: number, b: number): Promise<void> {
    for (const [from, to] of [[a, b], [b, a]]) {
      const netns = this.node(from).netns;
      await sh(["iptables", "-w", "-N", LAB_CHAIN], { netns });
      await sh(["iptables", "-w", "-C", "INPUT", "-j", LAB_CHAIN], { netns }).then((r) =>
        r.code === 0
          ? undefined
          : must(["iptables", "-w", "-I", "INPUT", "-j", LAB_CHAIN], { netns })
      );
      await sh(["iptables", "-w", "-C", "OUTPUT", "-j", LAB_CHAIN], { netns }).then((r) =>
        r.code === 0
          ? undefined
          : must(["iptables", "-w", "-I", "OUTPUT", "-j", LAB_CHAIN], { netns })
      );
      const peer = this.node(to).underlayIp;
      await must(["iptables", "-w", "-A", LAB_CHAIN, "-s", peer, "-j", "DROP"], { netns });
      await must(["iptables", "-w", "-A", LAB_CHAIN, "-d", peer, "-j", "DROP"], { netns });
    }
  }

  /** Cuts every link between the two groups. */
  async partition(groupA: number[], groupB: number[]): Promise<void> {
    for (const a of groupA) for (const b of groupB) await this.cutLink(a, b);
  }

  /** Removes every injected fault. */
  async heal(): Promise<void> {
    for (const node of this.nodes) {
      await sh(["iptables", "-w", "-F", LAB_CHAIN], { netns: node.netns });
    }
  }

  /** Kills every agent and removes every namespace and file the lab made. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.stopAgent(n.index, "SIGKILL").catch(() => {})));
    await sweepNamespaces(this.prefix);
    await Deno.remove(this.workDir, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}

/** A TCP transfer between two pods with iperf3; returns bits per second, or throws. */
export async function tcpTransfer(
  from: LabPod,
  to: LabPod,
  options: { seconds?: number } = {},
): Promise<number> {
  const result = await iperfTransfer(
    { from: from.netns, to: to.netns, toIp: to.ip },
    ["-t", String(options.seconds ?? 1)],
  );
  if (!result.ok) throw new Error(`iperf3 ${from.name} -> ${to.name} failed: ${result.error}`);
  return result.bitsPerSecond;
}
