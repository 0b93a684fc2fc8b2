/**
 * The topology page in a real headless Chromium (Debian's package, driven over the DevTools
 * protocol; tests/support/browser.ts). The browser runs in a namespace with nothing but a
 * loopback, next to the server it reads, so the page cannot reach anything else even by mistake.
 *
 * Screenshots are kept in dist/test-artifacts/ (or $WEFT_TEST_ARTIFACTS).
 */
import assert from "node:assert/strict";
import {
  ARTIFACTS,
  Browser,
  chromiumAvailable,
  loopbackNamespace,
  OVERLAPPING_LABELS,
} from "./support/browser.ts";

const SIMULATION = new URL("./support/ui_simulation.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

Deno.test({
  name: "the topology page stays readable for a simulated 50-node cluster, problems first",
  async fn() {
    assert.ok(
      await chromiumAvailable(),
      "Chromium is missing: run scripts/install-deps.sh --tests",
    );
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const netns = "wtui-sim";
    await using _namespace = await loopbackNamespace(netns);
    const server = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        netns,
        Deno.execPath(),
        "run",
        "-A",
        `--config=${CONFIG}`,
        SIMULATION,
      ],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    try {
      await using browser = await Browser.launch({ netns });
      const origin = "http://127.0.0.1:6784";
      let page;
      for (let attempt = 0;; attempt++) {
        try {
          page = await browser.open(`${origin}/ui`);
          await page.waitFor("document.body.dataset.state === 'live'", { timeoutMs: 5_000 });
          break;
        } catch (error) {
          if (attempt > 20) throw error; // the server is still starting
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }

      const labels: string[] = await page.evaluate(
        `[...document.querySelectorAll("#graph text.node-label")].map((t) => t.textContent)`,
      );
      assert.equal(labels.length, 50);
      for (let i = 1; i <= 50; i++) {
        assert.ok(labels.some((l) => l.startsWith(`node-${String(i).padStart(2, "0")} `)), `${i}`);
      }
      assert.deepEqual(await page.evaluate(OVERLAPPING_LABELS), [], "no label covers another");

      // Problems come first, in words: the two unreachable nodes, then the three fallbacks.
      const problems: string[] = await page.evaluate(
        `[...document.querySelectorAll("#problems li")].map((li) => li.textContent)`,
      );
      assert.equal(problems.length, 5, problems.join("\n"));
      assert.match(problems[0], /node-08 .* is unreachable/);
      assert.match(problems[1], /node-32 .* is unreachable/);
      assert.ok(
        problems.slice(2).every((p) => /userspace path where the fast path was expected/.test(p)),
      );
      const unreachableLabels = labels.filter((l) => l.endsWith("UNREACHABLE"));
      assert.deepEqual(unreachableLabels.map((l) => l.slice(0, 7)).sort(), ["node-08", "node-32"]);

      // Every connection is a line in the graph and a row in the table, with its path in words.
      const table = (id: string) =>
        page.evaluate<string[][]>(
          `[...document.querySelectorAll("#${id} tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))`,
        );
      const bad = await table("links-bad"), gone = await table("links-gone-table");
      const good = await table("links");
      const lines: number = await page.evaluate(`document.querySelectorAll("#graph line").length`);
      assert.equal(bad.length + gone.length + good.length, lines);
      assert.equal(good.length, 48 * 47 / 2 - 3, "every pair of reachable nodes but the fallbacks");
      assert.equal(gone.length, 2 * 48 + 1, "the unreachable nodes' last known connections");
      assert.ok(gone.every((r) => /node-08|node-32/.test(r[0] + r[1]) && /unreachable/.test(r[4])));
      // the fallbacks between reachable nodes have their own table, open
      assert.equal(bad.length, 3);
      assert.ok(bad.every((r) => r[2] === "sleeve (userspace)" && r[3] === "encrypted"));
      assert.ok(good.every((r) => r[2] === "fastdp (kernel VXLAN)" && r[3] === "not encrypted"));
      assert.equal(await page.evaluate(`document.getElementById("links-good").open`), false);

      // The ring bar: one segment per owner, each labelled in text.
      const segments: string[] = await page.evaluate(
        `[...document.querySelectorAll("#ring .seg")].map((s) => s.textContent)`,
      );
      assert.equal(segments.length, 50);
      assert.match(segments[0], /^node-01 2%$/);
      assert.equal(
        await page.evaluate(`document.querySelectorAll("#ipam tbody tr").length`),
        50,
      );

      await page.screenshot(`${ARTIFACTS}/ui-simulated-50-nodes.png`);
      const png = await Deno.readFile(`${ARTIFACTS}/ui-simulated-50-nodes.png`);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG file");

      assert.deepEqual(page.errors, []);
      const outside = page.requests.filter((url) => !url.startsWith(`${origin}/`));
      assert.deepEqual(outside, [], "the page requests nothing but its own agent");
      assert.ok(page.requests.includes(`${origin}/status/topology`));
    } finally {
      try {
        server.kill("SIGKILL");
      } catch { /* it exited: its error is on stderr */ }
      await server.status;
    }
  },
});

Deno.test("GET /ui is one small self-contained page whose policy allows only its own agent", async () => {
  const { createApi } = await import("../src/api/mod.ts");
  const { simulatedAgent, simulatedTopology } = await import("./support/ui_simulation.ts");
  const app = createApi(simulatedAgent(() => simulatedTopology({ nodes: 3 })));
  const response = await app.request("http://127.0.0.1:6784/ui");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/html/);
  const page = await response.text();
  assert.ok(page.length < 40_000, `${page.length} bytes`);
  // nothing fetched from elsewhere: no external script, style, font or image references
  assert.doesNotMatch(page, /(src|href)="(https?:)?\/\//);
  const csp = response.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
  const topology = await (await app.request("http://127.0.0.1:6784/status/topology")).json();
  assert.equal(topology.nodes.length, 3);
  assert.equal(topology.links.length, 3);
  // the Host check of the rest of the API covers the page too (DNS rebinding)
  const rebound = await app.request("http://127.0.0.1:6784/ui", { headers: { host: "evil.test" } });
  assert.equal(rebound.status, 403);
});
