/**
 * Mesh simulation: N peers in one process on the in-memory network and a simulated clock.
 * Each peer is given `--peers` of a few random others (discovery off, like a cluster started from
 * a node list), all start at t=0. Prints, for N = 10, 100, 1000: simulated time until every peer
 * holds the same topology with routes to everyone, time for one change to reach every peer, and
 * bytes each peer sends per second once converged, beside the targets. Then the memory one mesh
 * needs to hold 100 remote peers (measured in a child process so the simulation does not count).
 *
 * A last row runs 100 peers with discovery on (a full mesh, as most clusters end up), unless
 * `--no-full`. Then the cost of signatures: the 100-peer runs again with a scheme that signs
 * nothing and accepts everything (frames stay sealed in both), CPU time side by side.
 *
 *   deno run -A --v8-flags=--expose-gc bench/mesh_sim.ts [--sizes 10,100,1000] [--degree 3]
 */
// the same seeded generator the IPAM simulations use, so runs are repeatable
import { seededRandom } from "../src/ipam/testing.ts";
import process from "node:process";
import { Mesh } from "../src/mesh/mod.ts";
import {
  IdentityKey,
  InsiderClient,
  MemoryNetwork,
  type SignatureScheme,
  SimClock,
  unsignedScheme,
} from "../src/mesh/testing.ts";
import { type PeerRecord, recordSigningBytes } from "../src/mesh/record.ts";

interface SimResult {
  n: number;
  label: string;
  /** Baseline: Weave-style whole-topology gossip to every neighbour every 30 s, same mesh. */
  baselineBytesPerPeerPerSec: number;
  convergeMs: number;
  spreadMs: number;
  bytesPerPeerPerSec: number;
  maxBytesPerPeerPerSec: number;
  wallMs: number;
  /** CPU time of the whole run (user + system). */
  cpuMs: number;
  signs: number;
  verifies: number;
}

/** Counts what a scheme does, to report signatures made and checked. */
function counted(scheme: SignatureScheme, counts: { signs: number; verifies: number }) {
  return {
    publicKey: scheme.publicKey,
    sign: (data: Uint8Array) => (counts.signs++, scheme.sign(data)),
    verify: (key: string, data: Uint8Array, sig: string) => (
      counts.verifies++, scheme.verify(key, data, sig)
    ),
  };
}

function converged(meshes: Mesh[], n: number, withRoutes: boolean): boolean {
  const digest = meshes[0].digest();
  if (!digest.startsWith(`${n}:`)) return false;
  if (!meshes.every((m) => m.digest() === digest)) return false;
  return !withRoutes || meshes.every((m) => Object.keys(m.routes()).length === n - 1);
}

async function simulate(
  n: number,
  options: { degree: number; discovery?: boolean; signed?: boolean },
): Promise<SimResult> {
  const { degree, discovery = false, signed = true } = options;
  const counts = { signs: 0, verifies: 0 };
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  const random = seededRandom(n * 7919 + degree);
  const clock = new SimClock({ start: 1_700_000_000_000 });
  const network = new MemoryNetwork({ clock, random, latencyMs: 1, jitterMs: 1 });
  const address = (i: number) => `10.${(i >> 8) & 255}.${i & 255}.1:6783`;
  const meshes: Mesh[] = [];
  for (let i = 0; i < n; i++) {
    const peers = new Set<string>();
    while (peers.size < Math.min(degree, n - 1)) {
      const j = Math.floor(random() * n);
      if (j !== i) peers.add(address(j));
    }
    meshes.push(
      new Mesh({
        name: `peer-${i.toString().padStart(4, "0")}`,
        nickname: `node${i}`,
        key: counted(signed ? IdentityKey.generate() : unsignedScheme(), counts),
      }, {
        clock,
        random,
        transport: network.transport(address(i)),
        port: 6783,
        peers: [...peers],
        discovery,
        password: "bench-secret",
      }),
    );
  }
  const t0 = clock.now();
  for (const mesh of meshes) await mesh.start();
  // Converge: everyone holds the same N records and has a route to every other peer.
  let convergeMs = NaN;
  while (clock.now() - t0 < 120_000) {
    clock.advance(50);
    if (converged(meshes, n, true)) {
      convergeMs = clock.now() - t0;
      break;
    }
  }
  clock.advance(10_000);
  // Quiet cost: bytes sent by all peers over a minute once nothing changes.
  const sent = meshes.map((m) => m.metrics().gossipBytesSent);
  const window = 60_000;
  clock.advance(window);
  const perPeer = meshes.map((m, i) => (m.metrics().gossipBytesSent - sent[i]) / (window / 1000));
  // The baseline each peer would pay sending its whole topology to each neighbour every 30 s.
  const topologyBytes = meshes[0].peers().reduce((sum, p) => {
    const { self: _, reachable: __, lastSeen: ___, ...record } = p;
    return sum + JSON.stringify(record).length;
  }, 0);
  const neighbours = meshes.map((m) =>
    m.connections().filter((c) => c.state === "established" && c.peer !== undefined).length
  );
  const baselineBytesPerPeerPerSec = neighbours.reduce((a, b) => a + b, 0) / n * topologyBytes /
    30;
  const bytesPerPeerPerSec = perPeer.reduce((a, b) => a + b, 0) / n;
  const maxBytesPerPeerPerSec = Math.max(...perPeer);
  // Spread: one peer changes a blob; when does every peer hold it?
  const origin = meshes[Math.floor(random() * n)];
  const t1 = clock.now();
  const before = origin.digest();
  origin.setLocalData("bench", "changed");
  let spreadMs = NaN;
  while (clock.now() - t1 < 60_000) {
    clock.advance(5);
    if (origin.digest() !== before && converged(meshes, n, false)) {
      spreadMs = clock.now() - t1;
      break;
    }
  }
  for (const mesh of meshes) await mesh.stop();
  clock.advance(1000);
  const cpu = process.cpuUsage(cpuStart);
  return {
    n,
    label: `${discovery ? `${n} (full mesh by discovery)` : String(n)}${
      signed ? "" : ", unsigned"
    }`,
    cpuMs: (cpu.user + cpu.system) / 1000,
    ...counts,
    baselineBytesPerPeerPerSec,
    convergeMs,
    spreadMs,
    bytesPerPeerPerSec,
    maxBytesPerPeerPerSec,
    wallMs: performance.now() - wallStart,
  };
}

/** Child process: one mesh fed 100 remote peer records over a raw in-memory link. */
async function memoryChild(remotes: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const clock = new SimClock();
  const network = new MemoryNetwork({ clock });
  gc();
  const before = Deno.memoryUsage();
  const mesh = new Mesh({ name: "target", nickname: "target" }, {
    clock,
    transport: network.transport("10.0.0.1:6783"),
    port: 6783,
  });
  await mesh.start();
  const records: PeerRecord[] = [];
  for (let i = 0; i < remotes; i++) {
    const name = `remote-${i}`;
    const key = IdentityKey.generate();
    const unsigned = {
      name,
      nickname: `node-${i}`,
      incarnation: "0190000000000000abcd",
      version: 7,
      connections: [1, 2, 3, 4].map((k) => ({
        peer: `remote-${(i + k) % remotes}`,
        address: `10.1.${(i + k) % 250}.1:6783`,
      })),
      data: {
        datapath: JSON.stringify({
          vtep: `10.1.${i % 250}.1`,
          mac: "02:42:ac:11:00:02",
          mtu: 1450,
        }),
        ipam: JSON.stringify({ ranges: [[`10.32.${i}.0`, `10.32.${i}.255`]], free: 200 }),
      },
      key: key.publicKey,
    };
    records.push({ ...unsigned, sig: key.sign(recordSigningBytes(unsigned)) });
  }
  const feeder = new InsiderClient(network.transport("10.0.0.2:6783"), "10.0.0.1:6783", {
    name: "feeder",
  });
  feeder.send({ t: "gossip", r: records });
  clock.advance(2000);
  gc();
  const after = Deno.memoryUsage();
  const held = mesh.peers().length;
  console.log(JSON.stringify({
    held,
    heapDelta: after.heapUsed - before.heapUsed,
    rss: after.rss,
  }));
  await mesh.stop();
}

async function measureMemory(remotes: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "--memory-child",
      String(remotes),
    ],
    stdout: "piped",
  });
  const output = await child.output();
  return JSON.parse(new TextDecoder().decode(output.stdout).trim().split("\n").at(-1)!);
}

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i < 0 ? undefined : Deno.args[i + 1];
}

if (import.meta.main) {
  if (Deno.args[0] === "--memory-child") {
    await memoryChild(Number(Deno.args[1] ?? 100));
  } else {
    const sizes = (arg("--sizes") ?? "10,100,1000").split(",").map(Number);
    const degree = Number(arg("--degree") ?? 3);
    const rows: SimResult[] = [];
    const runs = sizes.map((n) => ({ n, discovery: false, signed: true }));
    // What most clusters run: discovery on, so every peer ends up connected to every other.
    if (!Deno.args.includes("--no-full")) runs.push({ n: 100, discovery: true, signed: true });
    // The same 100-peer runs without signatures: their cost is the CPU difference.
    const unsigned = runs.filter((r) => r.n === 100).map((r) => ({ ...r, signed: false }));
    runs.push(...unsigned);
    for (const { n, discovery, signed } of runs) {
      rows.push(await simulate(n, { degree, discovery, signed }));
      console.error(
        `  simulated ${rows.at(-1)!.label} in ${Math.round(rows.at(-1)!.wallMs)} ms wall`,
      );
    }
    const fmt = (x: number, d = 0) => (Number.isNaN(x) ? "never" : x.toFixed(d));
    console.log(
      `\nMesh simulation: each peer dials ${degree} random peers, password on, 1-2 ms links`,
    );
    console.log(
      "| N | converge (sim ms) | spread one change (sim ms) | target | bytes/peer/s quiet (avg / max) | target | baseline: whole topology every 30 s | wall ms | CPU ms | signed / checked |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) {
      console.log(
        `| ${r.label} | ${fmt(r.convergeMs)} | ${fmt(r.spreadMs)} | < 3000 | ${
          fmt(r.bytesPerPeerPerSec)
        } / ${fmt(r.maxBytesPerPeerPerSec)} | < 10240 | ${fmt(r.baselineBytesPerPeerPerSec)} | ${
          fmt(r.wallMs)
        } | ${fmt(r.cpuMs)} | ${r.signs} / ${r.verifies} |`,
      );
    }
    for (const u of rows.filter((r) => r.label.endsWith(", unsigned"))) {
      const s = rows.find((r) => r.label === u.label.replace(", unsigned", ""))!;
      console.log(
        `\nSignatures at ${s.label}: ${fmt(s.cpuMs)} CPU ms signed vs ${fmt(u.cpuMs)} unsigned ` +
          `(+${fmt(s.cpuMs - u.cpuMs)} ms for ${s.signs} signatures made and ${s.verifies} ` +
          `checked, ${
            fmt((s.cpuMs - u.cpuMs) * 1000 / Math.max(1, s.signs + s.verifies))
          } us each)`,
      );
    }
    const baseline = await measureMemory(0);
    const memory = await measureMemory(100);
    console.log(`\nMemory of one mesh (child process, after GC):`);
    console.log("| remote peers held | heap used delta | process RSS |");
    console.log("|---|---|---|");
    for (const m of [baseline, memory]) {
      console.log(
        `| ${m.held - 1} | ${(m.heapDelta / 1024).toFixed(0)} KiB | ${
          (m.rss / 1048576).toFixed(1)
        } MiB |`,
      );
    }
  }
}
