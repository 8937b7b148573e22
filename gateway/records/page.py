"""The supervisor's live page: one static HTML file that polls ``/live`` and ``/stats``.

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
async function refresh() {
  try {
    const live = await get("live"), stats = await get("stats");
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
<h1>today</h1><table><tbody id="stats"></tbody></table>
<script>""" + SCRIPT + """</script></body></html>
"""
