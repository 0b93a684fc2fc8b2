/**
 * The topology page served at GET /ui: one self-contained document (no CDN, no fonts, no
 * request but GET /status/topology to the agent that served it), so it works on an air-gapped
 * node through `kubectl port-forward` or an SSH tunnel.
 *
 * Every fact is text: the graph's colours and dash patterns repeat what the labels and the
 * tables say, for screen readers and colour-blind operators. Peer data comes from gossip and so
 * from other machines: the script only ever writes it with textContent, never as markup.
 * Problems come first, then the picture, then the tables. The page polls once a second, so a
 * change shows within two seconds without a reload.
 *
 * The script avoids template literals so this file can hold it in one.
 */
import { createHash } from "node:crypto";

const STYLE = String.raw`
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #6e7781;
  --fastdp: #0969da; --sleeve: #8250df; --relay: #bf8700; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 0 1.5rem 2rem; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 1.5rem; }
h1 { font-size: 1.4rem; margin: 1rem 0 0.25rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
#summary { font-weight: 600; }
#updated { color: var(--muted); font-size: 0.85rem; }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
#problems { margin: 0; padding-left: 1.2rem; }
#problems li { margin: 0.25rem 0; }
#problems .fix { color: var(--muted); }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.2rem 0.75rem 0.2rem 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
td.num { text-align: right; }
.graph-wrap { overflow: auto; max-width: 100%; }
svg text { font-size: 12px; fill: currentColor; }
svg .node circle { stroke: currentColor; stroke-width: 1.5; fill: var(--ok); }
svg .node.unreachable circle { fill: var(--bad); }
svg .node.self circle { stroke-width: 3; }
svg line { stroke-width: 1.5; }
svg line.fastdp { stroke: var(--fastdp); }
svg line.sleeve { stroke: var(--sleeve); stroke-dasharray: 6 4; }
svg line.relay { stroke: var(--relay); stroke-dasharray: 2 3; }
svg line.mesh, svg line.unknown { stroke: var(--muted); stroke-dasharray: 1 5; }
svg line.unhealthy { stroke: var(--bad); stroke-width: 2; }
svg line.crowded { stroke-opacity: 0.25; stroke-width: 1; }
.legend span { margin-right: 1rem; white-space: nowrap; }
.bar { display: flex; width: 100%; max-width: 60rem; height: 2.6rem; border: 1px solid var(--line); }
.seg { position: relative; overflow: hidden; border-right: 1px solid Canvas; background: var(--line); min-width: 1px; }
.seg .used { position: absolute; left: 0; top: 0; bottom: 0; background: var(--fastdp); opacity: 0.35; }
.seg span { position: relative; display: block; padding: 0.1rem 0.25rem; font-size: 0.75rem; white-space: nowrap; }
.seg.unreachable { background: repeating-linear-gradient(45deg, var(--line), var(--line) 4px, transparent 4px, transparent 8px); }
details summary { cursor: pointer; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
`;

const SCRIPT = String.raw`
"use strict";
var POLL_MS = 1000;
var SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  var node = document.createElement(tag);
  for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svg(tag, attrs, text) {
  var node = document.createElementNS(SVG, tag);
  for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
  if (text !== undefined) node.textContent = text;
  return node;
}
function row(cells) {
  var tr = el("tr");
  cells.forEach(function (cell) {
    var td = el("td", cell.num ? { class: "num" } : {});
    if (cell.node) td.appendChild(cell.node); else td.textContent = cell.text;
    if (cell.cls) td.classList.add(cell.cls);
    tr.appendChild(td);
  });
  return tr;
}
function replaceRows(id, rows) {
  var body = document.querySelector("#" + id + " tbody") || document.getElementById(id + "-body");
  body.replaceChildren.apply(body, rows);
}
function label(node) {
  return node.nickname && node.nickname !== node.name ? node.nickname + " (" + node.name + ")" : node.name;
}
function pathText(link) {
  if (!link.path) return link.state === "established" ? "connected (path not reported)" : link.state;
  var words = { fastdp: "fastdp (kernel VXLAN)", sleeve: "sleeve (userspace)", relay: "relayed", down: "down" };
  var text = words[link.path] || link.path;
  if (link.path === "relay" && link.via) text += " via " + link.via;
  return text;
}

function renderProblems(view) {
  var list = document.getElementById("problems");
  var items = view.problems.map(function (p) {
    var li = el("li", { class: p.severity === "error" ? "bad" : "warn" });
    li.appendChild(el("strong", {}, (p.severity === "error" ? "Error: " : "Warning: ")));
    li.appendChild(document.createTextNode(p.message));
    if (p.fix) li.appendChild(el("span", { class: "fix" }, " Fix: " + p.fix));
    return li;
  });
  if (items.length === 0) items = [el("li", { class: "ok" }, "No problems: every peer is reachable and every path is as expected.")];
  list.replaceChildren.apply(list, items);
}

function renderSummary(view) {
  var self = view.nodes.filter(function (n) { return n.self; })[0];
  document.getElementById("self").textContent = self ? "on " + label(self) : "";
  var reachable = view.nodes.filter(function (n) { return n.reachable; }).length;
  var summary = document.getElementById("summary");
  summary.textContent = (view.ready ? "Ready" : "Not ready") + " - " + view.nodes.length + " nodes, " +
    reachable + " reachable, " + (view.nodes.length - reachable) + " unreachable; " +
    view.links.length + " connections; pod range " + view.range + "; " + view.problems.length + " problems";
  summary.className = view.ready && view.problems.length === 0 ? "ok" : view.ready ? "warn" : "bad";
  document.getElementById("updated").textContent = "updated " + new Date(view.generatedAt).toLocaleTimeString();
}

// Nodes on a circle, labels along the radius (outward), so labels of neighbours never cross
// however many nodes there are: adjacent labels are one arc step apart at the circle and
// diverge outward.
function renderGraph(view) {
  var graph = document.getElementById("graph");
  var nodes = view.nodes.slice().sort(function (a, b) { return a.self ? -1 : b.self ? 1 : a.name < b.name ? -1 : 1; });
  var count = nodes.length;
  var longest = nodes.reduce(function (m, n) { return Math.max(m, label(n).length + 14); }, 0);
  var radius = Math.max(90, Math.ceil((count * 30) / (2 * Math.PI)));
  var margin = Math.min(360, longest * 7 + 24);
  var size = 2 * (radius + margin);
  var c = size / 2;
  graph.setAttribute("viewBox", "0 0 " + size + " " + size);
  graph.setAttribute("width", String(size));
  graph.setAttribute("height", String(size));
  var at = {};
  nodes.forEach(function (n, i) {
    var angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, count);
    at[n.name] = { x: c + radius * Math.cos(angle), y: c + radius * Math.sin(angle), angle: angle };
  });
  var children = [svg("desc", { id: "graph-desc" }, "Nodes on a circle; a line for each connection. The tables below list the same facts.")];
  var crowded = view.links.length > 100;
  var notable = function (l) { return l.healthy === false || l.expected === false ? 1 : 0; };
  var ordered = view.links.slice().sort(function (x, y) { return notable(x) - notable(y); });
  ordered.forEach(function (link) {
    var a = at[link.a], b = at[link.b];
    if (!a || !b) return;
    var cls = (link.path || (link.state === "established" ? "mesh" : "unknown")) + (link.healthy === false ? " unhealthy" : crowded && !notable(link) ? " crowded" : "");
    var line = svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: cls, "data-link": link.a + "|" + link.b });
    line.appendChild(svg("title", {}, link.aNickname + " - " + link.bNickname + ": " + pathText(link)));
    children.push(line);
  });
  nodes.forEach(function (n) {
    var p = at[n.name];
    var g = svg("g", { class: "node" + (n.reachable ? "" : " unreachable") + (n.self ? " self" : ""), "data-peer": n.name });
    g.appendChild(svg("circle", { cx: p.x, cy: p.y, r: 6 }));
    var degrees = (p.angle * 180) / Math.PI;
    var left = Math.cos(p.angle) < -1e-9;
    var text = label(n) + (n.self ? " - this node" : "") + (n.reachable ? "" : " - UNREACHABLE");
    var t = svg("text", {
      x: p.x + (left ? -12 : 12),
      y: p.y + 4,
      class: "node-label",
      "text-anchor": left ? "end" : "start",
      transform: "rotate(" + (left ? degrees + 180 : degrees) + " " + p.x + " " + p.y + ")",
    }, text);
    if (!n.reachable) t.classList.add("bad");
    g.appendChild(t);
    children.push(g);
  });
  graph.replaceChildren.apply(graph, children);
}

// Three groups: connections with something wrong between reachable nodes (open), those of
// unreachable nodes (stale, folded: the problem list already names the nodes) and the working
// ones (folded in a large cluster, where 50 nodes make 1,225 pairs; open in a small one).
function renderLinks(view) {
  var reachable = {};
  view.nodes.forEach(function (n) { reachable[n.name] = n.reachable; });
  var group = function (l) {
    if (!reachable[l.a] || !reachable[l.b]) return "links-gone";
    return l.healthy === false || l.path === "down" || l.expected === false || l.state !== "established" ? "links-bad" : "links";
  };
  var byName = function (x, y) { return x.aNickname + x.bNickname < y.aNickname + y.bNickname ? -1 : 1; };
  var toRow = function (l) {
    var health = l.healthy === undefined ? (l.state === "established" ? "not reported" : "one side only") :
      l.healthy ? "healthy" : "unhealthy" + (l.reason ? ": " + l.reason : "");
    return row([
      { text: l.aNickname }, { text: l.bNickname },
      { text: pathText(l), cls: l.expected === false ? "warn" : undefined },
      { text: l.encrypted === undefined ? "not reported" : l.encrypted ? "encrypted" : "not encrypted" },
      { text: health, cls: l.healthy === false ? "bad" : undefined },
      { text: l.reportedBy || "" },
    ]);
  };
  var groups = { "links-bad": [], "links-gone": [], links: [] };
  view.links.slice().sort(byName).forEach(function (l) { groups[group(l)].push(l); });
  for (var id in groups) replaceRows(id, groups[id].map(toRow));
  document.getElementById("links-bad").hidden = groups["links-bad"].length === 0;
  document.getElementById("links-count").textContent = String(view.links.length);
  document.getElementById("links-gone-count").textContent = groups["links-gone"].length + " connections of unreachable nodes (last known)";
  document.getElementById("links-gone").hidden = groups["links-gone"].length === 0;
  document.getElementById("links-good-count").textContent = groups.links.length + " working connections";
  var details = document.getElementById("links-good");
  if (!details.dataset.touched) details.open = groups.links.length <= 66;
}

function renderRing(view) {
  var bar = document.getElementById("ring");
  var total = view.ring.reduce(function (s, r) { return s + r.size; }, 0) || 1;
  var segments = view.ring.map(function (r) {
    var seg = el("div", { class: "seg" + (r.reachable ? "" : " unreachable"), role: "listitem", title: r.ownerNickname + ": " + r.start + " - " + r.end });
    seg.style.flex = String(r.size / total);
    if (r.used !== undefined && r.size > 0) {
      var used = el("div", { class: "used" });
      used.style.width = Math.min(100, (100 * r.used) / r.size) + "%";
      seg.appendChild(used);
    }
    seg.appendChild(el("span", {}, r.ownerNickname + " " + Math.round((1000 * r.size) / total) / 10 + "%"));
    return seg;
  });
  bar.replaceChildren.apply(bar, segments);
  replaceRows("ipam", view.owners.map(function (o) {
    return row([
      { text: o.nickname }, { text: o.reachable ? "reachable" : "unreachable", cls: o.reachable ? undefined : "bad" },
      { text: String(o.owned), num: true }, { text: o.used === undefined ? "?" : String(o.used), num: true },
      { text: o.free === undefined ? "?" : String(o.free), num: true },
      { text: (Math.round((1000 * o.owned) / total) / 10) + "%", num: true },
    ]);
  }));
}

function renderNodes(view) {
  replaceRows("nodes", view.nodes.map(function (n) {
    var pods = el("details");
    pods.appendChild(el("summary", {}, n.pods.length + (n.pods.length === 1 ? " pod" : " pods")));
    var list = el("ul");
    n.pods.forEach(function (p) { list.appendChild(el("li", {}, p.name ? p.name + " " + p.ip : p.ip)); });
    pods.appendChild(list);
    return row([
      { text: n.nickname }, { text: n.name }, { text: n.self ? "this node" : n.reachable ? "reachable" : "UNREACHABLE", cls: n.reachable ? undefined : "bad" },
      { node: pods },
    ]);
  }));
}

async function refresh() {
  try {
    var response = await fetch("/status/topology", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    var view = await response.json();
    renderSummary(view);
    renderProblems(view);
    renderGraph(view);
    renderLinks(view);
    renderRing(view);
    renderNodes(view);
    document.body.dataset.state = "live";
  } catch (error) {
    var summary = document.getElementById("summary");
    summary.textContent = "Cannot reach the agent: " + error.message + " (retrying)";
    summary.className = "bad";
    document.body.dataset.state = "error";
  }
  setTimeout(refresh, POLL_MS);
}
document.getElementById("links-good").addEventListener("toggle", function (event) {
  // once a person opens or closes it, polling leaves their choice alone
  if (event.isTrusted) event.target.dataset.touched = "yes";
});
refresh();
`;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64");
}

/**
 * The page's Content-Security-Policy: its own inline script and style (by hash, so nothing
 * injected could run) and requests to the agent that served it, nothing else.
 */
export const UI_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(SCRIPT)}'`,
  `style-src 'sha256-${sha256(STYLE)}'`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The whole page: a few tens of KB at most, asserted by the API test. */
export const UI_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft: cluster network</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-state="loading">
<header>
<h1>weft <span id="self"></span></h1>
<p id="summary" aria-live="polite">Loading...</p>
<p id="updated"></p>
</header>
<main>
<section aria-labelledby="problems-h">
<h2 id="problems-h">Problems</h2>
<ul id="problems" aria-live="polite"></ul>
</section>
<section aria-labelledby="graph-h">
<h2 id="graph-h">Nodes and connections</h2>
<p class="legend"><span>solid blue: fastdp (kernel VXLAN)</span><span>dashed purple: sleeve (userspace)</span><span>dotted amber: relayed</span><span>grey: mesh only, path not reported</span><span>red dot or line: unreachable or unhealthy</span></p>
<div class="graph-wrap"><svg id="graph" role="img" aria-labelledby="graph-h graph-desc" xmlns="http://www.w3.org/2000/svg"></svg></div>
</section>
<section aria-labelledby="links-h">
<h2 id="links-h">Connections (<span id="links-count">0</span>)</h2>
<table id="links-bad" hidden><caption>Connections with problems</caption><thead><tr><th>Node</th><th>Node</th><th>Path</th><th>Encryption</th><th>Health</th><th>Reported by</th></tr></thead><tbody></tbody></table>
<details id="links-gone" hidden><summary id="links-gone-count">connections of unreachable nodes</summary>
<table id="links-gone-table"><thead><tr><th>Node</th><th>Node</th><th>Path</th><th>Encryption</th><th>Health</th><th>Reported by</th></tr></thead><tbody id="links-gone-body"></tbody></table>
</details>
<details id="links-good"><summary id="links-good-count">working connections</summary>
<table id="links"><thead><tr><th>Node</th><th>Node</th><th>Path</th><th>Encryption</th><th>Health</th><th>Reported by</th></tr></thead><tbody></tbody></table>
</details>
</section>
<section aria-labelledby="ipam-h">
<h2 id="ipam-h">Address range</h2>
<div id="ring" class="bar" role="list" aria-label="Who owns which part of the pod range, in address order"></div>
<table id="ipam"><thead><tr><th>Owner</th><th>State</th><th>Owned</th><th>Used</th><th>Free</th><th>Share</th></tr></thead><tbody></tbody></table>
</section>
<section aria-labelledby="nodes-h">
<h2 id="nodes-h">Nodes and their pods</h2>
<table id="nodes"><thead><tr><th>Nickname</th><th>Peer name</th><th>State</th><th>Pods</th></tr></thead><tbody></tbody></table>
</section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
