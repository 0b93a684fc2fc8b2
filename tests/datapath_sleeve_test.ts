/**
 * The userspace sleeve in a lab of node namespaces: forced plain, then encrypted with mesh
 * session keys. The underlay is captured to show what an observer sees, and captured
 * datagrams are replayed and tampered with to show they are dropped. Namespaces: `wtdv`.
 */
import assert from "node:assert/strict";
import { GUARD_RULES } from "../src/datapath/mod.ts";
import { type Lab, labTest, ping, tcpTransfer, tempFile } from "./support/datapath_lab.ts";

const PREFIX = "wtdv";

/** "WEFTMARK" as ping's -p pattern: every echo payload is this text repeated. */
const MARKER = "WEFTMARK";
const MARKER_HEX = [...new TextEncoder().encode(MARKER)].map((b) => b.toString(16)).join("");

class Capture {
  #child: Deno.ChildProcess;
  readonly file: string;

  /** Captures on the underlay switch port facing `node` (the bridge itself sees no unicast). */
  constructor(lab: Lab, options: { file: string; node: number }) {
    this.file = options.file;
    const port = `n${options.node}`;
    this.#child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        lab.underlay,
        "tcpdump",
        "-Z",
        "root",
        "--immediate-mode",
        "-i",
        port,
        "-U",
        "-n",
        "-w",
        this.file,
        "udp",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
  }

  /** Waits until tcpdump says it is listening. */
  async ready(): Promise<void> {
    const reader = this.#child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!/listening/.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`tcpdump exited: ${text}`);
      text += value;
    }
    reader.releaseLock();
    this.#child.stderr.cancel().catch(() => {});
  }

  async stop(): Promise<Uint8Array> {
    this.#child.kill("SIGTERM");
    await this.#child.status;
    return await Deno.readFile(this.file);
  }
}

/** UDP payloads of unfragmented IPv4 packets to `ip:port` (from `source`) in a pcap file. */
function udpPayloads(
  pcap: Uint8Array,
  ip: string,
  port: number,
  source?: string,
): Uint8Array[] {
  const from = source?.split(".").map(Number);
  const view = new DataView(pcap.buffer, pcap.byteOffset, pcap.length);
  const want = ip.split(".").map(Number);
  const out: Uint8Array[] = [];
  for (let offset = 24; offset + 16 <= pcap.length;) {
    const length = view.getUint32(offset + 8, true);
    const frame = pcap.subarray(offset + 16, offset + 16 + length);
    offset += 16 + length;
    if (frame.length < 42 || frame[12] !== 0x08 || frame[13] !== 0x00) continue;
    const ihl = (frame[14] & 0x0f) * 4;
    const fragment = ((frame[20] << 8) | frame[21]) & 0x3fff;
    if (frame[23] !== 17 || fragment !== 0) continue;
    if (!want.every((b, i) => frame[30 + i] === b)) continue;
    if (from && !from.every((b, i) => frame[26 + i] === b)) continue;
    const udp = 14 + ihl;
    if (((frame[udp + 2] << 8) | frame[udp + 3]) !== port) continue;
    out.push(frame.slice(udp + 8));
  }
  return out;
}

function contains(haystack: Uint8Array, needle: string): boolean {
  return new TextDecoder("latin1").decode(haystack).includes(needle);
}

async function checkPodTraffic(lab: Lab, to: number): Promise<void> {
  const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(to, 1) });
  assert.equal(reply.received, 3, reply.output);
  const transfer = await tcpTransfer({
    from: lab.podNs(1, 1),
    to: lab.podNs(to, 1),
    toIp: lab.podIp(to, 1),
  });
  assert.ok(transfer.ok && transfer.sent >= 20_000_000, JSON.stringify(transfer));
}

labTest(
  "sleeve forced, plain: pods talk through the TAP and the marker is visible",
  { prefix: PREFIX, nodes: 2 },
  async (lab) => {
    await using file = await tempFile(".pcap");
    await lab.startNodes({ mode: "sleeve" });
    assert.equal(lab.nodes[0].mtu, 1500 - 112, "sleeve-only pods get the sleeve's MTU");
    await lab.introduce();
    const status = await lab.waitPath(1, 2, "sleeve");
    assert.deepEqual(
      { path: status.path, encrypted: status.encrypted, reason: status.reason },
      { path: "sleeve", encrypted: false, reason: "sleeve forced by mode" },
    );
    await checkPodTraffic(lab, 2);
    // The control for the encrypted test below: without keys, an observer reads the payload.
    const capture = new Capture(lab, { file: file.path, node: 2 });
    await capture.ready();
    await lab.exec(lab.podNs(1, 1), [
      "ping",
      "-c",
      "2",
      "-i",
      "0.1",
      "-p",
      MARKER_HEX,
      lab.podIp(2, 1),
    ]);
    assert.ok(contains(await capture.stop(), MARKER), "plain sleeve carries readable payload");
  },
);

labTest(
  "sleeve encrypted: unreadable on the underlay, replayed or tampered datagrams dropped",
  { prefix: PREFIX, nodes: 3 },
  async (lab, t) => {
    await using file = await tempFile(".pcap");
    // A session key per pair, as the mesh handshake would hand over, and nodes that require
    // encryption (a password without --no-encrypt); mode auto: encryption alone must keep the
    // pair off VXLAN.
    const keys = (a: number, b: number) => `${a}${b}`.repeat(32);
    await lab.startNodes({ mode: "auto", encrypt: true });
    await lab.introduce({ keys });
    for (const to of [2, 3]) {
      const status = await lab.waitPath(1, to, "sleeve");
      assert.equal(status.encrypted, true);
      assert.match(status.reason, /VXLAN is not encrypted/);
    }

    await t.step("pods on node1 reach pods on node2 and node3", async () => {
      await checkPodTraffic(lab, 2);
      await checkPodTraffic(lab, 3);
    });

    let captured: Uint8Array = new Uint8Array();
    await t.step("the payload cannot be read on the underlay", async () => {
      const capture = new Capture(lab, { file: file.path, node: 2 });
      await capture.ready();
      const reply = await lab.exec(lab.podNs(1, 1), [
        "ping",
        "-c",
        "3",
        "-i",
        "0.1",
        "-p",
        MARKER_HEX,
        lab.podIp(2, 1),
      ]);
      assert.match(reply.stdout, /3 received/);
      // Let a few heartbeats land in the capture too: they are the datagrams replayed below.
      await new Promise((resolve) => setTimeout(resolve, 700));
      captured = await capture.stop();
      assert.ok(
        udpPayloads(captured, lab.nodeUnderlayIp(2), 6783).length > 3,
        "capture saw traffic",
      );
      assert.equal(contains(captured, MARKER), false, "marker must not appear on the wire");
    });

    await t.step("replayed and tampered datagrams are dropped, the path stays up", async () => {
      const from1 = udpPayloads(captured, lab.nodeUnderlayIp(2), 6783, lab.nodeUnderlayIp(1));
      const originals = from1.filter((p) => p.length < 200).slice(0, 5);
      assert.ok(originals.length > 0, "small datagrams to replay");
      const tampered = originals.map((p) => {
        const copy = p.slice();
        copy[copy.length - 20] ^= 0x40;
        copy[39] ^= 0x7f; // and move the counter forward so it is not just a replay
        return copy;
      });
      const forged = [...originals, ...tampered];
      const reason = "failed authentication or replay";
      const to = { address: lab.nodeUnderlayIp(2), port: 6783 };
      // From an address that is not a peer's, the guard drops them before the sleeve.
      await lab.attacker();
      const guarded = await lab.guardDrops(2, GUARD_RULES.sleeveFromStranger);
      await lab.sendUdp(lab.underlay, to, forged);
      assert.equal(
        await lab.guardDrops(2, GUARD_RULES.sleeveFromStranger),
        guarded + forged.length,
      );
      // An on-path attacker sends them as node1: they pass the guard, and fail authentication.
      await lab.impersonate(1, 2);
      const before = await lab.nodes[1].dropped(reason);
      await lab.sendUdp(lab.underlay, { ...to, sourceAddress: lab.nodeUnderlayIp(1) }, forged);
      const expected = before + forged.length;
      const after = await lab.waitFor(() => lab.nodes[1].dropped(reason), (n) => n >= expected);
      assert.equal(after, expected);
      assert.equal((await lab.pathTo(2, 1))?.healthy, true);
      assert.equal((await ping(lab, { from: lab.podNs(2, 1), toIp: lab.podIp(1, 1) })).received, 3);
    });
  },
);

// Nodes ship as one bundled file with no source tree beside it; the workers must load anyway.
const bundle = `/tmp/${PREFIX}-bundled-node.js`;

labTest(
  "bundled build: the sleeve threads start from the single-file bundle",
  { prefix: PREFIX, nodes: 2, nodeScript: bundle },
  async (lab) => {
    try {
      const source = new URL("./support/datapath_node.ts", import.meta.url).pathname;
      const built = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", source, "-o", bundle],
      }).output();
      assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
      await lab.startNodes({ mode: "sleeve" });
      await lab.introduce();
      await lab.waitPath(1, 2, "sleeve");
      const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(2, 1) });
      assert.equal(reply.received, 3, reply.output);
      assert.doesNotMatch(lab.nodes[0].log, /crashed/);
    } finally {
      await Deno.remove(bundle).catch(() => {});
    }
  },
);

labTest(
  "session keys alone (a password with --no-encrypt) keep the fast path; one end requiring encryption makes the pair encrypted both ways",
  { prefix: PREFIX, nodes: 3 },
  async (lab) => {
    // node 3 requires encryption, nodes 1 and 2 were started with --no-encrypt
    await lab.startNodes((i) => ({ mode: "auto", encrypt: i === 3 }));
    await lab.introduce({ keys: (a, b) => `${Math.min(a, b)}${Math.max(a, b)}`.repeat(32) });
    const plain = await lab.waitPath(1, 2, "fastdp");
    assert.equal(plain.encrypted, false);
    for (const [from, to] of [[1, 3], [3, 1], [2, 3]]) {
      const status = await lab.waitPath(from, to, "sleeve");
      assert.equal(status.encrypted, true, `${from} -> ${to}`);
    }
    for (const to of [2, 3]) {
      const reply = await ping(lab, { from: lab.podNs(1, 1), toIp: lab.podIp(to, 1) });
      assert.equal(reply.received, 3, `pod on node1 -> node${to}`);
    }
  },
);
