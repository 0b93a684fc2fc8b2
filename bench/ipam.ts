/**
 * IPAM benchmark: prints tables, asserts nothing.
 *
 * 1. Allocation latency of a node-local allocation (ClusterIpam owning its space, over SQLite,
 *    as the agent serves it) beside the reference host-local IPAM plugin executed the way a
 *    runtime runs it, in the same run. The weft number is the in-process call; the API's HTTP
 *    hop is the agent's.
 * 2. Cluster allocation latency with and without a space request to another peer, over an
 *    in-process transport that delays every message by a simulated one-way network delay.
 * 3. Time from a peer's removal to its space being reusable, manual rmpeer and automatic.
 * 4. The CPU cost of per-peer signatures (Ed25519, node:crypto) on merges: the same states
 *    merged by a peer that checks every signature and by one that checks none (the baseline),
 *    in the same run, from one simulated cluster built once for each.
 *
 * Run: deno run -A bench/ipam.ts [--samples N] [--delay MS]
 */
import { parseCidr } from "../src/net/cidr.ts";
import { ClusterIpam, type IpamTransport, openSqliteStore, type Store } from "../src/ipam/mod.ts";
import {
  MemoryNetwork,
  MemorySigners,
  MemoryStore,
  Simulation,
  unverifiedSigner,
} from "../src/ipam/testing.ts";

const args = Deno.args;
function flag(name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new TypeError(`Invalid ${name} "${args[at + 1]}"`);
  }
  return value;
}
const SAMPLES = flag("--samples", 300);
const DELAY = flag("--delay", 1);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function row(cells: Array<string | number>): string {
  return cells.map((c, i) =>
    String(typeof c === "number" && !Number.isInteger(c) ? c.toFixed(3) : c)
      .padEnd(i ? 12 : 64)
  ).join("");
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** host-local as a runtime runs it: one process per ADD, its file store in `dir`. */
async function hostLocal(dir: string, id: string): Promise<void> {
  const config = JSON.stringify({
    cniVersion: "1.0.0",
    name: "bench",
    type: "bridge",
    ipam: { type: "host-local", ranges: [[{ subnet: "10.32.0.0/16" }]], dataDir: dir },
  });
  const child = new Deno.Command("/usr/lib/cni/host-local", {
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: id,
      CNI_NETNS: "/dev/null",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/usr/lib/cni",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(config));
  await writer.close();
  const out = await child.output();
  if (!out.success) throw new Error(`host-local failed: ${new TextDecoder().decode(out.stdout)}`);
}

async function localLatency(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "weft-ipam-bench-" });
  try {
    // A lone peer (consensus=1) owns the whole range: what every node does with space it owns.
    const solo = (store: Store) =>
      ClusterIpam.open({
        store,
        clusterRange: parseCidr("10.32.0.0/16"),
        peerName: "bench",
        transport: new MemoryNetwork().join("bench"),
        init: { mode: "consensus", peers: 1 },
        signer: new MemorySigners().for("bench"),
      });
    const sqlite = await solo(openSqliteStore(`${dir}/ipam.db`));
    const memory = await solo(new MemoryStore());
    const results: Array<[string, number[]]> = [];
    const samples = (fn: (i: number) => Promise<unknown>) =>
      Promise.all([]).then(async () => {
        const out: number[] = [];
        for (let i = 0; i < SAMPLES; i++) out.push(await time(() => fn(i)));
        return out;
      });
    results.push([
      "weft allocate, space owned, SQLite (synchronous=FULL)",
      await samples((i) => sqlite.allocate(`c${i}`)),
    ]);
    results.push([
      "weft allocate, space owned, memory store",
      await samples((i) => memory.allocate(`c${i}`)),
    ]);
    const hostSamples = Math.min(SAMPLES, 100);
    const host: number[] = [];
    for (let i = 0; i < hostSamples; i++) {
      host.push(await time(() => hostLocal(`${dir}/host-local`, `c${i}`)));
    }
    results.push(["baseline: reference host-local plugin (process per ADD)", host]);
    console.log("\n## Node-local allocation latency (ms)");
    console.log(row(["path", "p50", "p99", "n"]));
    const base = percentile(host, 50);
    for (const [name, values] of results) {
      console.log(row([name, percentile(values, 50), percentile(values, 99), values.length]));
    }
    console.log(
      `weft SQLite p50 is ${(percentile(results[0][1], 50) / base).toFixed(3)}x host-local's p50`,
    );
    sqlite.close();
    memory.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Peers in one process; every message arrives after `delay` ms of real time. */
class DelayedNetwork {
  #handlers = new Map<string, {
    message?: (from: string, m: string) => void;
    state?: (from: string, s: string) => void;
  }>();
  #down = new Set<string>();
  constructor(readonly delay: number) {}

  join(name: string): IpamTransport {
    const handlers: {
      message?: (from: string, m: string) => void;
      state?: (from: string, s: string) => void;
    } = {};
    this.#handlers.set(name, handlers);
    this.#down.delete(name);
    const later = (fn: () => void) => this.#schedule(fn);
    return {
      broadcast: (state) => {
        for (const [other, h] of this.#handlers) {
          if (other !== name) later(() => this.#up(name, other) && h.state?.(name, state));
        }
      },
      send: (peer, message) =>
        later(() => this.#up(name, peer) && this.#handlers.get(peer)?.message?.(name, message)),
      onMessage: (handler) => (handlers.message = handler),
      onState: (handler) => (handlers.state = handler),
      peers: () =>
        [...this.#handlers.keys()].filter((n) => n !== name).map((n) => ({
          name: n,
          reachable: this.#up(name, n),
        })),
    };
  }

  crash(name: string): void {
    this.#down.add(name);
  }

  // setTimeout clamps nested timers to 4 ms, which would swamp a 1 ms delay; a MessageChannel
  // pump polls the last millisecond without clamping (a bench may burn CPU while it waits).
  #queue: Array<{ due: number; fn: () => void }> = [];
  #channel = new MessageChannel();
  #pumping = false;

  #schedule(fn: () => void): void {
    this.#queue.push({ due: performance.now() + this.delay, fn });
    if (!this.#pumping) {
      this.#pumping = true;
      this.#channel.port1.onmessage = () => this.#pump();
      this.#channel.port2.postMessage(0);
    }
  }

  #pump(): void {
    const now = performance.now();
    const due = this.#queue.filter((q) => q.due <= now);
    this.#queue = this.#queue.filter((q) => q.due > now);
    for (const q of due) q.fn();
    if (this.#queue.length === 0) {
      this.#pumping = false;
      return;
    }
    // Poll through the channel only for the last sub-millisecond; longer waits sleep, so the
    // peers' timers (ticks) still run.
    const wait = Math.min(...this.#queue.map((q) => q.due)) - performance.now();
    if (wait > 1) setTimeout(() => this.#pump(), wait - 1);
    else this.#channel.port2.postMessage(0);
  }

  close(): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
  }

  #up(a: string, b: string): boolean {
    return !this.#down.has(a) && !this.#down.has(b);
  }
}

async function startCluster(names: string[], options: { reclaimAfterMs?: number } = {}) {
  const network = new DelayedNetwork(DELAY);
  const signers = new MemorySigners();
  const peers = new Map<string, ClusterIpam>();
  for (const name of names) {
    peers.set(
      name,
      await ClusterIpam.open({
        store: new MemoryStore(),
        clusterRange: parseCidr("10.32.0.0/16"),
        peerName: name,
        transport: network.join(name),
        init: name.startsWith("o")
          ? { mode: "observer" }
          : { mode: "consensus", peers: names.filter((n) => !n.startsWith("o")).length },
        reclaimAfterMs: options.reclaimAfterMs,
        removalGraceMs: 0,
        signer: signers.for(name),
        gossipIntervalMs: 1000,
      }),
    );
  }
  // The agent ticks every second; here every 50 ms, so removal times show protocol round
  // trips rather than the tick period (which adds up to one period per round in production).
  const timer = setInterval(() => peers.forEach((p) => p.tick()), 50);
  const until = async (check: () => boolean, limitMs = 30_000) => {
    const start = performance.now();
    while (!check()) {
      if (performance.now() - start > limitMs) throw new Error("bench: condition not reached");
      await new Promise((r) => setTimeout(r, 1));
    }
    return performance.now() - start;
  };
  await until(() => [...peers.values()].every((p) => p.status().ready));
  return { network, peers, timer, until };
}

async function clusterLatency(): Promise<void> {
  const observers = Array.from({ length: Math.min(SAMPLES, 12) }, (_, i) => `o${i}`);
  const { network, peers, timer } = await startCluster(["a", "b", ...observers]);
  try {
    const a = peers.get("a")!;
    const local: number[] = [];
    for (let i = 0; i < SAMPLES; i++) local.push(await time(() => a.allocate(`l${i}`)));
    // An observer owns nothing: its first allocation asks the peer with most free space.
    const remote: number[] = [];
    for (const name of observers) {
      remote.push(await time(() => peers.get(name)!.allocate("first")));
    }
    // A /29 the observer owns nothing of: the first donor asked may not own it either.
    const o = peers.get(observers[0])!;
    const subnet: number[] = [];
    for (let i = 0; i < Math.min(SAMPLES, 100); i++) {
      const block = parseCidr(`10.32.${200 + Math.floor(i / 32)}.${(i % 32) * 8}/29`);
      subnet.push(await time(() => o.allocate(`s${i}`, { subnet: block })));
    }
    console.log(
      `\n## Cluster allocation latency (ms), all peers in this process, simulated one-way delay ${DELAY} ms`,
    );
    console.log(row(["path", "p50", "p99", "n"]));
    for (
      const [name, values] of [
        ["ClusterIpam.allocate, space owned locally", local],
        ["ClusterIpam.allocate with a space request", remote],
        ["same, inside a subnet nobody gave it yet", subnet],
      ] as Array<[string, number[]]>
    ) {
      console.log(row([name, percentile(values, 50), percentile(values, 99), values.length]));
    }
    console.log(row(["baseline: one round trip (2 x one-way delay)", 2 * DELAY, 2 * DELAY, "-"]));
  } finally {
    clearInterval(timer);
    network.close();
    peers.forEach((p) => p.close());
  }
}

async function removalTime(): Promise<void> {
  const results: Array<[string, number]> = [];
  {
    const { network, peers, timer, until } = await startCluster(["a", "b", "c"]);
    try {
      network.crash("c");
      const total = 65536;
      const start = performance.now();
      peers.get("a")!.rmpeer("c");
      await until(() => peers.get("a")!.status().size + peers.get("b")!.status().size >= total - 2);
      results.push([
        "manual: rmpeer c on a -> c's space owned by a or b",
        performance.now() - start,
      ]);
    } finally {
      clearInterval(timer);
      network.close();
      peers.forEach((p) => p.close());
    }
  }
  {
    const reclaimAfterMs = 2000;
    const { network, peers, timer, until } = await startCluster(["a", "b", "c"], {
      reclaimAfterMs,
    });
    try {
      network.crash("c");
      const start = performance.now();
      await until(() => peers.get("a")!.status().size + peers.get("b")!.status().size >= 65536 - 2);
      results.push([
        `automatic (--ipam-reclaim-after ${reclaimAfterMs} ms): crash -> reusable`,
        performance.now() - start,
      ]);
    } finally {
      clearInterval(timer);
      network.close();
      peers.forEach((p) => p.close());
    }
  }
  console.log(
    `\n## Time from a peer's removal to its space being reusable (ms), delay ${DELAY} ms`,
  );
  console.log(row(["case", "ms"]));
  for (const [name, ms] of results) console.log(row([name, ms]));
  console.log(row(["baseline: Weave Net (no automatic reclaim; rmpeer manual)", "n/a"]));
}

/**
 * A cluster of 3 consensus peers and 9 observers that each got space (12 peers, a ring of some
 * dozens of entries), and the states around one more donation: the donor's state before it
 * and after it. Built with `signers` (real keys, or none for the baseline).
 */
async function donationStates(
  signers?: { for(name: string): ReturnType<typeof unverifiedSigner> },
) {
  const sim = new Simulation({ seed: 7, range: "10.32.0.0/20", signers });
  const founders = ["a", "b", "c"];
  for (const name of founders) await sim.start(name, { mode: "consensus", peers: 3 });
  sim.settle();
  for (let i = 0; i < 9; i++) {
    await sim.start(`o${i}`, { mode: "observer" });
    sim.settle();
    await sim.drive(sim.peer(`o${i}`).allocate("first"));
    sim.settle();
  }
  const newcomer = await sim.start("n", { mode: "observer" });
  sim.settle();
  const before = sim.peer("a").ringState();
  sim.network.partition([["a", "n"]]);
  await sim.drive(newcomer.allocate("first"));
  const after = sim.peer("a").ringState();
  return { sim, before, after };
}

/** A peer "r" that holds `state`, ready to merge what comes next. */
async function receiver(state: string, signer: ReturnType<typeof unverifiedSigner>) {
  const store = new MemoryStore();
  store.setValue("cluster-range", "10.32.0.0/20");
  store.setValue("ring", state);
  return await ClusterIpam.open({
    store,
    clusterRange: parseCidr("10.32.0.0/20"),
    peerName: "r",
    transport: new MemoryNetwork().join("r"),
    init: { mode: "observer" },
    signer,
  });
}

async function signatureCost(): Promise<void> {
  const signed = await donationStates();
  const unsigned = await donationStates({ for: () => unverifiedSigner() });
  const n = Math.min(SAMPLES, 40);
  const measure = async (
    states: Awaited<ReturnType<typeof donationStates>>,
    signer: ReturnType<typeof unverifiedSigner>,
    from: string | undefined,
    incoming: string,
  ) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await receiver(from ?? states.before, signer);
      out.push(await time(() => Promise.resolve(r.handleState("a", incoming))));
      r.close();
    }
    return out;
  };
  const cases: Array<[string, string | undefined, "after" | "before"]> = [
    ["merge one donation's news (split, give, records)", undefined, "after"],
    ["merge a state with nothing new", "after", "after"],
  ];
  console.log(
    `
## Cost of per-peer signatures per merge (ms), 13 peers; signed: Ed25519 via node:crypto; ` +
      `baseline: the same code checking nothing`,
  );
  console.log(row(["merge (p50 unless said)", "signed", "baseline", "signed p99", "ratio"]));
  for (const [name, from, incoming] of cases) {
    const a = await measure(
      signed,
      signed.sim.signers.for("r"),
      from && signed[from as "after"],
      signed[incoming],
    );
    const b = await measure(
      unsigned,
      unverifiedSigner(),
      from && unsigned[from as "after"],
      unsigned[incoming],
    );
    console.log(
      row([
        name,
        percentile(a, 50),
        percentile(b, 50),
        percentile(a, 99),
        percentile(a, 50) / percentile(b, 50),
      ]),
    );
  }
  // A new peer takes the whole ring: every signature in it is checked once.
  const whole = async (
    states: Awaited<ReturnType<typeof donationStates>>,
    signer: ReturnType<typeof unverifiedSigner>,
  ) => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await ClusterIpam.open({
        store: new MemoryStore(),
        clusterRange: parseCidr("10.32.0.0/20"),
        peerName: "r",
        transport: new MemoryNetwork().join("r"),
        init: { mode: "observer" },
        signer,
      });
      out.push(await time(() => Promise.resolve(r.handleState("a", states.after))));
      r.close();
    }
    return out;
  };
  const a = await whole(signed, signed.sim.signers.for("r"));
  const b = await whole(unsigned, unverifiedSigner());
  console.log(
    row([
      "a new peer merges the whole ring",
      percentile(a, 50),
      percentile(b, 50),
      percentile(a, 99),
      percentile(a, 50) / percentile(b, 50),
    ]),
  );
  const bytes = new TextEncoder().encode(signed.after).length;
  const entries = (JSON.parse(signed.after).entries as unknown[]).length;
  console.log(`ring state: ${bytes} bytes, ${entries} entries, 13 peer records (signed)`);
  // The primitive itself, as the IPAM calls it.
  const signer = signed.sim.signers.for("a");
  const data = new TextEncoder().encode(signed.after.slice(0, 400));
  const sig = signer.sign(data);
  const signTimes: number[] = [];
  const verifyTimes: number[] = [];
  for (let i = 0; i < 200; i++) {
    signTimes.push(await time(() => Promise.resolve(signer.sign(data))));
    verifyTimes.push(await time(() => Promise.resolve(signer.verify("a", data, sig))));
  }
  console.log(
    row([
      "one Ed25519 signature / verification (ms p50)",
      percentile(signTimes, 50),
      percentile(verifyTimes, 50),
      "-",
      "-",
    ]),
  );
  signed.sim[Symbol.dispose]();
  unsigned.sim[Symbol.dispose]();
}

await localLatency();
await clusterLatency();
await removalTime();
await signatureCost();
