/**
 * The live status page: one HTML document, one stylesheet and one script,
 * all served by the daemon (no CDN, no inline script, so a strict
 * Content-Security-Policy applies). The script polls `/api/status` every two
 * seconds, builds the DOM with `textContent` only (file names cannot inject
 * markup), draws the throughput and lag charts as SVG, and posts retries to
 * `/api/retry` with the custom header the server requires.
 *
 * @module
 */

/** The page's three files. */
export interface StatusPage {
  html: string;
  css: string;
  js: string;
}

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fileconveyor status</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>fileconveyor</h1>
  <span id="node" class="node" hidden></span>
  <span id="health" class="badge">loading…</span>
  <span id="meta" class="muted"></span>
</header>
<main>
  <section id="problems" hidden></section>
  <section class="cards" id="cards"></section>
  <section>
    <h2>Sources</h2>
    <table id="sources"><thead><tr><th>Source</th><th>Path</th><th>Watch mode</th><th class="num">Files</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Servers</h2>
    <table id="servers"><thead><tr><th>Server</th><th>Transport</th><th class="num">Synced</th><th class="num">Bytes</th><th class="num">Queued</th><th class="num">In flight</th><th class="num">Failed</th><th class="num">Lag p50 / max</th><th>Last sync</th><th>Last error</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="fleet" hidden>
    <h2>Nodes</h2>
    <table id="nodes"><thead><tr><th>Node</th><th>State</th><th>Last heartbeat</th><th class="num">Queued</th><th class="num">Failed</th><th>Version</th><th>Failing servers</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Last hour</h2>
    <div class="charts">
      <figure><figcaption>Throughput (bytes per minute)</figcaption><svg id="chart-bytes" viewBox="0 0 640 180" role="img" aria-label="Throughput per server"></svg></figure>
      <figure><figcaption>Lag from change to synced (average per minute)</figcaption><svg id="chart-lag" viewBox="0 0 640 180" role="img" aria-label="Lag per server"></svg></figure>
    </div>
    <div id="legend" class="legend"></div>
  </section>
  <section>
    <h2>Failures <button id="retry-all" type="button">Retry all failed</button> <span id="retry-msg" class="muted" role="status"></span></h2>
    <table id="failures"><thead><tr><th>State</th><th>File</th><th>Server</th><th>Event</th><th class="num">Attempts</th><th>Reason</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recent transfers</h2>
    <table id="transfers"><thead><tr><th>When</th><th>Server</th><th>Event</th><th>Remote path</th><th class="num">Size</th><th class="num">Time</th><th class="num">Lag</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<footer class="muted">Data: <a href="/api/status">/api/status</a> · <a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a></footer>
</body>
</html>
`;

const CSS =
  `:root { color-scheme: light dark; --fg: #1d2430; --muted: #667085; --bg: #f7f8fa; --card: #fff;
  --line: #e3e6ea; --ok: #137333; --bad: #b3261e; --warn: #a15c00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #98a2b3; --bg: #12151a; --card: #1b2027;
  --line: #2b323c; --ok: #5fd38d; --bad: #ff8a80; --warn: #ffc46b; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 12px; align-items: baseline; padding: 14px 24px; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 8px; display: flex; gap: 10px; align-items: center; }
main { padding: 16px 24px; display: grid; gap: 20px; }
footer { padding: 12px 24px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; overflow-x: auto; }
section.cards { display: flex; gap: 12px; flex-wrap: wrap; background: none; border: 0; padding: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 130px; }
.card b { display: block; font-size: 22px; }
.muted { color: var(--muted); }
.node { font-weight: 600; }
.node-alive { color: var(--ok); } .node-gone { color: var(--bad); font-weight: 600; }
.badge { padding: 2px 10px; border-radius: 999px; font-weight: 600; border: 1px solid currentColor; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); }
#problems { border-color: var(--bad); color: var(--bad); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.path { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
td.err { color: var(--bad); }
.state-failed { color: var(--bad); font-weight: 600; } .state-retrying { color: var(--warn); }
.mode-native, .mode-polling { color: var(--ok); } .mode-missing, .mode-restarting, .mode-stopped { color: var(--bad); font-weight: 600; }
button { font: inherit; padding: 3px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
button:hover { border-color: var(--muted); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 12px; margin-bottom: 4px; }
svg { width: 100%; height: auto; background: var(--bg); border-radius: 6px; }
svg text { fill: var(--muted); font-size: 11px; }
svg .grid { stroke: var(--line); }
.legend { display: flex; gap: 16px; margin-top: 8px; flex-wrap: wrap; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; background: var(--swatch); }
.empty { color: var(--muted); font-style: italic; }
`;

const JS = `"use strict";
const COLORS = ["#3b82f6", "#e8590c", "#2f9e44", "#ae3ec9", "#0c8599", "#c92a2a", "#5c940d", "#1864ab"];
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function bytes(n) {
  if (n < 1024) return n + " B";
  const u = ["KiB", "MiB", "GiB", "TiB"];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return n.toFixed(1) + " " + u[i];
}
function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return Math.round(v) + " ms";
  if (v < 60000) return (v / 1000).toFixed(1) + " s";
  return Math.round(v / 60000) + " min";
}
function ago(t, now) {
  if (!t) return "never";
  const s = Math.round((now - t) / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(t).toISOString();
}
function fill(table, rows, empty) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: String(table.tHead.rows[0].cells.length) }, empty)));
}
function card(label, value) { return el("div", { class: "card" }, el("b", {}, value), label); }

async function retry(body, button) {
  const msg = document.getElementById("retry-msg");
  if (button) button.disabled = true;
  try {
    const r = await fetch("/api/retry", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Fileconveyor-Request": "1" },
      body: JSON.stringify(body),
    });
    const j = await r.json();
    msg.textContent = r.ok ? "Re-queued " + j.requeued + " file(s)" : "Retry refused: " + (j.error || r.status);
  } catch (e) {
    msg.textContent = "Retry failed: " + e;
  }
  refresh();
}

function chart(id, series, pick, from, to, format) {
  const box = document.getElementById(id);
  const W = 640, H = 180, L = 56, R = 8, T = 10, B = 22;
  let max = 0;
  for (const s of series) for (const p of s.points) max = Math.max(max, pick(p));
  const nodes = [];
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * i / 4;
    nodes.push(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    nodes.push(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, max ? format(max * (4 - i) / 4) : ""));
  }
  nodes.push(svg("text", { x: L, y: H - 6 }, "−60 min"));
  nodes.push(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
  const x = (t) => L + (W - L - R) * (Math.min(t, to) - from) / Math.max(1, to - from);
  const y = (v) => H - B - (H - T - B) * (max ? v / max : 0);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.map((p) => x(p.t + 30000).toFixed(1) + "," + y(pick(p)).toFixed(1));
    if (pts.length > 1) nodes.push(svg("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
    for (const p of s.points) {
      const c = svg("circle", { cx: x(p.t + 30000), cy: y(pick(p)), r: 2.5, fill: color });
      c.append(svg("title", {}, s.server + ": " + format(pick(p)) + " at " + new Date(p.t).toLocaleTimeString()));
      nodes.push(c);
    }
  });
  if (max === 0) nodes.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no transfers in the last hour"));
  box.replaceChildren(...nodes);
}

function render(s) {
  const now = s.now;
  const h = document.getElementById("health");
  h.textContent = s.health.ok ? "healthy" : "unhealthy";
  h.className = "badge " + (s.health.ok ? "ok" : "bad");
  document.getElementById("meta").textContent = "v" + s.version + " · up " + ms(now - s.startedAt) +
    (s.initialScanDone ? "" : " · initial scan running");
  const node = document.getElementById("node");
  node.hidden = !s.node;
  node.textContent = s.node ? "node " + s.node : "";
  const fleet = document.getElementById("fleet");
  fleet.hidden = !s.nodes;
  if (s.nodes) fill(document.getElementById("nodes"), s.nodes.map((n) => el("tr", { "data-node": n.node },
    el("td", {}, n.node + (n.node === s.node ? " (this)" : "")),
    el("td", { class: n.alive ? "node-alive" : "node-gone" }, n.alive ? "alive" : "gone"),
    el("td", {}, ago(n.heartbeatAt, now)), el("td", { class: "num" }, n.queued),
    el("td", { class: "num" }, n.failed), el("td", {}, n.version),
    el("td", { class: "err" }, n.failing.map((f) => f.server + " since " + ago(f.since, now) + (f.error ? ": " + f.error : "")).join("; ")))),
    "no nodes");
  const problems = document.getElementById("problems");
  problems.hidden = s.health.problems.length === 0;
  problems.replaceChildren(...s.health.problems.map((p) => el("div", {}, p)));
  document.getElementById("cards").replaceChildren(
    card("queued", s.queue.queued), card("waiting to retry", s.queue.waiting),
    card("in flight", s.queue.inFlight), card("failed", s.queue.failed),
    card("synced files", s.servers.reduce((a, x) => a + x.synced, 0)));
  fill(document.getElementById("sources"), s.sources.map((x) => el("tr", {},
    el("td", {}, x.name), el("td", { class: "path" }, x.path),
    el("td", { class: "mode-" + x.watch }, x.watch), el("td", { class: "num" }, x.files))), "no sources");
  fill(document.getElementById("servers"), s.servers.map((x) => el("tr", {},
    el("td", {}, x.name), el("td", {}, x.transporter), el("td", { class: "num" }, x.synced),
    el("td", { class: "num" }, bytes(x.syncedBytes)), el("td", { class: "num" }, x.queued),
    el("td", { class: "num" }, x.inFlight), el("td", { class: "num" }, x.failed),
    el("td", { class: "num" }, x.lag.transfers ? ms(x.lag.p50Ms) + " / " + ms(x.lag.maxMs) : "–"),
    el("td", {}, ago(x.lastSync, now)),
    el("td", { class: "err" }, x.lastError ? "failing since " + ago(x.failingSince, now) + ": " + x.lastError : ""))), "no servers");
  chart("chart-bytes", s.chart.series, (p) => p.bytes, s.chart.from, s.chart.to, bytes);
  chart("chart-lag", s.chart.series, (p) => p.lagAvgMs, s.chart.from, s.chart.to, ms);
  document.getElementById("legend").replaceChildren(...s.chart.series.map((x, i) => {
    const e = el("span", {}, x.server);
    e.style.setProperty("--swatch", COLORS[i % COLORS.length]);
    return e;
  }));
  fill(document.getElementById("failures"), s.failures.map((f) => el("tr", { "data-id": String(f.id) },
    el("td", { class: "state-" + f.state }, f.state), el("td", { class: "path" }, f.file),
    el("td", {}, f.server), el("td", {}, f.event), el("td", { class: "num" }, f.attempts),
    el("td", { class: "err" }, (f.kind ? "[" + f.kind + "] " : "") + (f.error || "")),
    el("td", {}, el("button", { type: "button", class: "retry", onclick: (ev) => retry({ id: f.id }, ev.target) }, "Retry")))),
    "no failures");
  document.getElementById("retry-all").disabled = s.queue.failed === 0;
  fill(document.getElementById("transfers"), s.transfers.map((t) => el("tr", {},
    el("td", {}, ago(t.at, now)), el("td", {}, t.server), el("td", {}, t.event),
    el("td", { class: "path" }, t.remotePath), el("td", { class: "num" }, bytes(t.bytes)),
    el("td", { class: "num" }, ms(t.ms)), el("td", { class: "num" }, ms(t.lagMs)))), "no transfers yet");
  document.body.dataset.loaded = "1";
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (e) {
    const h = document.getElementById("health");
    h.textContent = "daemon unreachable";
    h.className = "badge bad";
  }
}

document.getElementById("retry-all").addEventListener("click", (ev) => retry({}, ev.target));
refresh();
setInterval(refresh, 2000);
`;

/** The status page files. */
export const statusPage: StatusPage = { html: HTML, css: CSS, js: JS };
