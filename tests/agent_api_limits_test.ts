/**
 * The admin API on a real socket (loopback, no namespaces needed): a huge body is refused
 * without the agent's memory growing with it, and the agent keeps serving.
 */
import assert from "node:assert/strict";
import { Agent, resolveAgentConfig } from "../src/agent/mod.ts";

Deno.test("a 300 MB request body is refused with 413 and the agent's memory does not grow with it", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "weft-api-limits-test-" });
  const port = 20_000 + Math.floor(Math.random() * 30_000);
  const config = await resolveAgentConfig(
    { stateDir, ipallocRange: "10.32.0.0/28", apiAddr: `127.0.0.1:${port}` },
    {},
  );
  const agent = await Agent.launch(config, { kernel: false, mesh: false, log: () => {} });
  try {
    const base = `http://127.0.0.1:${port}`;
    const before = Deno.memoryUsage().rss;
    // chunked, so only counting the stream can stop it
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 300 << 20) return controller.close();
        sent += 1 << 20;
        controller.enqueue(new Uint8Array(1 << 20).fill(0x20));
      },
    }, { highWaterMark: 0 });
    let status: number | undefined;
    try {
      const response = await fetch(`${base}/ip/pod-big`, { method: "POST", body });
      status = response.status;
      await response.body?.cancel();
    } catch {
      // the agent may close the connection while the upload still runs: refused either way
    }
    const grew = (Deno.memoryUsage().rss - before) / (1 << 20);
    console.log(`RSS grew by ${grew.toFixed(1)} MiB while ${sent >> 20} MiB were offered`);
    if (status !== undefined) assert.equal(status, 413);
    assert.ok(sent < 300 << 20, `the agent stopped reading (${sent >> 20} MiB sent)`);
    assert.ok(grew < 64, `RSS grew by ${grew.toFixed(1)} MiB`);
    // and it still serves
    const ok = await fetch(`${base}/ip/pod-small`, { method: "POST", body: "{}" });
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await agent.stop();
    await Deno.remove(stateDir, { recursive: true });
  }
});
