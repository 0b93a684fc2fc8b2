/**
 * The admin API through `app.request()`, over the real agent composition with the kernel work
 * switched off and its state in a temporary directory: what curl users and the CNI plugin see.
 */
import assert from "node:assert/strict";
import { Agent, resolveAgentConfig } from "../agent/mod.ts";
import { createApi } from "./mod.ts";

async function withApi(
  fn: (
    request: (path: string, init?: RequestInit) => Promise<Response>,
    stateDir: string,
  ) => Promise<void>,
  env: Record<string, string> = {},
) {
  const stateDir = await Deno.makeTempDir({ prefix: "weft-api-test-" });
  const config = await resolveAgentConfig({ stateDir, ipallocRange: "10.32.0.0/28" }, env);
  const agent = await Agent.launch(config, {
    kernel: false,
    serve: false,
    mesh: false,
    log: () => {},
  });
  const app = createApi(agent);
  try {
    await fn(
      (path, init) => Promise.resolve(app.request(`http://127.0.0.1:6784${path}`, init)),
      stateDir,
    );
  } finally {
    await agent.stop();
    await Deno.remove(stateDir, { recursive: true });
  }
}

const post = (body: unknown): RequestInit => ({
  method: "POST",
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

Deno.test("status reports the bridge gateway and the range", async () => {
  await withApi(async (request) => {
    const response = await request("/status");
    assert.equal(response.status, 200);
    const status = await response.json();
    assert.equal(status.ready, true);
    assert.equal(status.range, "10.32.0.0/28");
    assert.equal(status.bridge.address, "10.32.0.1/28");
    assert.equal(status.bridge.name, "weave");
    assert.equal((await request("/healthz")).status, 200);
  });
});

Deno.test("POST /ip allocates with the range's prefix, idempotently, and DELETE frees it", async () => {
  await withApi(async (request) => {
    const first = await (await request("/ip/pod-a", post({ ifname: "eth0" }))).json();
    assert.equal(first.address, "10.32.0.2/28");
    assert.equal(first.gateway, "10.32.0.1");
    assert.equal(first.mac, "0a:58:0a:20:00:02");
    const again = await (await request("/ip/pod-a", post({ ifname: "eth0" }))).json();
    assert.equal(again.address, first.address);
    const second = await (await request("/ip/pod-a", post({ ifname: "net1" }))).json();
    assert.notEqual(second.address, first.address);

    assert.equal((await request("/ip/pod-a?ifname=eth0")).status, 200);
    assert.equal((await request("/ip/pod-a?ifname=eth0", { method: "DELETE" })).status, 204);
    assert.equal((await request("/ip/pod-a?ifname=eth0")).status, 404);
    assert.equal((await request("/ip/pod-a?ifname=eth0", { method: "DELETE" })).status, 204);
    const listed = await (await request("/ip")).json();
    assert.deepEqual(listed.map((a: { containerID: string }) => a.containerID).sort(), [
      "pod-a",
      "weft:bridge",
    ]);
  });
});

Deno.test("an exhausted range answers 507 with a message, and freed space is reused", async () => {
  await withApi(async (request) => {
    // /28: 16 addresses, minus network, broadcast and the bridge = 13 for pods
    const addresses = new Set<string>();
    for (let i = 0; i < 13; i++) {
      const response = await request(`/ip/pod-${i}`, post({}));
      assert.equal(response.status, 200);
      addresses.add((await response.json()).address);
    }
    assert.equal(addresses.size, 13);
    assert.ok(!addresses.has("10.32.0.15/28") && !addresses.has("10.32.0.0/28"));
    const full = await request("/ip/pod-x", post({}));
    assert.equal(full.status, 507);
    assert.match((await full.json()).error, /./);
    await request("/ip/pod-3", { method: "DELETE" });
    assert.equal((await request("/ip/pod-x", post({}))).status, 200);
  });
});

Deno.test("bad input answers 4xx naming the bad value", async () => {
  await withApi(async (request) => {
    const cases: Array<[string, RequestInit | undefined, number, RegExp]> = [
      ["/ip/bad%20id", post({}), 400, /bad id/],
      ["/ip/pod", post({ ifname: "a/b" }), 400, /a\/b/],
      ["/ip/pod", post({ ifname: "much-too-long-ifname" }), 400, /much-too-long-ifname/],
      ["/ip/pod", { method: "POST", body: "{not json" }, 400, /not valid JSON/],
      ["/ip/pod", post({ subnet: "10.0.0.0/8" }), 400, /10\.0\.0\.0\/8/],
      ["/ip/pod", post({ subnet: "nonsense" }), 400, /nonsense/],
      ["/ip/pod", post({ subnet: "10.32.0.5/32" }), 400, /10\.32\.0\.5\/32.*too small/],
      ["/ip/pod", post({ subnet: "10.32.0.4/31" }), 400, /too small/],
      ["/ip/weft:bridge", post({}), 400, /reserved/],
      ["/gc", post({ valid: "all" }), 400, /valid/],
      ["/peer/aa:02/rebind?fingerprint=md5:x", { method: "POST" }, 400, /md5:x/],
      ["/peer/a%20b/rebind", { method: "POST" }, 400, /a b/],
      ["/nope", undefined, 404, /nope/],
    ];
    for (const [path, init, status, message] of cases) {
      const response = await request(path, init);
      assert.equal(response.status, status, `${path}: ${response.status}`);
      assert.match((await response.json()).error, message);
    }
    assert.deepEqual(await (await request("/ip/pod")).json(), {
      error: "No address allocated to pod",
    }, "nothing was allocated by the refused requests");
  });
});

Deno.test("a subnet keeps a group of pods inside it", async () => {
  await withApi(async (request) => {
    const body = await (await request("/ip/pod-s", post({ subnet: "10.32.0.8/29" }))).json();
    const last = Number(body.address.split("/")[0].split(".")[3]);
    assert.ok(last >= 8 && last < 16, body.address);
    assert.match(body.address, /\/28$/); // still the whole range's prefix: one L2 overlay
  });
});

Deno.test("GC keeps the listed attachments and the bridge, releases the rest", async () => {
  await withApi(async (request) => {
    for (const id of ["keep", "drop1", "drop2"]) await request(`/ip/${id}`, post({}));
    const response = await request(
      "/gc",
      post({ valid: [{ containerID: "keep", ifname: "eth0" }] }),
    );
    const { released } = await response.json();
    assert.deepEqual(released.map((a: { containerID: string }) => a.containerID).sort(), [
      "drop1",
      "drop2",
    ]);
    const left = await (await request("/ip")).json();
    assert.deepEqual(left.map((a: { containerID: string }) => a.containerID).sort(), [
      "keep",
      "weft:bridge",
    ]);
  });
});

Deno.test("GC for one network leaves other networks' allocations alone", async () => {
  await withApi(async (request) => {
    await request("/ip/pod-1", post({ ifname: "eth0", network: "weft" }));
    await request("/ip/pod-1", post({ ifname: "net1", network: "weft-apps" }));
    await request("/ip/gone", post({ ifname: "eth0", network: "weft" }));
    await request("/ip/gone", post({ ifname: "net1", network: "weft-apps" }));
    const response = await request(
      "/gc",
      post({ network: "weft", valid: [{ containerID: "pod-1", ifname: "eth0" }] }),
    );
    const { released } = await response.json();
    assert.deepEqual(
      released.map((a: { containerID: string; ifname: string }) => `${a.containerID}/${a.ifname}`),
      [
        "gone/eth0",
      ],
    );
    const left = (await (await request("/ip")).json()).map((
      a: { containerID: string; ifname: string },
    ) => `${a.containerID}/${a.ifname}`).sort();
    assert.deepEqual(left, ["gone/net1", "pod-1/eth0", "pod-1/net1", "weft:bridge/weave"]);
    const bad = await request("/gc", post({ network: "bad name", valid: [] }));
    assert.equal(bad.status, 400);
  });
});

Deno.test("allocations survive an agent restart on the same state directory", async () => {
  const stateDir = await Deno.makeTempDir({ prefix: "weft-api-test-" });
  try {
    const config = await resolveAgentConfig({ stateDir }, {});
    const first = await Agent.launch(config, {
      kernel: false,
      serve: false,
      mesh: false,
      log: () => {},
    });
    const a = await first.allocate("pod-r", { ifname: "eth0" });
    await first.stop();
    const second = await Agent.launch(config, {
      kernel: false,
      serve: false,
      mesh: false,
      log: () => {},
    });
    try {
      assert.equal(second.lookup("pod-r", "eth0")[0].address, a.address);
      assert.equal(second.status().bridge.address, first.status().bridge.address);
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(stateDir, { recursive: true });
  }
});

Deno.test("metrics are Prometheus text with the IPAM gauges and request counters", async () => {
  await withApi(async (request) => {
    await request("/ip/m1", post({}));
    const response = await request("/metrics");
    assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
    const text = await response.text();
    assert.match(text, /^weft_ips\{state="used"\} 2$/m);
    assert.match(text, /^weft_max_ips 14$/m);
    assert.match(
      text,
      /^weft_api_requests_total\{route="\/ip\/:containerID",method="POST",status="200"\} 1$/m,
    );
  });
});

Deno.test("requests with a non-loopback Host are refused (DNS rebinding)", async () => {
  await withApi(async (request) => {
    const response = await request("/status", { headers: { host: "evil.example:6784" } });
    assert.equal(response.status, 403);
  });
});

Deno.test("a node that is not ready says why in problems, with a fix each, also in the 503 body", async () => {
  await withApi(async (request) => {
    const response = await request("/status");
    assert.equal(response.status, 503);
    const status = await response.json();
    assert.equal(status.ready, false);
    assert.match(status.reason, /consensus/);
    assert.ok(status.problems.length > 0);
    for (const problem of status.problems) {
      assert.match(problem.code, /^[a-z]+(-[a-z]+)*$/);
      assert.ok(["error", "warning"].includes(problem.severity));
      assert.ok(problem.message && problem.fix, JSON.stringify(problem));
    }
    assert.ok(status.problems.some((p: { message: string }) => /consensus/.test(p.message)));
    const allocate = await request("/ip/pod-a", post({}));
    assert.equal(allocate.status, 503);
    assert.deepEqual(Object.keys(await allocate.json()).sort(), ["error", "retry"]);
  }, { IPALLOC_INIT: "consensus=2" });
});

Deno.test("a ready node has no problems", async () => {
  await withApi(async (request) => {
    const status = await (await request("/status")).json();
    assert.equal(status.ready, true);
    assert.deepEqual(status.problems, []);
  });
});

Deno.test("POST /ipam/adopt (weft ipam adopt) refuses when the IPAM says there is nothing to adopt", async () => {
  await withApi(async (request) => {
    // a healthy ring has nothing to adopt: the request contradicts the ring, 409 with why
    const response = await request("/ipam/adopt", { method: "POST" });
    assert.equal(response.status, 409);
    assert.match((await response.json()).error, /Cannot adopt/);
  });
});

Deno.test("GET /report is one document with config (never the password), state and logs", async () => {
  const password = "correct-horse-battery-staple";
  await withApi(async (request) => {
    await request("/ip/report-pod", post({}));
    const response = await request("/report");
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.ok(!text.includes(password), "the password is never in a report");
    const report = JSON.parse(text);
    for (
      const key of [
        "weft",
        "config",
        "status",
        "peers",
        "connections",
        "targets",
        "ring",
        "allocations",
        "kernel",
        "logs",
      ]
    ) {
      assert.ok(key in report, `report has ${key}`);
    }
    assert.equal(report.config.password, "set (not shown)");
    assert.equal(report.config.ipallocRange, "10.32.0.0/28");
    assert.equal(report.status.ready, true);
    assert.ok(
      report.allocations.some((a: { containerID: string }) => a.containerID === "report-pod"),
    );
    assert.ok(report.logs.some((l: { message: string }) => /ready: peer/.test(l.message)));
    assert.equal(report.weft.redacted, false);

    const redacted = await (await request("/report?redact=true")).json();
    assert.equal(redacted.weft.redacted, true);
    const redactedText = JSON.stringify(redacted);
    assert.ok(!redactedText.includes(report.status.peerName), "the peer name is replaced");
    assert.ok(!redactedText.includes("report-pod"), "container IDs are replaced");
    assert.equal(redacted.status.peerName, "peer-1");
    // peers given by name are replaced as host names, by address as addresses
    assert.deepEqual(report.config.peers, ["db-7.corp.example:6783", "192.168.9.9"]);
    assert.match(redacted.config.peers[0], /^host-\d+:6783$/);
    assert.match(redacted.config.peers[1], /^ip-\d+$/);
    assert.equal((await request("/report?redact=maybe")).status, 400);
  }, {
    WEFT_PASSWORD: password,
    WEFT_PEERS: "db-7.corp.example:6783,192.168.9.9",
    IPALLOC_INIT: "consensus=1",
  });
});

Deno.test("POST /ip takes the pod a CNI ADD names, and refuses names the API would not", async () => {
  await withApi(async (request) => {
    const ok = await request(
      "/ip/pod-p",
      post({ ifname: "eth0", pod: { namespace: "shop", name: "web-1.a", uid: "0f3c-9a" } }),
    );
    assert.equal(ok.status, 200);
    for (
      const [pod, complaint] of [
        [{ namespace: "Shop", name: "web" }, /Invalid pod namespace "Shop"/],
        [{ namespace: "shop", name: "web/../x" }, /Invalid pod name/],
        [{ namespace: "shop" }, /Invalid pod name undefined/],
        [{ namespace: "shop", name: "web", uid: "a b" }, /Invalid pod uid/],
        ["shop/web", /"pod" must be an object/],
      ] as const
    ) {
      const response = await request("/ip/pod-q", post({ ifname: "eth0", pod }));
      assert.equal(response.status, 400, JSON.stringify(pod));
      assert.match((await response.json()).error, complaint);
    }
    assert.equal((await request("/ip/pod-q?ifname=eth0")).status, 404, "nothing allocated");
  });
});

Deno.test("GET /status/policy says why a node off Kubernetes enforces no NetworkPolicy", async () => {
  await withApi(async (request) => {
    const response = await request("/status/policy");
    assert.equal(response.status, 200);
    const view = await response.json();
    assert.equal(view.enabled, false);
    assert.match(view.reason, /not on Kubernetes/);
    assert.deepEqual(view.pods, []);
  });
});
