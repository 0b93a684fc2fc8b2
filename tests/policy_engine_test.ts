/**
 * The NetworkPolicy engine against the fake API server (real informers over HTTP on loopback)
 * and an in-memory kernel that holds the rule set as data and runs packets through it with
 * src/policy's interpreter. What an ADD's caller and the kernel see: a pod protected when its
 * ADD returns, pending while its pod is unknown, enforcement following policy changes, a failed
 * transaction failing the ADD and healed by a full replacement, an earlier run's table kept
 * until the API is listed, releases forgetting connections. No root, no namespaces.
 */
import assert from "node:assert/strict";
import type { PolicyKernel } from "../src/agent/policy_kernel.ts";
import { AttachmentBook } from "../src/agent/policy_attachments.ts";
import { PolicyEngine } from "../src/agent/policy_engine.ts";
import { policyCluster } from "../src/agent/policy_wiring.ts";
import { policyDiagnostics, policyStatusView } from "../src/agent/policy_status.ts";
import { PolicyHealth } from "../src/agent/policy_health.ts";
import { startClusterState } from "../src/kube/mod.ts";
import { formatIp } from "../src/net/cidr.ts";
import {
  type CompiledRuleSet,
  interpret,
  PENDING_SET,
  type RuleSetDiff,
} from "../src/policy/mod.ts";
import { applyRuleSetDiff } from "../src/policy/testing.ts";
import { type FakeCluster, startFakeCluster, waitFor } from "./kube_fixture.ts";

/** The kernel as data: a table we built, a table an earlier run left (`foreign`), or none. */
class MemoryKernel implements PolicyKernel {
  ruleSet: CompiledRuleSet | undefined;
  foreign: { pending: Set<string> } | undefined;
  readonly calls: string[] = [];
  readonly forgotten: string[] = [];
  failures = 0;

  constructor(options: { earlierTable?: boolean } = {}) {
    if (options.earlierTable) this.foreign = { pending: new Set() };
  }

  tableExists() {
    return Promise.resolve(this.ruleSet !== undefined || this.foreign !== undefined);
  }
  replace(ruleSet: CompiledRuleSet) {
    this.#mayFail("replace");
    this.ruleSet = ruleSet;
    this.foreign = undefined;
    return Promise.resolve(1);
  }
  patch(diff: RuleSetDiff) {
    this.#mayFail("patch");
    if (!this.ruleSet) throw new Error("No such table");
    this.ruleSet = applyRuleSetDiff(this.ruleSet, diff);
    return Promise.resolve(1);
  }
  changePending(change: { add: string[]; remove: string[] }) {
    this.#mayFail("pending");
    if (!this.foreign) throw new Error("changePending on a table this run built");
    for (const ip of change.add) this.foreign.pending.add(ip);
    for (const ip of change.remove) this.foreign.pending.delete(ip);
    return Promise.resolve();
  }
  counters() {
    return Promise.resolve(new Map<string, number>());
  }
  forgetConnections(address: string) {
    this.forgotten.push(address);
    return Promise.resolve();
  }

  #mayFail(call: string) {
    if (this.failures > 0) {
      this.failures--;
      throw new Error(`nft refused the script (${call})`);
    }
    this.calls.push(call);
  }

  /** Whether this node's forward hook lets the first packet of a connection through. */
  allows(from: string, to: string, port = 80, protocol: "TCP" | "UDP" = "TCP"): boolean {
    assert.ok(this.ruleSet, "no table built by this run");
    return interpret(this.ruleSet, { saddr: from, daddr: to, protocol, port }).verdict === "accept";
  }

  pending(): string[] {
    const members = this.ruleSet?.members.get(PENDING_SET) ?? [];
    return members.map((e) => formatIp(e[0]));
  }
}

const NODE = "n1";
/** A pod on another node, in namespace y. */
const REMOTE = "10.32.9.1";

function denyFromY() {
  return {
    podSelector: { matchLabels: { app: "web" } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "x" } } }] }],
  };
}

async function setup(
  cluster: FakeCluster,
  options: {
    kernel?: MemoryKernel;
    book?: AttachmentBook;
    podWaitMs?: number;
    allocated?: () => string[];
  } = {},
) {
  const kernel = options.kernel ?? new MemoryKernel();
  const health = new PolicyHealth();
  const state = cluster.track(startClusterState({
    client: cluster.client,
    signal: cluster.signal,
    backoff: { initialMs: 5, maxMs: 20 },
    onError: (error) => health.report(error),
  }));
  const engine = new PolicyEngine({
    node: NODE,
    cluster: policyCluster(state, cluster.client),
    kernel,
    book: options.book ?? await AttachmentBook.open(undefined),
    health,
    log: () => {},
    podWaitMs: options.podWaitMs ?? 200,
    batchMs: 1,
    allocated: options.allocated,
  });
  await engine.start();
  return { kernel, engine, state, health };
}

/**
 * Namespaces x and y with a client pod each on another node; with `web`, the pod x/web bound to
 * this node (no address yet: the kubelet asks for the network after binding), and with `policy`,
 * x/web's policy admitting x only.
 */
function baseCluster(cluster: FakeCluster, options: { web?: boolean; policy?: boolean } = {}) {
  const { api } = cluster;
  api.addNamespace("x", { team: "x" });
  api.addNamespace("y", { team: "y" });
  api.addPod("y", "client", { labels: { app: "client" }, ip: REMOTE, node: "n2" });
  api.addPod("x", "friend", { labels: { app: "client" }, ip: "10.32.9.2", node: "n2" });
  if (options.policy) api.addPolicy("x", "web", denyFromY());
  if (options.web) api.addPod("x", "web", { labels: { app: "web" }, node: NODE });
}

/** The ADD of x/<name> as container c1, at 10.32.0.5. */
function attach(engine: PolicyEngine, name: string, uid?: string): Promise<void> {
  return engine.attach({ containerID: "c1", ifname: "eth0" }, "10.32.0.5", {
    namespace: "x",
    name,
    ...(uid ? { uid } : {}),
  });
}

Deno.test("a pod is in its sets when its ADD returns: denied from y, allowed from x", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true, web: true });
  const { kernel, engine, state } = await setup(cluster);
  await state.synced;
  await waitFor("the table built from the API", () => kernel.calls.length === 2);
  await attach(engine, "web");
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false, "y may not reach x/web");
  assert.equal(kernel.allows("10.32.9.2", "10.32.0.5"), true, "x/friend may");
  assert.deepEqual(kernel.pending(), []);
  const view = policyStatusView(engine.snapshot(), []);
  assert.deepEqual(view.pods, [{
    address: "10.32.0.5",
    pod: "x/web",
    state: "enforced",
    ingress: ["x/web"],
    egress: [],
  }]);
  assert.deepEqual(kernel.calls, ["replace", "replace", "patch"], "bootstrap, list, the ADD");
  await engine.stop();
});

Deno.test("before the first list an ADD is pending; the list replaces the table once", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true, web: true });
  cluster.api.unavailable = true; // the API is down when the agent starts
  const { kernel, engine, state } = await setup(cluster, { podWaitMs: 50 });
  await attach(engine, "web");
  assert.deepEqual(kernel.pending(), ["10.32.0.5"], "unknown policies: held pending");
  assert.equal(kernel.allows("10.32.9.2", "10.32.0.5"), false, "pending drops everything");
  cluster.api.unavailable = false;
  await state.synced;
  await waitFor("the table built from the API", () => kernel.pending().length === 0);
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false);
  assert.equal(kernel.allows("10.32.9.2", "10.32.0.5"), true);
  assert.equal(kernel.calls.filter((c) => c === "replace").length, 2, "bootstrap, then sync");
  await engine.stop();
});

Deno.test("a pod the API does not show yet is pending, then gets its sets when it appears", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true });
  const { kernel, engine, state } = await setup(cluster, { podWaitMs: 50 });
  await state.synced;
  await attach(engine, "late");
  assert.deepEqual(kernel.pending(), ["10.32.0.5"]);
  assert.equal(engine.snapshot().state?.local[0].state, "pending");
  cluster.api.addPod("x", "late", { labels: { app: "web" }, node: NODE });
  await waitFor("the pod out of pending", () => kernel.pending().length === 0);
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false);
  assert.equal(kernel.allows("10.32.9.2", "10.32.0.5"), true);

  // an ADD for another incarnation than the API shows (K8S_POD_UID) is not that pod
  await engine.attach({ containerID: "c3", ifname: "eth0" }, "10.32.0.7", {
    namespace: "x",
    name: "late",
    uid: "not-the-stored-uid",
  });
  assert.deepEqual(kernel.pending(), ["10.32.0.7"]);

  // in a namespace no policy isolates, an unknown pod is not held pending
  await engine.attach({ containerID: "c2", ifname: "eth0" }, "10.32.0.6", {
    namespace: "y",
    name: "unseen",
  });
  assert.deepEqual(kernel.pending(), ["10.32.0.7"]);
  assert.equal(engine.snapshot().state?.local.find((l) => l.ip === "10.32.0.6")?.state, "unknown");
  await engine.stop();
});

Deno.test("an ADD that beats the watch reads its pod from the API", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true });
  const { kernel, engine, state } = await setup(cluster, { podWaitMs: 2000 });
  await state.synced;
  // the pods' watch is refused from now on: the store cannot learn the pod, only a GET can
  cluster.api.forbidden.add("watch pods");
  cluster.api.breakWatches();
  cluster.api.addPod("x", "web", { labels: { app: "web" }, node: NODE });
  await attach(engine, "web");
  assert.deepEqual(kernel.pending(), []);
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false);
  await engine.stop();
});

Deno.test("policies added, changed and removed in the API are enforced", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { web: true });
  const { kernel, engine, state } = await setup(cluster);
  await state.synced;
  await attach(engine, "web");
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), true, "no policy: open");
  cluster.api.addPolicy("x", "web", denyFromY());
  await waitFor("the policy added", () => !kernel.allows(REMOTE, "10.32.0.5"));
  assert.equal(kernel.allows("10.32.9.2", "10.32.0.5"), true);
  cluster.api.updatePolicy("x", "web", { podSelector: {}, policyTypes: ["Ingress"] });
  await waitFor("the policy changed", () => !kernel.allows("10.32.9.2", "10.32.0.5"));
  cluster.api.remove("networkpolicies", "x", "web");
  await waitFor("the policy removed", () => kernel.allows(REMOTE, "10.32.0.5"));
  // a namespace label change moves the peers of a namespaceSelector
  cluster.api.addPolicy("x", "web", denyFromY());
  await waitFor("the policy back", () => !kernel.allows(REMOTE, "10.32.0.5"));
  cluster.api.setNamespaceLabels("y", { team: "x" });
  await waitFor("y admitted by its new label", () => kernel.allows(REMOTE, "10.32.0.5"));
  await engine.stop();
});

Deno.test("a failed transaction fails the ADD; the retry replaces the whole table", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true, web: true });
  const { kernel, engine, state } = await setup(cluster);
  await state.synced;
  await waitFor("the first full table", () => kernel.calls.length === 2);
  kernel.failures = 1;
  await assert.rejects(
    attach(engine, "web"),
    /nft refused/,
  );
  assert.equal(
    policyDiagnostics(engine.snapshot(), engine.health)[0]?.code,
    "policy-apply-failed",
  );
  // the caller undoes the ADD (the wiring releases the address); the loop heals on its own
  await engine.detach([{ containerID: "c1", ifname: "eth0", ip: "10.32.0.5" }]);
  await waitFor("the retry", () => kernel.calls.at(-1) === "replace" && kernel.calls.length > 2);
  assert.equal(engine.snapshot().failure, undefined);
  await attach(engine, "web");
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false);
  assert.equal(kernel.calls.at(-1), "patch");
  await engine.stop();
});

Deno.test("a release takes the address out of every set and forgets its connections", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { web: true });
  cluster.api.addPolicy("x", "deny-egress", { podSelector: {}, policyTypes: ["Egress"] });
  const { kernel, engine, state } = await setup(cluster);
  await state.synced;
  await attach(engine, "web");
  assert.equal(kernel.allows("10.32.0.5", REMOTE), false);
  await engine.detach([{ containerID: "c1", ifname: "eth0", ip: "10.32.0.5" }]);
  assert.deepEqual(kernel.forgotten, ["10.32.0.5"]);
  for (const [name, members] of kernel.ruleSet!.members) {
    assert.ok(!members.some((e) => e[0] === 0x0a200005), `10.32.0.5 still in ${name}`);
  }
  // the API still shows the deleted pod with that address: a new pod there is not it
  cluster.api.updatePod("x", "web", { ip: "10.32.0.5" });
  cluster.api.addPod("y", "new", { labels: { app: "new" }, node: NODE });
  await engine.attach({ containerID: "c2", ifname: "eth0" }, "10.32.0.5", {
    namespace: "y",
    name: "new",
  });
  assert.equal(kernel.allows("10.32.0.5", REMOTE), true, "y/new is not isolated");
  await engine.stop();
});

Deno.test("a pod attached before the book keeps the API's address, until it is released", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true });
  cluster.api.addPod("x", "old", { labels: { app: "web" }, node: NODE, ip: "10.32.0.7" });
  // another node's address the API shows for a pod of this node is not taken
  cluster.api.addPod("x", "stray", { labels: { app: "web" }, node: NODE, ip: "10.32.0.8" });
  const { kernel, engine, state } = await setup(cluster, { allocated: () => ["10.32.0.7"] });
  await state.synced;
  await waitFor("the table built from the API", () => kernel.calls.length === 2);
  assert.equal(kernel.allows(REMOTE, "10.32.0.7"), false, "x/old is protected");
  assert.equal(kernel.allows(REMOTE, "10.32.0.8"), true, "not this node's address");
  // its DEL comes before the IPAM forgets the address, and the API still shows the pod
  await engine.detach([{ containerID: "old", ifname: "eth0", ip: "10.32.0.7" }]);
  for (const [name, members] of kernel.ruleSet!.members) {
    assert.ok(!members.some((e) => e[0] === 0x0a200007), `10.32.0.7 still in ${name}`);
  }
  await engine.stop();
});

Deno.test("an earlier run's table enforces until the API is listed; ADDs touch only pending", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true, web: true });
  cluster.api.forbidden.add("list networkpolicies.networking.k8s.io");
  const kernel = new MemoryKernel({ earlierTable: true });
  const { engine, state, health } = await setup(cluster, { kernel, podWaitMs: 50 });
  await attach(engine, "web");
  assert.deepEqual([...kernel.foreign!.pending], ["10.32.0.5"]);
  assert.deepEqual(kernel.calls, ["pending"], "the earlier table was not replaced");
  await waitFor("the RBAC failure reported", () => health.diagnostics().length > 0);
  assert.equal(health.diagnostics()[0].code, "kube-forbidden");
  assert.match(health.diagnostics()[0].message, /networkpolicies/);
  cluster.api.forbidden.clear();
  await state.synced;
  await waitFor("the table replaced", () => kernel.ruleSet !== undefined);
  assert.equal(kernel.allows(REMOTE, "10.32.0.5"), false);
  assert.deepEqual(kernel.pending(), []);
  await engine.stop();
});

Deno.test("the attachment book survives a restart: local pods keep their addresses", async () => {
  await using cluster = startFakeCluster();
  baseCluster(cluster, { policy: true, web: true });
  const dir = await Deno.makeTempDir({ prefix: "weft-policy-book-" });
  try {
    const path = `${dir}/policy-pods.json`;
    const first = await setup(cluster, { book: await AttachmentBook.open(path) });
    await first.state.synced;
    await attach(first.engine, "web", cluster.api.objects.get("pods", "x", "web")!.metadata.uid);
    await first.engine.stop();
    // a new agent, the same kernel (the table stays), the book read back from disk
    const calls = first.kernel.calls.length;
    const second = await setup(cluster, {
      kernel: first.kernel,
      book: await AttachmentBook.open(path),
    });
    await second.state.synced;
    await waitFor("the table rebuilt", () => first.kernel.calls.length > calls);
    assert.equal(first.kernel.calls.at(-1), "replace");
    assert.equal(first.kernel.allows(REMOTE, "10.32.0.5"), false);
    assert.equal(first.kernel.allows("10.32.9.2", "10.32.0.5"), true);
    await second.engine.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
