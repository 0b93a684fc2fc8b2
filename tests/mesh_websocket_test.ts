/**
 * The mesh over real WebSockets on 127.0.0.1 with ephemeral ports: authentication, convergence,
 * heartbeats against a frozen process, restart, forget, TLS, and hostile frames that must close
 * one connection only. One peer runs as a child process (this same file, WTM_CHILD set) so it can
 * be frozen with SIGSTOP and killed for real. No kernel objects are created.
 */
import { makeTestCertificates } from "./support/tls.ts";
import assert from "node:assert/strict";
import { Mesh, type MeshOptions } from "../src/mesh/mod.ts";

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
    const hello = JSON.stringify({
      t: "hello",
      proto: [1, 1],
      nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      auth: false,
    });
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
  try {
    const a = await mesh("a");
    meshes.push(a);
    const b = await mesh("b", { peers: [a.address] });
    meshes.push(b);
    await waitFor("connected", () => sees(b, ["a", "b"]));
    const port = Number(a.address.split(":")[1]);
    b.forget(a.address);
    assert.deepEqual(b.targets(), []);
    await a.stop();
    await waitFor("b notices a is gone", () => b.peer("a")?.reachable === false);
    const again = await mesh("a", { port });
    meshes.push(again);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(established(b).length, 0, "b must not dial a forgotten address");
    b.connect(again.address);
    await waitFor("reconnected after connect", () => sees(b, ["a", "b"]));
  } finally {
    await stopAll(meshes);
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
