/**
 * One pod's test process for NetworkPolicy lab tests, run inside the pod's network namespace
 * (`ip netns exec POD deno run -A policy_probe.ts`): it serves TCP and UDP on ports 80 and 81
 * (a TCP connection is accepted and closed, a UDP datagram echoed), remembers every source that
 * reached a server, and probes other addresses on command: many at once, each with a deadline,
 * so a full matrix costs one timeout, not one per denied probe.
 *
 * Commands are JSON lines on stdin, answers JSON lines on stdout, matched by `id`:
 *   {"id":1,"op":"probe","targets":[["10.32.0.5","tcp",80],...],"timeoutMs":500}
 *     -> {"id":1,"results":[true,false,...]}        (true: connected / echo came back)
 *   {"id":2,"op":"seen","clear":true}  -> {"id":2,"seen":["tcp/80 10.32.0.3",...]}
 *   {"id":3,"op":"loop","targets":[...],"intervalMs":10,"timeoutMs":200}  -> {"id":3}
 *     (probes the targets again and again, from before this pod has an address until stopped)
 *   {"id":4,"op":"stop","loop":3}  -> {"id":4,"rounds":N,"successes":[n,...]}
 * It prints {"ready":true} once its servers listen.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer } from "node:net";

const PORTS = [80, 81];
const seen = new Set<string>();
const encoder = new TextEncoder();

function reply(message: unknown): void {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify(message) + "\n"));
}

function clientAddress(address: string | undefined): string {
  return (address ?? "?").replace(/^::ffff:/, "");
}

async function serve(): Promise<void> {
  for (const port of PORTS) {
    const tcp = createServer((socket) => {
      seen.add(`tcp/${port} ${clientAddress(socket.remoteAddress)}`);
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(port, "0.0.0.0", resolve);
    });
    const udp = createSocket("udp4");
    udp.on("message", (data, from) => {
      seen.add(`udp/${port} ${from.address}`);
      udp.send(data, from.port, from.address);
    });
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, "0.0.0.0", () => resolve());
    });
  }
}

type Target = [string, "tcp" | "udp", number];

function probeTcp(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      // destroying closes the socket: no SYN is retransmitted after the deadline
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function probeUdp(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket: UdpSocket = createSocket("udp4");
    const token = crypto.randomUUID();
    const done = (ok: boolean) => {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // closed already
      }
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("message", (data) => {
      if (new TextDecoder().decode(data) === token) done(true);
    });
    socket.on("error", () => done(false));
    socket.send(token, port, ip);
  });
}

function probe(targets: Target[], timeoutMs: number): Promise<boolean[]> {
  return Promise.all(
    targets.map(([ip, protocol, port]) =>
      protocol === "tcp" ? probeTcp(ip, port, timeoutMs) : probeUdp(ip, port, timeoutMs)
    ),
  );
}

const loops = new Map<number, { stop: boolean; rounds: number; successes: number[] }>();

async function loop(id: number, targets: Target[], intervalMs: number, timeoutMs: number) {
  const state = { stop: false, rounds: 0, successes: targets.map(() => 0) };
  loops.set(id, state);
  while (!state.stop) {
    const results = await probe(targets, timeoutMs);
    results.forEach((ok, i) => state.successes[i] += ok ? 1 : 0);
    state.rounds++;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

interface Command {
  id: number;
  op: "probe" | "seen" | "loop" | "stop";
  targets?: Target[];
  timeoutMs?: number;
  intervalMs?: number;
  clear?: boolean;
  loop?: number;
}

async function handle(command: Command): Promise<void> {
  const { id } = command;
  switch (command.op) {
    case "probe":
      return reply({ id, results: await probe(command.targets ?? [], command.timeoutMs ?? 500) });
    case "seen": {
      const list = [...seen].sort();
      if (command.clear) seen.clear();
      return reply({ id, seen: list });
    }
    case "loop":
      loop(id, command.targets ?? [], command.intervalMs ?? 10, command.timeoutMs ?? 200);
      return reply({ id });
    case "stop": {
      const state = loops.get(command.loop ?? -1);
      if (!state) return reply({ id, error: `no loop ${command.loop}` });
      state.stop = true;
      loops.delete(command.loop!);
      return reply({ id, rounds: state.rounds, successes: state.successes });
    }
  }
}

await serve();
reply({ ready: true });
let buffer = "";
const decoder = new TextDecoder();
for await (const chunk of Deno.stdin.readable) {
  buffer += decoder.decode(chunk, { stream: true });
  let newline;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, newline);
    buffer = buffer.slice(newline + 1);
    if (line.trim()) handle(JSON.parse(line)).catch((error) => reply({ error: String(error) }));
  }
}
