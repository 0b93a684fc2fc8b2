/**
 * The moves every lab here is built from: a namespace with its loopback up, a veth pair whose
 * ends live in two namespaces (created in one, the peer born in the other, so no link ever
 * appears in the root namespace), and a TCP transfer between two namespaces with iperf3.
 * Tests, the demo and the benchmarks share them.
 */
import { run } from "../../src/net/exec.ts";

/** Creates a network namespace and brings its loopback up. */
export async function addNamespace(name: string): Promise<void> {
  await run(["ip", "netns", "add", name]);
  await run(["ip", "-n", name, "link", "set", "lo", "up"]);
}

export interface VethEnd {
  netns: string;
  name: string;
}

/**
 * A veth pair from `a` to `b`. Options: an MTU for both ends, a MAC for `a`'s end, a bridge in
 * `b`'s namespace for its end to join; both ends are brought up.
 */
export async function addVeth(
  a: VethEnd,
  b: VethEnd,
  options: { mtu?: number; macA?: string; bridgeB?: string } = {},
): Promise<void> {
  const mtu = options.mtu === undefined ? [] : ["mtu", String(options.mtu)];
  await run([
    "ip",
    "-n",
    a.netns,
    "link",
    "add",
    a.name,
    ...mtu,
    "type",
    "veth",
    "peer",
    "name",
    b.name,
    ...mtu,
    "netns",
    b.netns,
  ]);
  const mac = options.macA === undefined ? [] : ["address", options.macA];
  await run(["ip", "-n", a.netns, "link", "set", a.name, ...mac, "up"]);
  const master = options.bridgeB === undefined ? [] : ["master", options.bridgeB];
  await run(["ip", "-n", b.netns, "link", "set", b.name, ...master, "up"]);
}

export interface TransferResult {
  ok: boolean;
  bitsPerSecond: number;
  /** Bytes the receiver counted before the test ended (may trail `sent` on short runs). */
  bytes: number;
  sent: number;
  /** Bytes received per reporting interval (1 s by default). */
  intervals: number[];
  error?: string;
}

/** A TCP transfer with iperf3 from one pod namespace to a server in another. */
export async function iperfTransfer(
  route: { from: string; to: string; toIp: string },
  args: string[] = ["-n", "20M"],
): Promise<TransferResult> {
  const server = new Deno.Command("ip", {
    args: ["netns", "exec", route.to, "iperf3", "-s", "-1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    // The server needs a moment to listen; retry the client instead of sleeping a fixed time.
    for (let attempt = 0;; attempt++) {
      const client = await run(
        ["ip", "netns", "exec", route.from, "iperf3", "-c", route.toIp, "-J", ...args],
        { allowFailure: true },
      );
      let report: {
        error?: string;
        end?: {
          sum_received?: { bits_per_second: number; bytes: number };
          sum_sent?: { bytes: number };
        };
        intervals?: Array<{ sum: { bytes: number } }>;
      };
      try {
        report = JSON.parse(client.stdout);
      } catch {
        report = { error: client.stderr || "no iperf3 report" };
      }
      if (report.error && /connect|refused/i.test(report.error) && attempt < 20) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      const received = report.end?.sum_received;
      return {
        ok: client.code === 0 && !report.error,
        bitsPerSecond: received?.bits_per_second ?? 0,
        bytes: received?.bytes ?? 0,
        sent: report.end?.sum_sent?.bytes ?? 0,
        intervals: (report.intervals ?? []).map((i) => i.sum.bytes),
        error: report.error,
      };
    }
  } finally {
    try {
      server.kill("SIGKILL");
    } catch { /* exited after its one test */ }
    await server.status;
  }
}
