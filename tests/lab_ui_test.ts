/**
 * The topology page on a real 3-node lab, in headless Chromium running inside node 1's
 * namespace (so it reaches node 1's agent on 127.0.0.1:6784 as a person with an SSH tunnel
 * would): the three nodes and each connection's path appear, and cutting node 3's underlay link
 * shows node 3 unreachable without a reload.
 */
import assert from "node:assert/strict";
import { Lab, must, waitFor } from "./support/lab.ts";
import { ARTIFACTS, Browser, chromiumAvailable } from "./support/browser.ts";

Deno.test("the topology page shows a live 3-node lab and a cut node within 10 s", async () => {
  assert.ok(await chromiumAvailable(), "Chromium is missing: run scripts/install-deps.sh --tests");
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  // peers authenticate; pod traffic takes kernel VXLAN (with encryption it would be sleeve)
  await using lab = await Lab.create({
    nodes: 3,
    prefix: "wtlu",
    password: "lab-secret",
    agentArgs: ["--no-encrypt"],
  });
  for (const n of [1, 2, 3]) await lab.waitReady(n);
  // a pod per node, so the page has pods to list
  for (const n of [1, 2, 3]) await lab.addPod(n, `p${n}`);
  await waitFor("every pair on the fast path", async () => {
    const connections = (await lab.api(1, "GET", "/status/connections")).json as Array<
      { path?: string }
    >;
    if (connections.filter((c) => c.path === "fastdp").length === 2) return true;
    throw new Error(`connections: ${JSON.stringify(connections)}`);
  });

  // `weft ui` tells a person where the page is and how to reach it from elsewhere
  const help = await lab.weft(1, ["ui"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /topology page of node1: http:\/\/127\.0\.0\.1:6784\/ui/);
  assert.match(help.stdout, /ssh -N -L 6784:127\.0\.0\.1:6784/);
  assert.match(help.stdout, /kubectl -n kube-system port-forward/);

  await using browser = await Browser.launch({ netns: lab.node(1).netns });
  const origin = "http://127.0.0.1:6784";
  const page = await browser.open(`${origin}/ui`);
  await page.waitFor("document.body.dataset.state === 'live'");

  const nodeRows = () =>
    page.evaluate<string[][]>(
      `[...document.querySelectorAll("#nodes tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))`,
    );
  await page.waitFor(
    `document.querySelectorAll("#nodes tbody tr").length === 3 && document.querySelectorAll("#links tbody tr").length === 3`,
    { describe: "three nodes and three connections" },
  );
  const rows = await nodeRows();
  assert.deepEqual(rows.map((r) => r[0]).sort(), ["node1", "node2", "node3"]);
  assert.deepEqual(rows.map((r) => r[2]).sort(), ["reachable", "reachable", "this node"]);
  // each node's pod is listed under it
  for (const row of rows) assert.match(row[3], /^1 pod(?!s)/);

  // Each connection with its path in words: node1's own pairs from its own data path, and
  // node2 - node3 from what node2 or node3 published.
  await page.waitFor(
    `[...document.querySelectorAll("#links tbody tr")].every((tr) => tr.cells[2].textContent === "fastdp (kernel VXLAN)")`,
    { describe: "every connection on fastdp" },
  );
  const links = await page.evaluate<string[][]>(
    `[...document.querySelectorAll("#links tbody tr")].map((tr) => [...tr.cells].map((c) => c.textContent))`,
  );
  assert.deepEqual(
    links.map((l) => [l[0], l[1]].sort().join("-")).sort(),
    ["node1-node2", "node1-node3", "node2-node3"],
  );
  for (const link of links) assert.equal(link[4], "healthy");
  assert.equal(
    await page.evaluate(`document.querySelectorAll("#graph line.fastdp").length`),
    3,
    "three solid fastdp lines",
  );
  await page.screenshot(`${ARTIFACTS}/ui-lab-3-nodes.png`);

  // Cut node 3's underlay link: node 1 must show it unreachable, in words, within 10 s.
  const cutAt = Date.now();
  await must(["ip", "-n", lab.underlay, "link", "set", `${lab.prefix}n3`, "down"]);
  await page.waitFor(
    `[...document.querySelectorAll("#nodes tbody tr")].some((tr) => tr.cells[0].textContent === "node3" && tr.cells[2].textContent === "UNREACHABLE")`,
    { timeoutMs: 10_000, describe: "node3 shown unreachable" },
  );
  const shownAfterMs = Date.now() - cutAt;
  const problems = await page.evaluate<string[]>(
    `[...document.querySelectorAll("#problems li")].map((li) => li.textContent)`,
  );
  assert.match(problems[0], /Node node3 .* is unreachable/);
  const label = await page.evaluate<string>(
    `[...document.querySelectorAll("#graph text.node-label")].map((t) => t.textContent).find((t) => t.startsWith("node3"))`,
  );
  assert.match(label, /UNREACHABLE$/);
  await page.screenshot(`${ARTIFACTS}/ui-lab-node3-cut.png`);
  console.log(`node3 shown unreachable ${shownAfterMs} ms after its link was cut`);

  assert.deepEqual(page.errors, []);
  const outside = page.requests.filter((url) => !url.startsWith(`${origin}/`));
  assert.deepEqual(outside, [], "the page requests nothing but its own agent");
});
