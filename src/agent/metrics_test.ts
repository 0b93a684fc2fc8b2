import assert from "node:assert/strict";
import { AgentMetrics, type MetricSources } from "./metrics.ts";

const ipam = () => ({ size: 14, used: 2, free: 12, unreachablePercentage: 25, pending: 1 });
const mesh = () => ({
  connections: { established: 2, retrying: 1 },
  terminations: 3,
  gossipBytesSent: 4096,
  gossipBytesReceived: 1024,
});

async function scrape(sources: MetricSources, requests: [string, string, number][] = []) {
  const metrics = new AgentMetrics(sources);
  for (const [route, method, status] of requests) metrics.countRequest(route, method, status);
  return await metrics.render();
}

Deno.test("metrics: every family has HELP and TYPE, samples read from the sources", async () => {
  const { contentType, body } = await scrape({ ipam, mesh });
  assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
  const expected = [
    ["weft_api_requests_total", "counter"],
    ["weft_ips", "gauge"],
    ["weft_max_ips", "gauge"],
    ["weft_ipam_unreachable_percentage", "gauge"],
    ["weft_ipam_pending_requests", "gauge"],
    ["weft_connections", "gauge"],
    ["weft_connection_terminations_total", "counter"],
    ["weft_gossip_bytes_sent_total", "counter"],
    ["weft_gossip_bytes_received_total", "counter"],
    ["process_resident_memory_bytes", "gauge"],
    ["weft_heap_bytes", "gauge"],
  ];
  for (const [name, type] of expected) {
    assert.match(body, new RegExp(`^# HELP ${name} \\S`, "m"));
    assert.match(body, new RegExp(`^# TYPE ${name} ${type}$`, "m"));
  }
  const samples = body.split("\n").filter((line) =>
    line && !line.startsWith("#") && !/^(process_|weft_heap_)/.test(line)
  );
  assert.deepEqual(samples, [
    'weft_ips{state="used"} 2',
    'weft_ips{state="free"} 12',
    "weft_max_ips 14",
    "weft_ipam_unreachable_percentage 25",
    "weft_ipam_pending_requests 1",
    'weft_connections{state="established"} 2',
    'weft_connections{state="retrying"} 1',
    "weft_connection_terminations_total 3",
    "weft_gossip_bytes_sent_total 4096",
    "weft_gossip_bytes_received_total 1024",
  ]);
  assert.ok(body.endsWith("\n"));
});

Deno.test("metrics: requests are counted per route, method and status", async () => {
  const { body } = await scrape({ ipam }, [
    ["/ip/:containerID", "POST", 200],
    ["/ip/:containerID", "POST", 200],
    ["/ip/:containerID", "POST", 503],
    ["/status", "GET", 200],
  ]);
  const lines = body.split("\n").filter((line) => line.startsWith("weft_api_requests_total"));
  assert.deepEqual(lines, [
    'weft_api_requests_total{route="/ip/:containerID",method="POST",status="200"} 2',
    'weft_api_requests_total{route="/ip/:containerID",method="POST",status="503"} 1',
    'weft_api_requests_total{route="/status",method="GET",status="200"} 1',
  ]);
});

Deno.test("metrics: label values are escaped, so a strange route cannot break the text", async () => {
  const { body } = await scrape({ ipam }, [['/a"b\\c\nd', "GET", 404]]);
  assert.match(
    body,
    /^weft_api_requests_total\{route="\/a\\"b\\\\c\\nd",method="GET",status="404"\} 1$/m,
  );
  assert.equal(body.split("\n").filter((l) => l.startsWith("d")).length, 0, "no broken line");
});

Deno.test("metrics: without a mesh the mesh families have no samples; odd values spelled", async () => {
  const { body } = await scrape({
    ipam: () => ({ size: 4, used: 0, free: 4, unreachablePercentage: NaN }),
  });
  assert.doesNotMatch(body, /^weft_connections\{/m);
  assert.doesNotMatch(body, /^weft_gossip_bytes_sent_total /m);
  assert.match(body, /^weft_ipam_unreachable_percentage NaN$/m);
  assert.match(body, /^weft_ipam_pending_requests 0$/m);
});

Deno.test("metrics: NetworkPolicy drops per policy and direction, read at scrape time", async () => {
  let shop = 3;
  const metrics = new AgentMetrics({
    ipam,
    policyDrops: () =>
      Promise.resolve([
        [{ namespace: "shop", policy: "web", direction: "ingress" }, shop],
        [{ namespace: "", policy: "", direction: "pending" }, 1],
      ]),
  });
  const lines = async () =>
    (await metrics.render()).body.split("\n").filter((l) => l.startsWith("weft_policy_"));
  assert.deepEqual(await lines(), [
    'weft_policy_dropped_packets_total{namespace="shop",policy="web",direction="ingress"} 3',
    'weft_policy_dropped_packets_total{namespace="",policy="",direction="pending"} 1',
  ]);
  shop = 5;
  assert.match((await lines())[0], / 5$/);
  // not enforcing: the family is declared, with no samples
  const { body } = await scrape({ ipam });
  assert.match(body, /^# TYPE weft_policy_dropped_packets_total counter$/m);
  assert.doesNotMatch(body, /^weft_policy_dropped_packets_total/m);
});

Deno.test("metrics: the process's resident memory and heap are reported in bytes", async () => {
  const { body } = await scrape({ ipam });
  const value = (pattern: RegExp) => Number(pattern.exec(body)?.[1]);
  const rss = value(/^process_resident_memory_bytes (\d+)$/m);
  const used = value(/^weft_heap_bytes\{kind="used"\} (\d+)$/m);
  const total = value(/^weft_heap_bytes\{kind="total"\} (\d+)$/m);
  assert.ok(rss > 10 * 1024 * 1024, `rss ${rss}`);
  assert.ok(used > 0 && used <= total && total < rss, `heap ${used}/${total}, rss ${rss}`);
  assert.match(body, /^weft_heap_bytes\{kind="external"\} \d+$/m);
});
