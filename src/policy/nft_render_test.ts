import assert from "node:assert/strict";
import { compile } from "./compile.ts";
import { diffRuleSets } from "./diff.ts";
import type { CompiledRuleSet } from "./ir.ts";
import { renderDiff, renderRuleSet } from "./nft_render.ts";
import { labels, policy, xyzCluster } from "./testing.ts";
import type { NetworkPolicy } from "./types.ts";

const fromY = policy("x", "from-y", {
  podSelector: labels({ pod: "a" }),
  ingress: [{
    from: [{ namespaceSelector: labels({ ns: "y" }) }],
    ports: [{ port: "serve-80-tcp" }, { port: 81 }, { port: 90, endPort: 99, protocol: "UDP" }],
  }],
});
const egressBlock = policy("x", "out", {
  podSelector: labels({ pod: "a" }),
  policyTypes: ["Egress"],
  egress: [{ to: [{ ipBlock: { cidr: "10.32.0.0/16", except: ["10.32.1.2/32"] } }] }],
});
const T = "inet weft-policy";

function compileN1(policies: NetworkPolicy[], cluster = xyzCluster(), log?: { perSecond: number }) {
  return compile({ policies, ...cluster }, { node: "n1", log });
}

function setNamed(rs: CompiledRuleSet, comment: string): string {
  const set = rs.sets.find((s) => s.comment === comment);
  assert.ok(set, `a set "${comment}" in ${rs.sets.map((s) => s.comment)}`);
  return set.name;
}

Deno.test("the full script replaces the table and declares everything before a rule uses it", () => {
  const script = renderRuleSet(compileN1([fromY, egressBlock]));
  const lines = script.trimEnd().split("\n").filter((l) => !l.startsWith("#"));
  assert.deepEqual(lines.slice(0, 3), [
    `table ${T} {}`,
    `delete table ${T}`,
    `add table ${T} { comment "weft NetworkPolicy for node n1"; }`,
  ]);
  const declared = new Set<string>();
  for (const line of lines.slice(3)) {
    const declaration = /^add (set|counter|chain) inet weft-policy (\S+)/.exec(line);
    if (declaration) {
      declared.add(`${declaration[1]} ${declaration[2]}`);
      continue;
    }
    const element = /^add element inet weft-policy (\S+) \{ .+ \}$/.exec(line);
    if (element) {
      assert.ok(declared.has(`set ${element[1]}`), line);
      continue;
    }
    const rule = /^add rule inet weft-policy (\S+) (.*)$/.exec(line);
    assert.ok(rule, `unexpected line: ${line}`);
    assert.ok(declared.has(`chain ${rule[1]}`), line);
    for (const [, set] of rule[2].matchAll(/@(\S+)/g)) assert.ok(declared.has(`set ${set}`), line);
    for (const [, chain] of rule[2].matchAll(/jump (\S+)/g)) {
      assert.ok(declared.has(`chain ${chain}`), line);
    }
    for (const [, counter] of rule[2].matchAll(/counter name "([^"]+)"/g)) {
      assert.ok(declared.has(`counter ${counter}`), line);
    }
  }
  assert.ok(
    lines.includes(
      `add chain ${T} egress-hook { type filter hook forward priority filter; policy accept; }`,
    ),
  );
  assert.ok(
    lines.includes(
      `add chain ${T} ingress-hook { type filter hook forward priority filter + 1; policy accept; }`,
    ),
  );
});

Deno.test("the hooks, the dispatch and a policy's rules, as nft reads them", () => {
  const rs = compileN1([fromY], xyzCluster(), { perSecond: 5 });
  const lines = renderRuleSet(rs).split("\n");
  const rulesOf = (chain: string) =>
    lines.filter((l) => l.startsWith(`add rule ${T} ${chain} `)).map((l) =>
      l.slice(`add rule ${T} ${chain} `.length)
    );
  const target = setNamed(rs, "pods pod=a in x (this node)");
  const peer = setNamed(rs, "every pod in namespaces ns=y");
  const named = setNamed(rs, "port serve-80-tcp/TCP of every pod");
  const chain = rs.chains.find((c) => c.name.startsWith("in-"))!.name;
  const counter = rs.counters.find((c) => c.policy?.name === "from-y")!.name;
  assert.deepEqual(rulesOf("ingress-hook"), [
    "ct state established,related accept",
    'ip daddr @pending counter name "drop-pending" drop',
    "ip daddr @ingress-isolated jump ingress",
  ]);
  assert.deepEqual(rulesOf("egress-hook"), [
    "ct state established,related accept",
    'ip saddr @pending counter name "drop-pending" drop',
    "ip saddr @egress-isolated jump egress",
  ]);
  assert.deepEqual(rulesOf("ingress"), [
    `ip daddr @${target} jump ${chain} comment "x/from-y ingress"`,
    `ip daddr @${target} counter name "${counter}" limit rate 5/second log prefix "weft-policy deny x/from-y ingress: " level info comment "x/from-y ingress"`,
    "drop",
  ]);
  assert.deepEqual(rulesOf("egress"), ["drop"]);
  assert.deepEqual(rulesOf(chain), [
    `ip saddr @${peer} meta l4proto . th dport { tcp . 81, udp . 90-99 } accept comment "x/from-y ingress[0]"`,
    `ip saddr @${peer} meta l4proto tcp ip daddr . th dport @${named} accept comment "x/from-y ingress[0]"`,
  ]);
  assert.ok(lines.includes(`add element ${T} ${target} { 10.32.1.1 }`));
  assert.ok(lines.includes(`add element ${T} ${peer} { 10.32.2.1, 10.32.2.2, 10.32.2.3 }`));
  assert.ok(
    lines.some((l) => l.startsWith(`add element ${T} ${named} { 10.32.1.1 . 80, 10.32.1.2 . 80,`)),
  );
});

Deno.test("an ipBlock with a hole becomes ranges and prefixes", () => {
  const rs = compileN1([egressBlock]);
  const block = setNamed(rs, "ipBlock 10.32.0.0-10.32.1.1,10.32.1.3-10.32.255.255");
  const script = renderRuleSet(rs);
  assert.ok(script.includes(`add set ${T} ${block} { type ipv4_addr; flags interval;`));
  assert.ok(
    script.includes(`add element ${T} ${block} { 10.32.0.0-10.32.1.1, 10.32.1.3-10.32.255.255 }`),
  );
  const aligned = compileN1([
    policy("x", "p", {
      ingress: [{ from: [{ ipBlock: { cidr: "192.168.0.0/16", except: ["192.168.0.0/17"] } }] }],
    }),
  ]);
  assert.ok(renderRuleSet(aligned).includes("{ 192.168.128.0/17 }"));
});

Deno.test("pod churn renders as element changes only, removals tolerant of absent ones", () => {
  const cluster = xyzCluster();
  const before = compileN1([fromY], cluster);
  const after = compileN1([fromY], {
    ...cluster,
    pods: cluster.pods.filter((p) => p.ip !== "10.32.2.3"),
  });
  const lines = renderDiff(diffRuleSets(before, after)).trimEnd().split("\n");
  const peer = setNamed(before, "every pod in namespaces ns=y");
  const named = setNamed(before, "port serve-80-tcp/TCP of every pod");
  assert.deepEqual(lines.sort(), [
    `add element ${T} ${named} { 10.32.2.3 . 80 }`,
    `add element ${T} ${peer} { 10.32.2.3 }`,
    `delete element ${T} ${named} { 10.32.2.3 . 80 }`,
    `delete element ${T} ${peer} { 10.32.2.3 }`,
  ]);
  assert.equal(renderDiff(diffRuleSets(after, after)), "");
});

Deno.test("a policy change renews its chain; deletions come after the rules that used them", () => {
  const before = compileN1([fromY, egressBlock]);
  const after = compileN1([fromY]);
  const script = renderDiff(diffRuleSets(before, after));
  const lines = script.trimEnd().split("\n");
  const removed = before.chains.find((c) => c.name.startsWith("eg-"))!.name;
  const block = setNamed(before, "ipBlock 10.32.0.0-10.32.1.1,10.32.1.3-10.32.255.255");
  const counter = before.counters.find((c) => c.policy?.name === "out")!.name;
  const flushEgress = lines.indexOf(`flush chain ${T} egress`);
  assert.ok(flushEgress >= 0);
  assert.deepEqual(lines.slice(flushEgress + 1, flushEgress + 2), [`add rule ${T} egress drop`]);
  assert.deepEqual(lines.slice(-4), [
    `flush chain ${T} ${removed}`,
    `delete chain ${T} ${removed}`,
    `delete set ${T} ${block}`,
    `delete counter ${T} ${counter}`,
  ]);
  assert.ok(lines.some((l) => l.startsWith(`delete element ${T} egress-isolated`)));
});

Deno.test("text from selectors cannot break out of a quoted string", () => {
  const rs = compileN1([policy("x", "p", {
    ingress: [{ from: [{ podSelector: labels({ app: 'x"; flush ruleset; #' }) }] }],
  })]);
  const line = renderRuleSet(rs).split("\n").find((l) => l.includes("flush ruleset"));
  assert.ok(line);
  assert.match(line, /comment "pods app=x__ flush ruleset_ _ in x"; \}$/);
});

Deno.test("another table name is used throughout, a bad one refused", () => {
  const script = renderRuleSet(compileN1([fromY]), { table: "test-policy" });
  assert.ok(!script.includes("weft-policy"));
  assert.throws(() => renderRuleSet(compileN1([]), { table: "a b" }), /Invalid nftables name/);
});
