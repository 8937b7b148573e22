"""The supervisor's live page: one static HTML file that polls ``/live``, ``/stats``
(today) and ``/stats?month=`` (this month, in the centre's time zone) and draws the
figures as plain SVG bar charts (no library, nothing from elsewhere): transfers per hour
today, by category today and this month, the 12345 answer-time distribution this month,
and the response rates.

The page itself holds no data and needs no token; it takes the API token from the link's
fragment (``/#token=…``, never sent to a server) or asks once, keeps it in the tab's
sessionStorage and sends it as a bearer header. A cancelled prompt or a refused token
is not kept.

Its style and script are inline; the content security policy allows exactly these two
(by their SHA-256), nothing from elsewhere, and no framing.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
 body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
 h1{font-size:1.3em} table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
 th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
 th{background:#f3f3f3} .three_party{background:#e8f4ff} .dialing{background:#fff6dd}
 .returned_to_110{background:#ffe8e8} #err{color:#b00}
 .charts{display:flex;flex-wrap:wrap;gap:1.5em} figure{margin:0}
 figcaption{font-weight:600;margin-bottom:.3em} svg{background:#fafafa}
 .bar{fill:#3b7dd8} .rate{fill:#2e9e5b} .label{font-size:9px;fill:#444}
 .value{font-size:9px;fill:#111}
"""

SCRIPT = """
// A link may carry the token in its fragment (#token=…), which never reaches a server.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  sessionStorage.setItem("linkgw-token", fromLink); history.replaceState(null, "", "/"); }
// Asked once; a cancelled or empty answer is not kept (prompt() gives null for it).
function askToken() {
  const t = (prompt("API token") || "").trim();
  if (t) sessionStorage.setItem("linkgw-token", t);
  return t;
}
const token = sessionStorage.getItem("linkgw-token") || askToken();
const cell = (v) => {
  const td = document.createElement("td"); td.textContent = v ?? ""; return td; };
async function get(path) {
  const r = await fetch(path, {headers: {Authorization: "Bearer " + token}});
  if (r.status === 401 || r.status === 403) {
    sessionStorage.removeItem("linkgw-token");  // a wrong token is not kept either
    throw new Error("the token was refused (" + r.status + "): reload the page to enter it again");
  }
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}
const SVG = "http://www.w3.org/2000/svg";
function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}
// One bar per [label, value]; values 0..max scaled to the chart's height. Rates (0..1)
// get max 1. Each bar carries its label and value as data-* for whoever reads the page.
function bars(id, entries, opts = {}) {
  const w = Math.max(240, entries.length * 26), h = 150, top = 14, bottom = 28;
  const max = opts.max ?? Math.max(1, ...entries.map(([, v]) => v || 0));
  const svg = svgEl("svg", {width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img"});
  const step = w / Math.max(entries.length, 1);
  entries.forEach(([label, value], i) => {
    const v = value || 0, bh = (h - top - bottom) * v / max;
    const x = i * step + 3, y = h - bottom - bh;
    const rect = svgEl("rect", {x, y, width: Math.max(step - 6, 2), height: bh,
      class: opts.rate ? "rate" : "bar", "data-label": label, "data-value": v});
    rect.append(svgEl("title", {}, `${label}: ${opts.rate ? (v * 100).toFixed(1) + " %" : v}`));
    svg.append(rect);
    svg.append(svgEl("text", {x: x, y: h - bottom + 11, class: "label"},
                     String(label).slice(0, 8)));
    svg.append(svgEl("text", {x: x, y: Math.max(y - 2, 9), class: "value"},
                     opts.rate ? (value === null ? "–" : Math.round(v * 100) + "%") : v));
  });
  document.getElementById(id).replaceChildren(svg);
}
function charts(today, month) {
  bars("chart-hour", Object.entries(today.by_hour || {}));
  bars("chart-category", Object.entries(today.by_category || {}));
  bars("chart-month-category", Object.entries(month.by_category || {}));
  bars("chart-answer", Object.entries(month.answer_bands || {}));
  bars("chart-rates", [
    ["≤15 s", month.answered_within_15s], ["≤20 s", month.answered_within_20s],
    ["110 reply", month.response_rate],
    ["work orders", (month.workorders || {}).response_rate]], {max: 1, rate: true});
}
async function refresh() {
  try {
    const live = await get("live"), stats = await get("stats");
    const month = await get("stats?month=" + encodeURIComponent(String(stats.day).slice(0, 7)));
    charts(stats, month);
    const rows = live.bridges.map(b => {
      const tr = document.createElement("tr"); tr.className = b.state;
      [b.bridge_id, b.direction, b.mode, b.state, b.citizen_number, b.seat,
       b.agent_target || b.target, b.item_name || b.category, b.requested_at]
        .forEach(v => tr.append(cell(v)));
      return tr; });
    document.getElementById("live").replaceChildren(...rows);
    const srows = Object.entries(stats).map(([k, v]) => {
      const tr = document.createElement("tr");
      tr.append(cell(k), cell(typeof v === "object" && v ? JSON.stringify(v) : v)); return tr; });
    document.getElementById("stats").replaceChildren(...srows);
    document.getElementById("when").textContent = new Date().toLocaleTimeString();
    document.getElementById("err").textContent = "";
  } catch (e) { document.getElementById("err").textContent = e.message; }
}
if (token) { refresh(); setInterval(refresh, 2000); }
else document.getElementById("err").textContent = "no API token: reload the page to enter one";
"""



def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (f"default-src 'none'; script-src '{_sha256(SCRIPT)}'; style-src '{_sha256(STYLE)}'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>linkgw — 110 ⇄ 12345 live</title>
<style>""" + STYLE + """</style></head><body>
<h1>110 ⇄ 12345 — live bridges <small id="when"></small></h1>
<div id="err"></div>
<table><thead><tr><th>bridge</th><th>direction</th><th>mode</th><th>state</th>
<th>citizen</th><th>seat</th><th>target</th><th>matter</th><th>since</th></tr></thead>
<tbody id="live"></tbody></table>
<div class="charts">
<figure><figcaption>transfers per hour, today</figcaption><div id="chart-hour"></div></figure>
<figure><figcaption>by category, today</figcaption><div id="chart-category"></div></figure>
<figure><figcaption>by category, this month</figcaption>
<div id="chart-month-category"></div></figure>
<figure><figcaption>seconds from the key to 12345's answer, this month</figcaption>
<div id="chart-answer"></div></figure>
<figure><figcaption>answered in time and response rates, this month</figcaption>
<div id="chart-rates"></div></figure>
</div>
<h1>today</h1><table><tbody id="stats"></tbody></table>
<script>""" + SCRIPT + """</script></body></html>
"""
