/**
 * A lab of node namespaces on a shared underlay, for the data path tests and bench.
 *
 * Every name starts with the caller's prefix (the data path owns `wtd`), so a crashed run is
 * swept by the next one and other engineers' namespaces are never touched. All links are
 * created inside the lab's namespaces (`ip -n`), never in the root namespace. `labTest` is the
 * usual way in: it builds the lab, prints the nodes' logs when the test fails, and removes
 * everything (the lab is `await using`-disposable for anything else that builds one).
 */
import { run } from "../../src/net/exec.ts";
import { stopChild } from "./lab.ts";
import { addNamespace, addVeth } from "./netns.ts";
export { iperfTransfer as tcpTransfer, type TransferResult } from "./netns.ts";
import { macForAddress, parseIp } from "../../src/net/cidr.ts";
import {
  type DatapathCounters,
  GUARD_TABLE,
  type PathKind,
  type PeerPathStatus,
} from "../../src/datapath/mod.ts";
import { listTable, type NftTable } from "../../src/net/nft.ts";

const DENO = Deno.execPath();
const NODE_SCRIPT = new URL("./datapath_node.ts", import.meta.url).pathname;

async function sh(command: string[], options: { allowFailure?: boolean } = {}): Promise<string> {
  return (await run(command, options)).stdout;
}

/** Kills processes inside, then deletes, every namespace whose name starts with `prefix`. */
export async function sweepLab(prefix: string): Promise<void> {
  const list = await sh(["ip", "netns", "list"]);
  const names = list.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(prefix));
  for (const name of names) {
    const pids = (await sh(["ip", "netns", "pids", name], { allowFailure: true })).trim();
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* already gone */ }
    }
  }
  for (const name of names) await sh(["ip", "netns", "del", name], { allowFailure: true });
}

export interface LabOptions {
  nodes?: number;
  podsPerNode?: number;
  /** Underlay MTU on every node link. */
  underlayMtu?: number;
  /** Script each node runs (default: datapath_node.ts from source; a bundle of it also works). */
  nodeScript?: string;
}

export interface NodeOptions {
  /** The node's underlay address; null leaves it to the route toward the peers. */
  underlayIp?: string | null;
  mode?: "auto" | "fastdp" | "sleeve";
  encrypt?: boolean;
  mtu?: number;
  sleeveIdleMs?: number;
  /** The data path's nft guard (default on). */
  firewall?: boolean;
}

export class LabNode {
  readonly index: number;
  readonly name: string;
  blob = "";
  mtu = 0;
  #child?: Deno.ChildProcess;
  #writer?: WritableStreamDefaultWriter<Uint8Array>;
  #replies: Array<(value: Record<string, unknown>) => void> = [];
  #nextId = 1;
  #stderr = "";

  readonly script: string;

  constructor(index: number, name: string, script = NODE_SCRIPT) {
    this.index = index;
    this.name = name;
    this.script = script;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get log(): string {
    return this.#stderr;
  }

  config: Record<string, unknown> = {};

  async start(config: Record<string, unknown>): Promise<void> {
    this.config = config;
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.name, DENO, "run", "-A", this.script, JSON.stringify(config)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += chunk;
      }
    })();
    // Each process answers its own waiters: a killed one ending late must not answer the next.
    const replies: Array<(value: Record<string, unknown>) => void> = [];
    this.#replies = replies;
    const ready = new Promise<Record<string, unknown>>((resolve) => replies.push(resolve));
    (async () => {
      let pending = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        let newline;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const reply = JSON.parse(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
          replies.shift()?.(reply);
        }
      }
      for (const waiter of replies.splice(0)) waiter({ ok: false, error: "node exited" });
    })();
    const first = await ready;
    if (!first.ready) {
      throw new Error(`Node ${this.name} failed to start: ${first.error}\n${this.#stderr}`);
    }
    this.blob = first.blob as string;
    this.mtu = first.mtu as number;
  }

  async command(
    op: string,
    fields: Record<string, unknown> = {},
  ): Promise<Record<string, unknown>> {
    if (!this.#writer) throw new Error(`Node ${this.name} is not running`);
    const reply = new Promise<Record<string, unknown>>((resolve) => this.#replies.push(resolve));
    const line = JSON.stringify({ op, id: this.#nextId++, ...fields }) + "\n";
    await this.#writer.write(new TextEncoder().encode(line));
    const answer = await reply;
    if (!answer.ok) throw new Error(`Node ${this.name} ${op} failed: ${answer.error}`);
    if (typeof answer.blob === "string") this.blob = answer.blob;
    return answer;
  }

  async status(): Promise<PeerPathStatus[]> {
    return (await this.command("status")).status as PeerPathStatus[];
  }

  /** The sleeve's counters (workers report them twice a second: poll, do not read once). */
  async counters(): Promise<DatapathCounters> {
    return (await this.command("status")).counters as DatapathCounters;
  }

  /** What the data path reports as wrong (CONTRACTS #1). */
  async diagnostics(): Promise<Array<{ code: string; severity: string; message: string }>> {
    return (await this.command("diagnostics")).diagnostics as Array<
      { code: string; severity: string; message: string }
    >;
  }

  /** Whether the sleeve's worker threads run. */
  async threads(): Promise<boolean> {
    return (await this.command("status")).threads as boolean;
  }

  /** How many datagrams the sleeve dropped for `reason`. */
  async dropped(reason: string): Promise<number> {
    return (await this.counters()).dropped[reason] ?? 0;
  }

  /** Kills the node's process without letting it clean up, as a crash or OOM kill would. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    child.kill("SIGKILL");
    await child.status;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      await this.command("stop");
    } catch { /* exited already */ }
    await this.#writer?.close().catch(() => {});
    await stopChild(child, null);
  }
}

export class Lab {
  readonly prefix: string;
  readonly underlay: string;
  readonly nodes: LabNode[] = [];
  readonly podsPerNode: number;

  private constructor(prefix: string, nodes: number, options: LabOptions) {
    this.prefix = prefix;
    this.underlay = `${prefix}u`;
    this.podsPerNode = options.podsPerNode ?? 1;
    for (let i = 1; i <= nodes; i++) {
      this.nodes.push(new LabNode(i, `${prefix}n${i}`, options.nodeScript));
    }
  }

  nodeUnderlayIp(i: number): string {
    return `192.168.77.${i}`;
  }

  bridgeIp(i: number): string {
    return `10.32.0.${i}`;
  }

  podNs(i: number, k: number): string {
    return `${this.prefix}n${i}p${k}`;
  }

  podIp(i: number, k: number): string {
    return `10.32.${i}.${k}`;
  }

  /** Builds the underlay, the nodes with their `weave` bridges, and the pods. */
  static async create(prefix: string, options: LabOptions = {}): Promise<Lab> {
    await sweepLab(prefix);
    const lab = new Lab(prefix, options.nodes ?? 3, options);
    try {
      await lab.#build(options.underlayMtu ?? 1500);
    } catch (error) {
      await lab.destroy();
      throw error;
    }
    return lab;
  }

  async #build(underlayMtu: number): Promise<void> {
    const u = this.underlay;
    await addNamespace(u);
    await sh(["ip", "-n", u, "link", "add", "ul", "type", "bridge"]);
    await sh(["ip", "-n", u, "link", "set", "ul", "mtu", String(underlayMtu), "up"]);
    for (const node of this.nodes) {
      const i = node.index;
      const ns = node.name;
      await addNamespace(ns);
      await addVeth({ netns: ns, name: "eth0" }, { netns: u, name: `n${i}` }, {
        mtu: underlayMtu,
        bridgeB: "ul",
      });
      await sh(["ip", "-n", ns, "addr", "add", `${this.nodeUnderlayIp(i)}/24`, "dev", "eth0"]);
      const bridgeIp = this.bridgeIp(i);
      await sh(["ip", "-n", ns, "link", "add", "weave", "type", "bridge"]);
      await sh([
        "ip",
        "-n",
        ns,
        "link",
        "set",
        "weave",
        "address",
        macForAddress(parseIp(bridgeIp)),
        "up",
      ]);
      await sh(["ip", "-n", ns, "addr", "add", `${bridgeIp}/12`, "dev", "weave"]);
      for (let k = 1; k <= this.podsPerNode; k++) await this.addPod(i, k);
    }
  }

  async addPod(i: number, k: number): Promise<void> {
    const ns = this.nodes[i - 1].name;
    const pod = this.podNs(i, k);
    const ip = this.podIp(i, k);
    await addNamespace(pod);
    await addVeth({ netns: pod, name: "eth0" }, { netns: ns, name: `vethp${k}` }, {
      macA: macForAddress(parseIp(ip)),
      bridgeB: "weave",
    });
    await sh(["ip", "-n", pod, "addr", "add", `${ip}/12`, "dev", "eth0"]);
    await sh(["ip", "-n", pod, "route", "add", "default", "via", this.bridgeIp(i)]);
  }

  async removePod(i: number, k: number): Promise<void> {
    await sh(["ip", "netns", "del", this.podNs(i, k)]);
  }

  /** The pod MTU every pod veth (both ends) must use, as the CNI plugin would set it. */
  async setPodMtu(i: number, mtu: number): Promise<void> {
    const ns = this.nodes[i - 1].name;
    for (let k = 1; k <= this.podsPerNode; k++) {
      await sh(["ip", "-n", this.podNs(i, k), "link", "set", "eth0", "mtu", String(mtu)], {
        allowFailure: true,
      });
      await sh(["ip", "-n", ns, "link", "set", `vethp${k}`, "mtu", String(mtu)], {
        allowFailure: true,
      });
    }
  }

  endpoints(i: number, pods = this.podsPerNode): Array<{ mac: string; ip: string }> {
    const list = [{ mac: macForAddress(parseIp(this.bridgeIp(i))), ip: this.bridgeIp(i) }];
    for (let k = 1; k <= pods; k++) {
      list.push({ mac: macForAddress(parseIp(this.podIp(i, k))), ip: this.podIp(i, k) });
    }
    return list;
  }

  /** Starts every node's data path and sets pod MTUs from what it reports. */
  async startNodes(options: NodeOptions | ((i: number) => NodeOptions) = {}): Promise<void> {
    await Promise.all(this.nodes.map(async (node) => {
      const extra = typeof options === "function" ? options(node.index) : options;
      const underlayIp = extra.underlayIp === null
        ? undefined
        : extra.underlayIp ?? this.nodeUnderlayIp(node.index);
      await node.start({
        name: node.name,
        bridge: "weave",
        endpoints: this.endpoints(node.index),
        heartbeatMs: 300,
        timings: { deadAfterMs: 2000, settleMs: 1000 },
        ...extra,
        underlayIp,
      });
      await this.setPodMtu(node.index, node.mtu);
    }));
  }

  /**
   * Tells every node about every other node, as the agent would from mesh events. `keys` gives a
   * session key (hex) per pair "a-b" (a < b); `nextHop(from, to)` the mesh route.
   */
  async introduce(options: {
    keys?: (a: number, b: number) => string | undefined;
    nextHop?: (from: number, to: number) => number | undefined;
  } = {}): Promise<void> {
    await Promise.all(this.nodes.map(async (from) => {
      for (const to of this.nodes) {
        if (to === from) continue;
        const hop = options.nextHop?.(from.index, to.index);
        const key = options.keys?.(Math.min(from.index, to.index), Math.max(from.index, to.index));
        await from.command("upsert", {
          peer: {
            name: to.name,
            data: to.blob,
            nextHop: hop === undefined ? undefined : this.nodes[hop - 1].name,
            sessionKey: key,
          },
        });
      }
    }));
  }

  /**
   * Writes the iptables chains the agent writes on node `i` (WEFT, WEFT-FORWARD, WEFT-OUTPUT):
   * with br_netfilter on, bridged pod traffic then goes through them and through conntrack, as
   * on a real node.
   */
  async applyAgentRules(i: number): Promise<void> {
    const module = new URL("../../src/net/iptables.ts", import.meta.url).href;
    const script = `import { ensureWeftRules } from ${JSON.stringify(module)};
      await ensureWeftRules({ podRange: "10.32.0.0/12", bridge: "weave" });`;
    await this.exec(this.nodes[i - 1].name, [DENO, "eval", script]);
  }

  /** Whether bridged IPv4 on node `i` goes through the inet and iptables hooks (br_netfilter). */
  async setBrNetfilter(i: number, on: boolean): Promise<void> {
    const value = `net.bridge.bridge-nf-call-iptables=${on ? 1 : 0}`;
    await this.exec(this.nodes[i - 1].name, ["sysctl", "-qw", value]);
  }

  /** Runs a command inside a lab namespace. */
  exec(ns: string, command: string[], options: { allowFailure?: boolean; stdin?: string } = {}) {
    return run(["ip", "netns", "exec", ns, ...command], options);
  }

  /** Polls `check` every 200 ms until it holds or `attempts` run out; returns its last value. */
  async waitFor<T>(
    probe: () => Promise<T>,
    check: (value: T) => boolean,
    attempts = 50,
  ): Promise<T> {
    let value = await probe();
    for (let i = 0; i < attempts && !check(value); i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      value = await probe();
    }
    return value;
  }

  async pathTo(from: number, to: number): Promise<PeerPathStatus | undefined> {
    const status = await this.nodes[from - 1].status();
    return status.find((s) => s.peer === this.nodes[to - 1].name);
  }

  /** Waits until node `from` sends to node `to` on `path`; throws with the last status if not. */
  async waitPath(from: number, to: number, path: PathKind): Promise<PeerPathStatus> {
    const status = await this.waitFor(() => this.pathTo(from, to), (s) => s?.path === path);
    if (status?.path !== path) {
      throw new Error(`node${from} -> node${to} is not on ${path}: ${JSON.stringify(status)}`);
    }
    return status;
  }

  /**
   * Drops underlay traffic between nodes `a` and `b` in both directions with iptables in the
   * node namespaces: only UDP to `port` when given, else everything (a cut link). `remove`
   * takes the same rules out again.
   */
  async filterUnderlay(
    a: number,
    b: number,
    options: { port?: number; remove?: boolean } = {},
  ): Promise<void> {
    const action = options.remove ? "-D" : "-I";
    for (const [here, there] of [[a, b], [b, a]]) {
      const ns = this.nodes[here - 1].name;
      const peer = this.nodeUnderlayIp(there);
      if (options.port !== undefined) {
        const port = String(options.port);
        const rule = ["INPUT", "-p", "udp", "--dport", port, "-s", peer, "-j", "DROP"];
        await this.exec(ns, ["iptables", "-w", action, ...rule]);
      } else {
        await this.exec(ns, ["iptables", "-w", action, "INPUT", "-s", peer, "-j", "DROP"]);
        await this.exec(ns, ["iptables", "-w", action, "OUTPUT", "-d", peer, "-j", "DROP"]);
      }
    }
  }

  /**
   * Sends raw UDP payloads from inside namespace `ns` (an attacker on the underlay, a pod), from
   * `sourceAddress` when given (an address the namespace holds); `rounds` times, `everyMs`
   * apart (a forger keeping something alive).
   */
  async sendUdp(
    ns: string,
    to: { address: string; port: number; sourceAddress?: string },
    payloads: Uint8Array[],
    options: { rounds?: number; everyMs?: number } = {},
  ): Promise<void> {
    const hex = payloads.map((p) => [...p].map((b) => b.toString(16).padStart(2, "0")).join(""));
    const bind = to.sourceAddress ? `{ address: ${JSON.stringify(to.sourceAddress)} }` : "{}";
    const script = `
      import { createSocket } from "node:dgram";
      const socket = createSocket("udp4");
      await new Promise((resolve) => socket.bind(${bind}, resolve));
      for (let round = 0; round < ${options.rounds ?? 1}; round++) {
        if (round > 0) await new Promise((r) => setTimeout(r, ${options.everyMs ?? 100}));
        for (const h of ${JSON.stringify(hex)}) {
          const bytes = new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
          await new Promise((r) => socket.send(bytes, ${to.port}, ${
      JSON.stringify(to.address)
    }, r));
        }
      }
      socket.close();`;
    await this.exec(ns, [DENO, "eval", script]);
  }

  /** The underlay's own address for an attacker that no node knows as a peer. */
  static readonly ATTACKER = "192.168.77.200";

  /** Makes the underlay namespace an attacker on the node network, with ATTACKER as address. */
  async attacker(): Promise<void> {
    const has = await this.exec(this.underlay, ["ip", "-o", "addr", "show", "dev", "ul"]);
    if (has.stdout.includes(Lab.ATTACKER)) return;
    await this.exec(this.underlay, ["ip", "addr", "add", `${Lab.ATTACKER}/24`, "dev", "ul"]);
  }

  /**
   * Lets the attacker send with node `spoofed`'s underlay address as source toward node
   * `toward` (an on-path attacker, or a host on the segment spoofing a peer), without ever
   * claiming that address by ARP: the nodes' own traffic keeps flowing.
   */
  async impersonate(spoofed: number, toward: number): Promise<void> {
    const ul = this.underlay;
    await this.attacker();
    await this.exec(ul, ["ip", "addr", "add", `${this.nodeUnderlayIp(spoofed)}/32`, "dev", "lo"]);
    for (const key of ["all.arp_ignore=1", "all.arp_announce=2", "ul.arp_ignore=1"]) {
      await this.exec(ul, ["sysctl", "-qw", `net.ipv4.conf.${key}`]);
    }
    const link = await this.exec(this.nodes[toward - 1].name, ["ip", "-j", "link", "show", "eth0"]);
    const mac = JSON.parse(link.stdout)[0].address;
    const at = this.nodeUnderlayIp(toward);
    await this.exec(ul, [
      "ip",
      "neigh",
      "replace",
      at,
      "lladdr",
      mac,
      "dev",
      "ul",
      "nud",
      "permanent",
    ]);
  }

  /** The data path's guard on node `node`, as the kernel holds it (nft -j list). */
  guard(node: number, family: "inet" | "bridge" = "inet"): Promise<NftTable | undefined> {
    return listTable(family, GUARD_TABLE, { netns: this.nodes[node - 1].name });
  }

  /** Packets dropped so far by the guard's rule with this comment on node `node`. */
  async guardDrops(node: number, comment: string): Promise<number> {
    for (const family of ["inet", "bridge"] as const) {
      const rule = (await this.guard(node, family))?.rules.find((r) => r.comment === comment);
      if (rule) return rule.counter?.packets ?? 0;
    }
    throw new Error(`node${node} has no guard rule "${comment}"`);
  }

  /** Prints every node's log (on a failure, to see what the data paths said). */
  printLogs(): void {
    for (const node of this.nodes) console.error(node.log);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop().catch(() => {})));
    await sweepLab(this.prefix);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}

/** A temporary file removed when it goes out of scope (`await using file = await tempFile()`). */
export async function tempFile(suffix = ""): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempFile({ suffix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path).catch(() => {}) };
}

/**
 * Registers a kernel test on a fresh lab named `prefix`: the body gets the lab (and the test
 * context for steps); the nodes' logs are printed when it fails, and the lab is removed
 * whatever happens.
 */
export function labTest(
  name: string,
  options: LabOptions & { prefix: string },
  body: (lab: Lab, t: Deno.TestContext) => Promise<void>,
): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false }, async (t) => {
    await using lab = await Lab.create(options.prefix, options);
    // A failed step does not throw out of the body: note it, to print the logs all the same.
    let stepFailed = false;
    const context = new Proxy(t, {
      get(target, property) {
        if (property !== "step") return Reflect.get(target, property);
        return async (...args: Parameters<Deno.TestContext["step"]>) => {
          const passed = await (target.step as (...a: unknown[]) => Promise<boolean>)(...args);
          stepFailed ||= !passed;
          return passed;
        };
      },
    });
    try {
      await body(lab, context);
    } catch (error) {
      lab.printLogs();
      throw error;
    }
    if (stepFailed) lab.printLogs();
  });
}

/** Pings address `toIp` from namespace `from`; returns the round-trip times in ms of the replies. */
export async function ping(
  lab: Lab,
  route: { from: string; toIp: string },
  options: { count?: number; size?: number; dontFragment?: boolean } = {},
): Promise<{ received: number; rtts: number[]; output: string }> {
  const args = ["ping", "-n", "-c", String(options.count ?? 3), "-i", "0.05", "-W", "1"];
  if (options.size !== undefined) args.push("-s", String(options.size));
  if (options.dontFragment) args.push("-M", "do");
  const result = await lab.exec(route.from, [...args, route.toIp], { allowFailure: true });
  const rtts = [...result.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { received: rtts.length, rtts, output: result.stdout + result.stderr };
}
