"""The supervisor's live page: one HTML file that polls ``/live``, ``/stats`` (today)
and ``/stats?month=`` (this month, in the centre's time zone) and draws the figures as
plain SVG bar charts (no library, nothing from elsewhere): transfers per hour today, by
category today and this month, the 12345 answer-time distribution this month, and the
response rates. Below them, every 10 s, the shift's handover (``/handover``): the work
orders overdue and open, feedback overdue, callbacks and pushes owed, the first rows of
each and how many more.

In Chinese by default (labels, states, modes, outcomes, category names), in English
with ``?lang=en``. Every time is shown in the centre's time zone (the figures say
which), never as an ISO string; figures are labelled rows, never JSON; the hour axis
runs 00 to 23 and the answer-time bands in numeric order whatever order the JSON
object's keys come in; labels are never cut. The category names come from the
catalogue, as a JSON data block the script reads (not run, so the content security
policy is unchanged).

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
import json
from collections.abc import Mapping

STYLE = """
 body{font:15px "Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei","PingFang SC",system-ui,
  sans-serif;margin:1.5em;color:#222}
 h1{font-size:1.3em} table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
 th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left}
 th{background:#f3f3f3} .three_party{background:#e8f4ff} .dialing{background:#fff6dd}
 .returned_to_first_line{background:#ffe8e8} #err{color:#b00}
 .charts{display:flex;flex-wrap:wrap;gap:1.5em} figure{margin:0}
 figcaption{font-weight:600;margin-bottom:.3em} svg{background:#fafafa}
 .bar{fill:#3b7dd8} .rate{fill:#2e9e5b} .label{font-size:11px;fill:#444}
 .value{font-size:11px;fill:#111}
 @media (min-width:1800px){body{font-size:18px} .label,.value{font-size:13px}}
"""

SCRIPT = """
const LANG = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "zh";
const WORDS = {
  zh: {title: "110 ⇄ 12345 实时转接", updated: "更新于", bridge: "转接编号", direction: "方向",
    mode: "方式", state: "状态", citizen: "市民号码", seat: "席位", target: "对方",
    matter: "事项", since: "开始时间", hour: "今日每小时转接量（按键时刻）",
    category: "今日按类别", monthCategory: "本月按类别",
    answer: "本月从按键到对方接听用时（秒）", rates: "本月及时接听率与反馈率",
    today: "今日汇总", token: "请输入 API 令牌",
    refused: "令牌被拒绝（{s}）：请刷新页面重新输入", noToken: "没有 API 令牌：请刷新页面输入",
    r15: "15秒内接听", r20: "20秒内接听", reply: "110按时反馈", orders: "工单按时答复",
    requested: "已请求", answered: "已应答", dialing: "正在呼叫", three_party: "三方通话",
    handed_off: "已移交", returned_to_first_line: "转回本线", ended: "已结束",
    transfer: "一键转接", consult: "咨询转接", trunk: "中继转入",
    kept_by_first_line: "本线保留", abandoned: "市民挂断", failed: "失败", refused_o: "拒绝转接",
    three_party_ended: "三方通话中结束", unknown: "不明", unspecified: "未分类",
    day: "日期", time_zone: "时区", transfers: "转接总数", live: "进行中",
    by_outcome: "按结果", by_direction: "按方向", recovered: "接管恢复",
    unclassified: "未输入事项代码", unknown_reasons: "结果不明的原因", by_category: "按类别",
    by_hour: "按小时",
    answer_bands: "接听用时分布（秒）", dialled: "已拨打", answer_p50_s: "接听用时中位数（秒）",
    answer_p90_s: "接听用时90分位（秒）", answered_within_15s: "15秒内接听率",
    answered_within_20s: "20秒内接听率", queue_p50_s: "排队用时中位数（秒）",
    queue_within_15s: "15秒内排队接听率", queue_within_20s: "20秒内排队接听率",
    queue_standard: "接听标准", within_15s: "15秒内", within_20s: "20秒内",
    reverse_due: "12345转110应反馈", reverse_responded_on_time: "按时反馈",
    response_rate: "反馈率", workorders: "无来电工单", received: "收到", accepted: "已受理",
    accept_due: "应受理", accepted_on_time: "按时受理", accept_rate: "按时受理率",
    due: "应答复", answered_on_time: "按时答复", returned: "退单", reassigned: "改派",
    extensions_requested: "申请延期", extensions_granted: "同意延期", reopened: "重办",
    closed: "办结", satisfaction: "回访满意度", satisfaction_rate: "满意率",
    satisfied: "满意", basically_satisfied: "基本满意", dissatisfied: "不满意",
    handover: "交接班：本班移交事项", shift: "本班", until: "至", keysSeen: "本班按键",
    ordersSeen: "本班收到工单", colKind: "事项类型", colId: "编号", colStatus: "状态",
    colAt: "时间", colDue: "期限", more: "另有 {n} 项未列出", open_workorders: "未办结工单",
    overdue_workorders: "超时工单", overdue_bridges: "反馈超时的转接",
    callbacks: "待回拨市民", push_needed: "待推送工单", assigned: "已交办",
    open: "待办"},
  en: {title: "110 ⇄ 12345 live", updated: "updated", bridge: "bridge", direction: "direction",
    mode: "mode", state: "state", citizen: "citizen", seat: "seat", target: "target",
    matter: "matter", since: "since", hour: "transfers per hour, today (at the key)",
    category: "by category, today", monthCategory: "by category, this month",
    answer: "seconds from the key to the answer, this month",
    rates: "answered in time and response rates, this month", today: "today",
    token: "API token", refused: "the token was refused ({s}): reload the page to enter it again",
    noToken: "no API token: reload the page to enter one",
    r15: "answered ≤15 s", r20: "answered ≤20 s", reply: "110 replied in time",
    orders: "work orders answered in time", refused_o: "refused",
    handover: "handover: what this shift hands over", shift: "this shift", until: "to",
    keysSeen: "keys pressed this shift", ordersSeen: "work orders received this shift",
    colKind: "kind", colId: "id", colStatus: "status", colAt: "since", colDue: "due",
    more: "{n} more not listed", open_workorders: "work orders open",
    overdue_workorders: "work orders overdue", overdue_bridges: "feedback overdue",
    callbacks: "citizens to call back", push_needed: "work orders to push"},
}[LANG];
const word = (k) => WORDS[k] ?? k;
// a figure's own name where the same word is also a state or an outcome
const FIGURE = LANG === "zh" ? {unknown: "结果不明", answered: "已接听"} : {};
const ORDER_FIGURE = LANG === "zh" ? {answered: "已答复", response_rate: "按时答复率"} : {};
const ORDER = ["day", "month", "year", "time_zone", "transfers", "ended", "live",
  "by_outcome", "by_direction", "by_category", "by_hour", "recovered", "unclassified", "unknown",
  "unknown_reasons", "dialled", "answered", "answer_p50_s", "answer_p90_s", "answer_bands",
  "answered_within_15s", "answered_within_20s", "queue_p50_s", "queue_within_15s",
  "queue_within_20s", "queue_standard", "reverse_due", "reverse_responded_on_time",
  "response_rate", "workorders"];
const ordered = (o) => Object.entries(o).sort(([a], [b]) =>
  (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
const NAMES = JSON.parse(document.getElementById("names").textContent);
const category = (id) => (NAMES[id] || {})[LANG] || word(id);
const HOURS = Array.from({length: 24}, (_, h) => String(h).padStart(2, "0"));
const BANDS = ["0-5", "5-10", "10-15", "15-20", "20-30", "30+"];
const SHARES = new Set(["answered_within_15s", "answered_within_20s", "queue_within_15s",
  "queue_within_20s", "response_rate", "accept_rate", "within_15s", "within_20s",
  "satisfaction_rate"]);
let zone = "Asia/Shanghai";
// A link may carry the token in its fragment (#token=…), which never reaches a server.
const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromLink) {
  sessionStorage.setItem("linkgw-token", fromLink);
  history.replaceState(null, "", location.pathname + location.search); }
// Asked once; a cancelled or empty answer is not kept (prompt() gives null for it).
function askToken() {
  const t = (prompt(word("token")) || "").trim();
  if (t) sessionStorage.setItem("linkgw-token", t);
  return t;
}
const token = sessionStorage.getItem("linkgw-token") || askToken();
const cell = (v) => {
  const td = document.createElement("td"); td.textContent = v ?? ""; return td; };
// an ISO time as the centre's wall clock: 2026-12-03 18:07:05
function local(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toLocaleString("sv-SE", {timeZone: zone, hour12: false});
}
// a figure as words: a share as a percentage, a breakdown as "name n; …", never JSON
function shown(key, v) {
  if (v === null || v === undefined) return "—";
  if (SHARES.has(key) && typeof v === "number") return (v * 100).toFixed(1) + "%";
  if (typeof v === "object") {
    let entries = Object.entries(v);
    if (key === "by_hour") entries = HOURS.map(h => [h, v[h] ?? 0]);
    if (key === "answer_bands") entries = BANDS.map(b => [b, v[b] ?? 0]);
    const named = (k) => key === "by_category" ? category(k)
      : key === "workorders" ? (ORDER_FIGURE[k] ?? word(k))
      : word(k === "refused" ? "refused_o" : k);
    return entries.map(([k, x]) => named(k) + " " + shown(k, x)).join("; ") || "—";
  }
  return String(v);
}
async function get(path) {
  const r = await fetch(path, {headers: {Authorization: "Bearer " + token}});
  if (r.status === 401 || r.status === 403) {
    sessionStorage.removeItem("linkgw-token");  // a wrong token is not kept either
    throw new Error(word("refused").replace("{s}", r.status));
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
// get max 1. A bar is as wide as its whole label; each carries label and value as data-*.
function bars(id, entries, opts = {}) {
  const longest = Math.max(2, ...entries.map(([l]) => [...String(l)].reduce(
    (n, c) => n + (c.charCodeAt(0) > 0x2e80 ? 2 : 1), 0)));
  const step = Math.max(26, longest * 6 + 8);
  const w = Math.max(240, entries.length * step), h = 160, top = 14, bottom = 30;
  const max = opts.max ?? Math.max(1, ...entries.map(([, v]) => v || 0));
  const svg = svgEl("svg", {width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img"});
  entries.forEach(([label, value], i) => {
    const v = value || 0, bh = (h - top - bottom) * v / max;
    const x = i * step + 3, y = h - bottom - bh;
    const rect = svgEl("rect", {x, y, width: Math.max(step - 6, 2), height: bh,
      class: opts.rate ? "rate" : "bar", "data-label": label, "data-value": v});
    rect.append(svgEl("title", {}, `${label}: ${opts.rate ? (v * 100).toFixed(1) + "%" : v}`));
    svg.append(rect);
    svg.append(svgEl("text", {x: x, y: h - bottom + 12, class: "label"}, String(label)));
    svg.append(svgEl("text", {x: x, y: Math.max(y - 2, 9), class: "value"},
                     opts.rate ? (value === null ? "–" : Math.round(v * 100) + "%") : v));
  });
  document.getElementById(id).replaceChildren(svg);
}
function charts(today, month) {
  bars("chart-hour", HOURS.map(h => [h, (today.by_hour || {})[h] ?? 0]));
  bars("chart-category", Object.entries(today.by_category || {}).map(([k, v]) => [category(k), v]));
  bars("chart-month-category",
       Object.entries(month.by_category || {}).map(([k, v]) => [category(k), v]));
  bars("chart-answer", BANDS.map(b => [b, (month.answer_bands || {})[b] ?? 0]));
  bars("chart-rates", [
    [word("r15"), month.answered_within_15s], [word("r20"), month.answered_within_20s],
    [word("reply"), month.response_rate],
    [word("orders"), (month.workorders || {}).response_rate]], {max: 1, rate: true});
}
// The handover: each list the shift hands over, its first rows and how many there are.
const HANDOVER = ["overdue_workorders", "open_workorders", "overdue_bridges", "callbacks",
  "push_needed"];
const SHOWN_ROWS = 20;
function handover(h) {
  const seen = h.this_shift || {};
  document.getElementById("shift").textContent = `${word("shift")} ${local(h.shift.from)} ` +
    `${word("until")} ${h.shift.until}（${h.shift.time_zone}）: ${word("keysSeen")} ` +
    `${seen.keys ?? 0}, ${word("ordersSeen")} ${seen.workorders_received ?? 0}`;
  const rows = [];
  for (const list of HANDOVER) {
    const items = h[list] || [], total = (h.totals || {})[list] ?? items.length;
    for (const r of items.slice(0, SHOWN_ROWS)) {
      const tr = document.createElement("tr"); tr.dataset.list = list;
      const matter = r.item_name || (r.category ? category(r.category) : "") || r.number;
      [word(list), r.ticket || r.bridge_id, matter, word(r.status || r.state || ""),
       local(r.received_at || r.requested_at || r.at),
       local(r.due_at || r.accept_due_at || r.feedback_due_at || r.response_due_at)]
        .forEach(v => tr.append(cell(v)));
      rows.push(tr);
    }
    if (total > Math.min(items.length, SHOWN_ROWS)) {
      const tr = document.createElement("tr"); tr.dataset.list = list;
      tr.append(cell(word(list)), cell(word("more").replace("{n}",
        total - Math.min(items.length, SHOWN_ROWS))));
      rows.push(tr);
    }
  }
  document.getElementById("handover").replaceChildren(...rows);
}
let ticks = 0;
async function refresh() {
  try {
    const live = await get("live"), stats = await get("stats");
    zone = stats.time_zone || zone;
    const month = await get("stats?month=" + encodeURIComponent(String(stats.day).slice(0, 7)));
    charts(stats, month);
    const rows = live.bridges.map(b => {
      const tr = document.createElement("tr"); tr.className = b.state;
      tr.dataset.state = b.state;
      const matter = b.item_name || (b.category ? category(b.category) : "");
      [b.bridge_id, b.direction, word(b.mode), word(b.state), b.citizen_number, b.seat,
       b.agent_target || b.target, matter, local(b.requested_at)]
        .forEach(v => tr.append(cell(v)));
      return tr; });
    document.getElementById("live").replaceChildren(...rows);
    const srows = ordered(stats).map(([k, v]) => {
      const tr = document.createElement("tr");
      tr.append(cell(FIGURE[k] ?? word(k)), cell(shown(k, v))); return tr; });
    document.getElementById("stats").replaceChildren(...srows);
    if (ticks++ % 5 === 0) handover(await get("handover"));  // every 10 s: lists cost more
    document.getElementById("when").textContent =
      word("updated") + " " + new Date().toLocaleTimeString("sv-SE", {timeZone: zone});
    document.getElementById("err").textContent = "";
  } catch (e) { document.getElementById("err").textContent = e.message; }
}
for (const el of document.querySelectorAll("[data-word]")) el.textContent = word(el.dataset.word);
document.title = word("title");
document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
if (token) { refresh(); setInterval(refresh, 2000); }
else document.getElementById("err").textContent = word("noToken");
"""


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CSP = (f"default-src 'none'; script-src '{_sha256(SCRIPT)}'; style-src '{_sha256(STYLE)}'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

def render_page(names: Mapping[str, Mapping[str, str]]) -> str:
    """The page, with the category names (``{id: {"zh": …, "en": …}}``) as a data block;
    ``<`` is escaped in it, so that no name can end the block."""
    data = json.dumps(names, ensure_ascii=False).replace("<", "\\u003c")
    return PAGE.replace("@NAMES@", data)


PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>110 ⇄ 12345</title>
<style>""" + STYLE + """</style></head><body>
<h1><span data-word="title"></span> <small id="when"></small></h1>
<div id="err"></div>
<table><thead><tr><th data-word="bridge"></th><th data-word="direction"></th>
<th data-word="mode"></th><th data-word="state"></th><th data-word="citizen"></th>
<th data-word="seat"></th><th data-word="target"></th><th data-word="matter"></th>
<th data-word="since"></th></tr></thead>
<tbody id="live"></tbody></table>
<div class="charts">
<figure><figcaption data-word="hour"></figcaption><div id="chart-hour"></div></figure>
<figure><figcaption data-word="category"></figcaption><div id="chart-category"></div></figure>
<figure><figcaption data-word="monthCategory"></figcaption>
<div id="chart-month-category"></div></figure>
<figure><figcaption data-word="answer"></figcaption><div id="chart-answer"></div></figure>
<figure><figcaption data-word="rates"></figcaption><div id="chart-rates"></div></figure>
</div>
<h2 data-word="today"></h2><table><tbody id="stats"></tbody></table>
<h2 data-word="handover"></h2><p id="shift"></p>
<table><thead><tr><th data-word="colKind"></th><th data-word="colId"></th>
<th data-word="matter"></th><th data-word="colStatus"></th><th data-word="colAt"></th>
<th data-word="colDue"></th></tr>
</thead><tbody id="handover"></tbody></table>
<script type="application/json" id="names">@NAMES@</script>
<script>""" + SCRIPT + """</script></body></html>
"""
