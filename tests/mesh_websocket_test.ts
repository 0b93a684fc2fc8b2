/**
 * The mesh over real WebSockets on 127.0.0.1 with ephemeral ports: authentication, convergence,
 * heartbeats against a frozen process, restart, forget, TLS, and hostile frames that must close
 * one connection only. One peer runs as a child process (this same file, WTM_CHILD set) so it can
 * be frozen with SIGSTOP and killed for real. No kernel objects are created.
 *
 * The wire's own limits are tested at the end, on loopback (127.0.0.1 and ::1 give two source
 * addresses): request head deadline and size, the authentication deadline, budgets per source
 * and in total, frame sizes judged at the header, ping, the close handshake, the connection
 * limit on sockets, and a child process run out of descriptors.
 */
import { helloMessage, newEphemeral, newNonce } from "../src/mesh/handshake.ts";
import { makeTestCertificates } from "./support/tls.ts";
import { attack, readEvents, readUntilClosed, upgrade } from "./support/hostile.ts";
import assert from "node:assert/strict";
import { type Link, Mesh, type MeshOptions, WebSocketTransport } from "../src/mesh/mod.ts";
import { encodeClose, encodeFrame, Opcode } from "../src/mesh/websocket/frame.ts";

const FAST: MeshOptions = {
  host: "127.0.0.1",
  port: 0,
  discovery: false,
  heartbeatMs: 200,
  deadAfterMs: 1000,
  retryMinMs: 100,
  retryMaxMs: 400,
  batchMs: 10,
  routeDelayMs: 10,
  gossipIntervalMs: 500,
};

async function waitFor(what: string, condition: () => boolean, limitMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > limitMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function mesh(name: string, options: MeshOptions = {}): Promise<Mesh> {
  const m = await Mesh.create({ ...FAST, name, nickname: `node-${name}`, ...options });
  await m.start();
  return m;
}

function established(m: Mesh): string[] {
  return m.connections().filter((c) => c.state === "established").map((c) => c.peer!).sort();
}

function sees(m: Mesh, names: string[]): boolean {
  const peers = m.peers();
  return peers.length === names.length && peers.every((p) => names.includes(p.name) && p.reachable);
}

async function stopAll(meshes: Mesh[]): Promise<void> {
  for (const m of meshes) await m.stop();
}

Deno.test("three peers with a password converge; wrong or no password is refused and learns nothing", async () => {
  const meshes: Mesh[] = [];
  try {
    const a = await mesh("a", { password: "correct horse" });
    meshes.push(a);
    const b = await mesh("b", { password: "correct horse", peers: [a.address] });
    meshes.push(b);
    const c = await mesh("c", { password: "correct horse", peers: [a.address, b.address] });
    meshes.push(c);
    await waitFor("convergence", () => [a, b, c].every((m) => sees(m, ["a", "b", "c"])));
    for (const m of [a, b, c]) assert.equal(established(m).length, 2);
    assert.deepEqual(a.sessionKey("b"), b.sessionKey("a"));
    assert.notDeepEqual(a.sessionKey("b"), a.sessionKey("c"));
    assert.equal(a.nextHop("c"), "c");

    const wrong = await mesh("w", { password: "battery staple", peers: [a.address, b.address] });
    meshes.push(wrong);
    const none = await mesh("n", { peers: [c.address] });
    meshes.push(none);
    await waitFor(
      "refusals",
      () => [wrong, none].every((m) => m.connections().every((c) => c.lastError !== undefined)),
    );
    for (const outsider of [wrong, none]) {
      assert.deepEqual(outsider.peers().map((p) => p.name), [outsider.name]);
      assert.equal(established(outsider).length, 0);
      assert.match(outsider.connections()[0].lastError!, /password/);
    }
    for (const m of [a, b, c]) assert.deepEqual(m.peers().map((p) => p.name), ["a", "b", "c"]);
    const bytes = a.metrics().gossipBytesSent;
    assert.ok(bytes > 0);
  } finally {
    await stopAll(meshes);
  }
});

Deno.test("hostile frames close that connection only", async () => {
  const meshes: Mesh[] = [];
  try {
    const a = await mesh("a", { maxFrameBytes: 64 * 1024 });
    meshes.push(a);
    const b = await mesh("b", { peers: [a.address] });
    meshes.push(b);
    await waitFor("a and b connected", () => sees(a, ["a", "b"]) && sees(b, ["a", "b"]));
    const terminations = a.metrics().terminations;
    // a hello the mesh accepts, so "gossip before auth" is refused for being out of turn
    const hello = JSON.stringify(
      helloMessage(newNonce(), { auth: false, dh: newEphemeral().publicKey }),
    );
    const attacks: Array<[string, string[] | Uint8Array[]]> = [
      ["binary frame", [new Uint8Array([1, 2, 3])]],
      ["not JSON", ["{this is not json"]],
      ["oversized frame", ["x".repeat(100 * 1024)]],
      ["auth before hello", [JSON.stringify({ t: "auth", name: "x", nickname: "x" })]],
      ["gossip before auth", [hello, JSON.stringify({ t: "gossip", r: [] })]],
      ["bad hello", [JSON.stringify({ t: "hello", proto: "v1" })]],
    ];
    for (const [what, frames] of attacks) {
      const socket = new WebSocket(`ws://${a.address}/weft/mesh`);
      const closed = new Promise<void>((resolve) => socket.onclose = () => resolve());
      await new Promise((resolve) => socket.onopen = resolve);
      for (const frame of frames) socket.send(frame);
      const outcome = await Promise.race([
        closed.then(() => "closed"),
        new Promise((resolve) => setTimeout(() => resolve("still open"), 3000)),
      ]);
      assert.equal(outcome, "closed", `${what} must close the connection`);
    }
    const http = await fetch(`http://${a.address}/`);
    assert.equal(http.status, 426);
    await http.body?.cancel();
    // The established link was untouched and still carries gossip and messages.
    assert.equal(a.metrics().terminations, terminations);
    assert.deepEqual(established(a), ["b"]);
    const got: string[] = [];
    b.onMessage("test", (payload, from) => got.push(`${from}:${payload}`));
    assert.ok(a.send("b", "test", "still here"));
    a.setLocalData("datapath", "after-attacks");
    await waitFor(
      "message and data",
      () => got.length === 1 && b.peer("a")?.data.datapath === "after-attacks",
    );
  } finally {
    await stopAll(meshes);
  }
});

Deno.test("forget stops reconnection", async () => {
  const meshes: Mesh[] = [];
  // "a" restarts below: its state dir keeps its identity key, or b would refuse the new one.
  const stateDir = await Deno.makeTempDir({ prefix: "wtm-forget-" });
  try {
    const a = await mesh("a", { stateDir });
    meshes.push(a);
    const b = await mesh("b", { peers: [a.address] });
    meshes.push(b);
    await waitFor("connected", () => sees(b, ["a", "b"]));
    const port = Number(a.address.split(":")[1]);
    b.forget(a.address);
    assert.deepEqual(b.targets(), []);
    await a.stop();
    await waitFor("b notices a is gone", () => b.peer("a")?.reachable === false);
    const again = await mesh("a", { port, stateDir });
    meshes.push(again);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(established(b).length, 0, "b must not dial a forgotten address");
    b.connect(again.address);
    await waitFor("reconnected after connect", () => sees(b, ["a", "b"]));
  } finally {
    await stopAll(meshes);
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("TLS: peers dial wss:// and trust the given CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-tls-" });
  const meshes: Mesh[] = [];
  try {
    const { ca, cert, key } = await makeTestCertificates(dir, ["127.0.0.1"]);
    const tls = { cert, key };
    const a = await mesh("a", { tls, caCerts: [ca], password: "p" });
    meshes.push(a);
    const b = await mesh("b", { tls, caCerts: [ca], password: "p", peers: [a.address] });
    meshes.push(b);
    await waitFor("TLS convergence", () => sees(a, ["a", "b"]) && sees(b, ["a", "b"]));
    const untrusting = await mesh("u", { tls, password: "p", peers: [a.address] });
    meshes.push(untrusting);
    await waitFor("certificate refusal", () => untrusting.connections()[0].lastError !== undefined);
    assert.deepEqual(untrusting.peers().map((p) => p.name), ["u"]);
  } finally {
    await stopAll(meshes);
    await Deno.remove(dir, { recursive: true });
  }
});

/** A peer in a child process, reporting its address and view as JSON lines on stdout. */
class ChildPeer {
  process: Deno.ChildProcess;
  address = "";
  lines: string[] = [];
  #reader: Promise<void>;

  constructor(options: Record<string, unknown>) {
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!],
      env: { WTM_CHILD: JSON.stringify(options) },
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.process = process;
    this.#reader = (async () => {
      let buffer = "";
      for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          this.lines.push(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
      }
    })();
  }

  async ready(): Promise<string> {
    await waitFor("child peer to listen", () => this.lines.length > 0, 20_000);
    this.address = JSON.parse(this.lines[0]).address;
    return this.address;
  }

  get incarnation(): string {
    return JSON.parse(this.lines[0]).incarnation;
  }

  get name(): string {
    return JSON.parse(this.lines[0]).name;
  }

  signal(signal: Deno.Signal): void {
    try {
      this.process.kill(signal);
    } catch {
      // Already gone.
    }
  }

  async finish(): Promise<void> {
    this.signal("SIGKILL");
    await this.process.status;
    await this.#reader.catch(() => {});
  }
}

Deno.test("a frozen peer is marked down within the heartbeat bound and accepted back after restart", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "wtm-state-" });
  const meshes: Mesh[] = [];
  const children: ChildPeer[] = [];
  try {
    const a = await mesh("a", { password: "p" });
    meshes.push(a);
    const b = await mesh("b", { password: "p", peers: [a.address] });
    meshes.push(b);
    const first = new ChildPeer({ stateDir, password: "p", peers: [a.address, b.address] });
    children.push(first);
    await first.ready();
    await waitFor(
      "three converge",
      () => sees(a, ["a", "b", first.name]) && sees(b, ["a", "b", first.name]),
    );
    const down: number[] = [];
    a.on("peer-down", (p) => p.name === first.name && down.push(Date.now()));
    b.on("peer-down", (p) => p.name === first.name && down.push(Date.now()));
    const frozenAt = Date.now();
    first.signal("SIGSTOP");
    // Bound: deadAfterMs + one heartbeat period + batching; generous for a loaded machine.
    await waitFor("both mark it down", () => down.length === 2, 5000);
    assert.ok(Math.max(...down) - frozenAt >= FAST.deadAfterMs! - 100, "not before silence");
    assert.equal(a.peer(first.name)!.reachable, false);
    await first.finish();

    const second = new ChildPeer({
      stateDir,
      password: "p",
      port: Number(first.address.split(":")[1]),
      peers: [a.address],
    });
    children.push(second);
    await second.ready();
    assert.ok(second.incarnation > first.incarnation, "a restart is a new incarnation");
    await waitFor(
      "accepted back",
      () =>
        [a, b].every((m) =>
          m.peer(first.name)?.incarnation === second.incarnation &&
          m.peer(first.name)?.reachable === true
        ),
    );
  } finally {
    for (const child of children) await child.finish();
    await stopAll(meshes);
    await Deno.remove(stateDir, { recursive: true });
  }
});

// ---- the wire's limits ----------------------------------------------------------------------

const text = new TextEncoder();
const decoder = new TextDecoder();

/** A transport on loopback whose accepted links are collected; closed by the caller. */
async function wire(
  options: ConstructorParameters<typeof WebSocketTransport>[0] = {},
  onLink: (link: Link) => void = () => {},
) {
  const accepted: Link[] = [];
  const transport = new WebSocketTransport({ host: "127.0.0.1", port: 0, ...options });
  const address = await transport.listen((link) => {
    accepted.push(link);
    onLink(link);
  });
  return { transport, address, accepted };
}

function port(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

async function sendRaw(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) at += await conn.write(bytes.subarray(at));
}

Deno.test("wire: a request head must arrive whole and in time; silent, slow and huge heads are closed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wtm-head-" });
  const { transport, address, accepted } = await wire({ limits: { headTimeoutMs: 200 } });
  const { cert, key } = await makeTestCertificates(dir, ["127.0.0.1"]);
  const secure = await wire({ tls: { cert, key }, limits: { headTimeoutMs: 200 } });
  try {
    const silent = await attack({
      target: address,
      mode: "silent-tcp",
      connections: 4,
      durationMs: 2000,
    });
    assert.ok(silent.closedByServer >= 4, `silent sockets closed: ${JSON.stringify(silent)}`);
    const slow = await attack({
      target: address,
      mode: "slowloris",
      connections: 4,
      durationMs: 2000,
      slowIntervalMs: 50,
    });
    assert.ok(slow.closedByServer >= 4, `slow heads closed: ${JSON.stringify(slow)}`);
    // a TLS client that never starts its handshake is on the same clock
    const tlsSilent = await attack({
      target: secure.address,
      mode: "silent-tcp",
      connections: 2,
      durationMs: 2000,
    });
    assert.ok(tlsSilent.closedByServer >= 2, `TLS-silent closed: ${JSON.stringify(tlsSilent)}`);
    // a head that never ends is cut at 8 KiB, not read forever
    const huge = await Deno.connect({ hostname: "127.0.0.1", port: port(address) });
    const closed = readUntilClosed(huge);
    await sendRaw(huge, text.encode("GET /weft/mesh HTTP/1.1\r\nX: " + "a".repeat(9000))).catch(
      () => {},
    );
    await closed;
    huge.close();
    assert.equal(accepted.length, 0, "nothing reached the mesh");
    assert.ok(transport.stats().badRequests >= 9);
    await waitFor("every socket released", () => transport.stats().unauthenticated === 0);
  } finally {
    await transport.close();
    await secure.transport.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wire: a connection that upgrades, says hello and then nothing is closed at the authentication deadline", async () => {
  const transport = new WebSocketTransport({
    host: "127.0.0.1",
    port: 0,
    limits: { authTimeoutMs: 300 },
  });
  // the mesh's own handshake timeout is far away: the transport's deadline must act alone
  const a = await mesh("a", { transport, handshakeTimeoutMs: 60_000 });
  try {
    const report = await attack({
      target: a.address,
      mode: "held-upgrade",
      helloAuth: false, // a has no password: a hello claiming one would be refused at once
      connections: 3,
      durationMs: 2500,
    });
    assert.ok(report.upgraded >= 3 && report.closedByServer >= 3, JSON.stringify(report));
    assert.ok((report.closeCodes["1008"] ?? 0) >= 3, `closed with 1008: ${JSON.stringify(report)}`);
    await waitFor("sockets released", () => transport.stats().unauthenticated === 0);
  } finally {
    await a.stop();
  }
});

Deno.test("wire: a flood of held connections stays in its source's budget; links stay up and a peer from another address joins", async () => {
  const transport = new WebSocketTransport({
    host: "::",
    port: 0,
    limits: { maxUnauthenticated: 16, maxUnauthenticatedPerSource: 4, authTimeoutMs: 60_000 },
  });
  const meshes: Mesh[] = [];
  try {
    const a = await mesh("a", { transport, handshakeTimeoutMs: 60_000 });
    meshes.push(a);
    const v6 = `[::1]:${port(a.address)}`;
    const b = await mesh("b", { peers: [v6] });
    meshes.push(b);
    await waitFor("a and b connected", () => sees(a, ["a", "b"]) && sees(b, ["a", "b"]));
    const since = a.connections().find((c) => c.peer === "b")!.since;
    const terminations = a.metrics().terminations;

    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, transport.stats().unauthenticated);
    }, 20);
    // the attacker is 127.0.0.1 (seen as ::ffff:127.0.0.1); the peers come from ::1
    const flood = attack({
      target: `127.0.0.1:${port(a.address)}`,
      mode: "held-upgrade",
      helloAuth: false,
      connections: 40,
      durationMs: 4000,
      reopenDelayMs: 50,
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const c = await mesh("c", { peers: [v6], discovery: false });
    meshes.push(c);
    await waitFor("c joins during the flood", () => established(c).includes("a"));
    const report = await flood;
    clearInterval(sampler);

    assert.ok(most <= 4 + 1, `at most the attacker's 4 and one handshake in flight, saw ${most}`);
    assert.ok(report.peakOpen <= 40 && report.closedByServer > 40, JSON.stringify(report));
    assert.ok(transport.stats().evicted > 0);
    // the operator sees it, with the address to look at
    const seen = a.diagnostics().find((d) => d.code === "mesh-port-flood");
    assert.match(seen?.message ?? "", /most from ::ffff:127\.0\.0\.1 \(\d+\)/);
    assert.equal(a.connections().find((c) => c.peer === "b")?.since, since, "b's link untouched");
    assert.equal(a.metrics().terminations, terminations);
    await waitFor("the attacker's sockets released", () => transport.stats().unauthenticated === 0);
  } finally {
    await stopAll(meshes);
  }
});

Deno.test("wire: frame sizes are judged at the header: small before authentication, the mesh's limit after", async () => {
  const got: string[] = [];
  const { transport, address } = await wire(
    { maxFrameBytes: 1 << 20, limits: { preAuthMessageBytes: 64 * 1024 } },
    (link) => {
      link.onMessage = (frame) => {
        got.push(String(frame).slice(0, 20));
        if (frame === "auth") link.markAuthenticated!();
      };
    },
  );
  try {
    // unauthenticated: 64 MiB announced, no payload sent, refused with 1009
    const early = await upgrade(address);
    const header = encodeFrame(Opcode.binary, new Uint8Array(0), { mask: true });
    const announce = new Uint8Array([header[0], 0x80 | 127, 0, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
    await sendRaw(early.conn, announce);
    assert.equal(await readUntilClosed(early.conn, early.rest), 1009);
    early.conn.close();
    // unauthenticated: 100 KiB is over the pre-authentication limit
    const small = await upgrade(address);
    await sendRaw(
      small.conn,
      encodeFrame(Opcode.text, text.encode("x".repeat(100 * 1024)), { mask: true }),
    );
    assert.equal(await readUntilClosed(small.conn, small.rest), 1009);
    small.conn.close();
    // authenticated: 100 KiB passes, 2 MiB announced is refused
    const late = await upgrade(address);
    const closed = readUntilClosed(late.conn, late.rest);
    await sendRaw(late.conn, encodeFrame(Opcode.text, text.encode("auth"), { mask: true }));
    await sendRaw(
      late.conn,
      encodeFrame(Opcode.text, text.encode("y".repeat(100 * 1024)), { mask: true }),
    );
    await waitFor("the large message delivered", () => got.includes("y".repeat(20)));
    const twoMiB = new Uint8Array([header[0], 0x80 | 127, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4]);
    await sendRaw(late.conn, twoMiB);
    assert.equal(await closed, 1009);
    late.conn.close();
    assert.deepEqual(got, ["auth", "y".repeat(20)]);
  } finally {
    await transport.close();
  }
});

Deno.test("wire: pings are answered; a close handshake completes; a peer that ignores our close is cut off", async () => {
  const reasons: string[] = [];
  const { transport, address, accepted } = await wire(
    { limits: { closeTimeoutMs: 300 } },
    (link) => {
      link.onClose = (reason) => reasons.push(reason);
    },
  );
  try {
    const one = await upgrade(address);
    const events: Array<{ type: string; data?: string; code?: number }> = [];
    const reading = readEvents(one.conn, {
      rest: one.rest,
      onEvent: (e) =>
        events.push(
          e.type === "close"
            ? { type: "close", code: e.code }
            : { type: e.type, data: typeof e.data === "string" ? e.data : decoder.decode(e.data) },
        ),
    });
    await sendRaw(one.conn, encodeFrame(Opcode.ping, text.encode("are you there"), { mask: true }));
    await waitFor("pong", () => events.length === 1);
    assert.deepEqual(events[0], { type: "pong", data: "are you there" });
    await sendRaw(one.conn, encodeClose(4000, "bye", { mask: true }));
    await reading; // the server answered and closed the socket
    assert.deepEqual(events[1], { type: "close", code: 4000 });
    await waitFor("the link reports the peer's reason", () => reasons.includes("bye"));

    // the server closes, the client never answers: cut at closeTimeoutMs, not kept
    const two = await upgrade(address);
    await waitFor("second link", () => accepted.length === 2);
    accepted[1].close("going away");
    const code = await readUntilClosed(two.conn, two.rest);
    assert.equal(code, 1000);
    two.conn.close();
    await waitFor("both sockets released", () => transport.stats().unauthenticated === 0);
  } finally {
    await transport.close();
  }
});

Deno.test("wire: a dial to a server that never answers the TLS handshake is given up and its socket released", async () => {
  // a plain TCP server that accepts and says nothing: the TLS client waits for a ServerHello
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const transport = new WebSocketTransport({
    secureDial: true,
    limits: { headTimeoutMs: 300 },
  });
  try {
    const link = transport.dial(`127.0.0.1:${(silent.addr as Deno.NetAddr).port}`);
    const reason = new Promise<string>((resolve) => link.onClose = resolve);
    const server = await silent.accept();
    assert.match(await reason, /no WebSocket upgrade within 300 ms/);
    // the client's socket is really gone: the server reads the end of the stream (a bound, not
    // a benchmark: Deno alone would keep it open for as long as this server stays silent)
    const ended = (async () => {
      const buffer = new Uint8Array(4096);
      while (await server.read(buffer) !== null);
      return "ended";
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      ended,
      new Promise((resolve) => timer = setTimeout(() => resolve("still open"), 10_000)),
    ]);
    clearTimeout(timer);
    server.close();
    await ended.catch(() => {});
    assert.equal(outcome, "ended");
    assert.equal(transport.stats().dialling, 0);
  } finally {
    await transport.close();
    silent.close();
  }
});

Deno.test("wire: authenticated sockets stop at the connection limit", async () => {
  const { transport, address } = await wire({ connLimit: 2 }, (link) => {
    link.onMessage = () => link.markAuthenticated!();
  });
  try {
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const client = await upgrade(address);
      await sendRaw(client.conn, encodeFrame(Opcode.text, text.encode("auth"), { mask: true }));
      clients.push(client);
      if (i < 2) await waitFor("authenticated", () => transport.stats().authenticated === i + 1);
    }
    assert.equal(await readUntilClosed(clients[2].conn, clients[2].rest), 1008);
    assert.equal(transport.stats().authenticated, 2);
    assert.equal(transport.stats().overLimit, 1);
    for (const client of clients) client.conn.close();
  } finally {
    await transport.close();
  }
});

Deno.test("wire: out of descriptors, accept errors are logged once and serving resumes", async () => {
  // a child process with 96 descriptors and budgets far above them, flooded by this process
  const child = new Deno.Command("prlimit", {
    args: ["--nofile=96:96", Deno.execPath(), "run", "-A", import.meta.filename!],
    env: { WTM_EMFILE: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const errors: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>, into: string[]) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      into.push(...chunk.split("\n").filter(Boolean));
    }
  };
  const readers = [collect(child.stdout, lines), collect(child.stderr, errors)];
  const held: Deno.Conn[] = [];
  try {
    await waitFor("the child to listen", () => lines.length > 0, 20_000);
    const address = JSON.parse(lines[0]).address;
    for (let i = 0; i < 150; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: port(address) }));
    }
    await waitFor("the child to run out", () => errors.some((l) => l.includes("cannot accept")));
    for (const conn of held.splice(0)) conn.close();
    // serving resumes: a real upgrade gets its 101
    let status = "";
    const deadline = Date.now() + 20_000;
    while (!status.includes(" 101 ") && Date.now() < deadline) {
      try {
        const client = await upgrade(address);
        status = client.status;
        client.conn.close();
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    assert.match(status, / 101 /);
    assert.equal(errors.filter((l) => l.includes("cannot accept")).length, 1, errors.join("\n"));
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise((resolve) => setTimeout(() => resolve(false), 100)),
    ]);
    assert.equal(exited, false, "the child is still running");
  } finally {
    for (const conn of held) conn.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await Promise.all(readers);
  }
});

if (import.meta.main && Deno.env.get("WTM_EMFILE")) {
  // as the agent does at start: with the signal machinery set up before descriptors run out
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  const transport = new WebSocketTransport({
    host: "127.0.0.1",
    port: 0,
    fileLimit: 1 << 20,
    limits: {
      maxUnauthenticated: 100_000,
      maxUnauthenticatedPerSource: 100_000,
      headTimeoutMs: 1000,
    },
    log: (message) => console.error(message),
  });
  const address = await transport.listen(() => {});
  console.log(JSON.stringify({ address }));
}

if (import.meta.main && Deno.env.get("WTM_CHILD")) {
  const options = JSON.parse(Deno.env.get("WTM_CHILD")!);
  const child = await Mesh.create({ ...FAST, nickname: "child", ...options });
  await child.start();
  console.log(
    JSON.stringify({ address: child.address, incarnation: child.incarnation, name: child.name }),
  );
  Deno.addSignalListener("SIGTERM", async () => {
    await child.stop();
    Deno.exit(0);
  });
}
