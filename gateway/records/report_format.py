"""The month's and year's report as people open it: Chinese labels by default (English
with ``--lang en``), a CSV that Excel on a Chinese Windows desktop reads (UTF-8 with a
byte order mark, CRLF), and an ``.xlsx`` workbook (openpyxl) for the report to the city
government. Pure: a report in (:meth:`gateway.records.queries.Records.report`), text or
bytes out."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from gateway.records.queries import REPORT_COLUMNS
from gateway.records.shown import printable

LANGS = ("zh", "en")
BOM = "\ufeff"

FIGURES_ZH = {
    "day": "日期", "month": "月份", "year": "年份", "time_zone": "时区",
    "transfers": "转接总数", "ended": "已结束", "live": "进行中",
    "by_outcome": "按结果", "by_direction": "按方向", "recovered": "接管恢复",
    "unclassified": "未输入事项代码", "unknown": "结果不明", "unknown_reasons": "结果不明的原因",
    "by_category": "按类别",
    "by_hour": "按小时（按键时刻）", "answer_bands": "接听用时分布（秒）",
    "dialled": "已拨打", "answered": "已接听",
    "answer_p50_s": "接听用时中位数（秒）", "answer_p90_s": "接听用时90分位（秒）",
    "answered_within_15s": "15秒内接听率", "answered_within_20s": "20秒内接听率",
    "queue_p50_s": "排队用时中位数（秒）", "queue_within_15s": "15秒内排队接听率",
    "queue_within_20s": "20秒内排队接听率", "queue_standard": "接听标准",
    "reverse_due": "12345转110应反馈", "reverse_responded_on_time": "按时反馈",
    "response_rate": "反馈率", "workorders": "无来电工单",
}
COLUMNS_ZH = {
    "item": "事项", "item_name": "事项名称", "category": "类别", "code": "代码",
    "transfers": "转接次数", "refused": "拒绝转接", "refusal_reasons": "拒绝原因",
    "declined": "对方未接收", "not_reached": "未接通",
}
#: values that are names: outcomes, refusals, directions, answer standards
VALUES_ZH = {
    "handed_off": "已移交", "three_party_ended": "三方通话中结束",
    "kept_by_first_line": "本线保留", "abandoned": "市民挂断", "failed": "失败",
    "refused": "拒绝转接", "unknown": "不明",
    "emergency": "紧急警情", "never_transfer": "不可转接事项", "unknown_code": "代码无效",
    "code_required": "未输入事项代码",
    "already": "已在转接中", "ami_down": "系统故障", "unknown_line": "线路未配置",
    "within_15s": "15秒内", "within_20s": "20秒内", "unspecified": "未分类",
    # inside the work orders' figures
    "received": "收到", "accepted": "已受理", "answered": "已答复",
    "accept_due": "应受理", "accepted_on_time": "按时受理", "accept_rate": "按时受理率",
    "due": "应答复", "answered_on_time": "按时答复", "response_rate": "按时答复率",
    "returned": "退单", "reassigned": "改派", "extensions_requested": "申请延期",
    "extensions_granted": "同意延期", "reopened": "重办", "closed": "办结",
    "satisfaction": "回访满意度", "satisfaction_rate": "满意率", "satisfied": "满意",
    "basically_satisfied": "基本满意", "dissatisfied": "不满意",
}


def _label(key: str, table: Mapping[str, str], lang: str) -> str:
    return table.get(key, key) if lang == "zh" else key


#: the figures that are shares (0 to 1), shown as percentages
SHARES = frozenset({"answered_within_15s", "answered_within_20s", "queue_within_15s",
                    "queue_within_20s", "response_rate", "accept_rate", "within_15s",
                    "within_20s", "satisfaction_rate"})


def _value(value: Any, lang: str, key: str = "") -> str:
    """A figure as one cell: a share as a percentage, a breakdown as ``name n; …``,
    nothing to count as a dash."""
    if value is None:
        return "—"
    if key in SHARES and isinstance(value, int | float):
        return f"{value * 100:.1f}%"
    if isinstance(value, Mapping):
        return "; ".join(f"{_label(str(k), VALUES_ZH, lang)} {_value(v, lang, str(k))}"
                         for k, v in value.items()) or "—"
    return str(value)


def width(text: str) -> int:
    """Columns a terminal gives ``text``: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * max(columns - width(text), 0)


def figure_rows(figures: Mapping[str, Any], lang: str) -> list[tuple[str, str]]:
    return [(_label(k, FIGURES_ZH, lang), _value(v, lang, k)) for k, v in figures.items()]


def item_table(items: list[Mapping[str, Any]], lang: str) -> list[list[str]]:
    """The header, then one row per item (most disputed first)."""
    rows = [[_label(c, COLUMNS_ZH, lang) for c in REPORT_COLUMNS]]
    for item in items:
        rows.append([_value(item[c], lang) if c == "refusal_reasons" else str(item[c])
                     for c in REPORT_COLUMNS])
    return rows


def report_text(report: Mapping[str, Any], lang: str) -> str:
    figures = [(printable(k), printable(v)) for k, v in figure_rows(report["figures"], lang)]
    label = max(width(k) for k, _ in figures) + 2
    lines = [_pad(k, label) + v for k, v in figures]
    if "diverted" in report:
        rows = [(printable(k), printable(v)) for k, v in diverted_rows(report, lang)]
        lines += ["", _title("diverted", lang)] + [_pad(k, label) + v for k, v in rows]
    if "by_unit" in report:
        lines += ["", _title("by_unit", lang), *_table_lines(unit_table(report, lang), lang)]
    if "joint_meeting" in report:
        lines += ["", _title("joint_meeting", lang),
                  *_table_lines(meeting_table(report, lang), lang)]
    lines += ["", "按事项（拒绝或未接收最多者在前）" if lang == "zh" else
              "by item (most refused or declined first)"]
    lines += _table_lines(item_table(report["items"], lang), lang)
    return "\n".join(lines)


#: The report to the city: its three sections (title, then the keys or columns).
DIVERTED_ZH = {
    "keys": "按键次数", "attempted": "转接尝试", "handed_off": "已移交", "refused": "拒绝转接",
    "abandoned": "市民挂断", "declined": "12345未接收", "not_reached": "未接通",
    "calls_110": "110登记来电", "non_police_share": "非警务来电占比",
}
UNIT_COLUMNS = ("unit", "assigned", "answered", "answered_on_time", "response_rate")
UNIT_ZH = {"unit": "承办单位", "assigned": "交办", "answered": "已答复",
           "answered_on_time": "按时答复", "response_rate": "按时答复率"}
MEETING_COLUMNS = ("requested_at", "bridge_id", "item", "item_name", "reason")
MEETING_ZH = {"requested_at": "时间", "bridge_id": "转接编号", "item": "事项",
              "item_name": "事项名称", "reason": "未接收原因"}
TITLES = {"diverted": ("110转12345（非警务来电分流）", "110 -> 12345 (non-police calls diverted)"),
          "by_unit": ("按承办单位（无来电工单）", "by handling unit (work orders)"),
          "joint_meeting": ("提交联席会议（12345未接收及原因）",
                            "for the joint meeting (declined by 12345, and why)")}


def _local(iso_time: str, zone: str) -> str:
    """An ISO time as the centre's wall clock, ``YYYY-MM-DD HH:MM``."""
    if not iso_time:
        return ""
    try:
        moment = datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
        return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    except (ValueError, KeyError):
        return iso_time


def _title(section: str, lang: str) -> str:
    return TITLES[section][0 if lang == "zh" else 1]


def diverted_rows(report: Mapping[str, Any], lang: str) -> list[tuple[str, str]]:
    shown = report.get("diverted", {})
    return [(_label(k, DIVERTED_ZH, lang),
             f"{v * 100:.1f}%" if k == "non_police_share" and v is not None else
             _value(v, lang)) for k, v in shown.items()]


def unit_table(report: Mapping[str, Any], lang: str) -> list[list[str]]:
    rows = [[_label(c, UNIT_ZH, lang) for c in UNIT_COLUMNS]]
    rows += [[_value(u[c], lang, c) for c in UNIT_COLUMNS] for u in report.get("by_unit", [])]
    return rows


def meeting_table(report: Mapping[str, Any], lang: str) -> list[list[str]]:
    zone = report.get("figures", {}).get("time_zone", "UTC")
    rows = [[_label(c, MEETING_ZH, lang) for c in MEETING_COLUMNS]]
    none = "（未说明原因）" if lang == "zh" else "(no reason given)"
    rows += [[_local(m[c], zone) if c == "requested_at" else str(m[c]) or
              (none if c == "reason" else "")
              for c in MEETING_COLUMNS] for m in report.get("joint_meeting", [])]
    return rows


def _table_lines(table: list[list[str]], lang: str) -> list[str]:
    shown = [[printable(c) for c in row] for row in table]
    columns = [max(width(row[i]) for row in shown) + 2 for i in range(len(shown[0]))]
    lines = ["".join(_pad(c, w) for c, w in zip(row, columns, strict=True)).rstrip()
             for row in shown]
    if len(shown) == 1:
        lines.append("（无）" if lang == "zh" else "(none)")
    return lines


def _safe(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (= + - @ first) gets a leading ';
    a control character no workbook may hold is written as its escape (\\x1b)."""
    cell = ILLEGAL_CHARACTERS_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", cell)
    return "'" + cell if cell[:1] in ("=", "+", "-", "@") else cell


def report_csv(items: list[Mapping[str, Any]], lang: str) -> str:
    """The items as CSV: a byte order mark first (Excel then reads UTF-8), CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in item_table(items, lang):
        writer.writerow([_safe(c) for c in row])
    return BOM + out.getvalue()


def report_xlsx(report: Mapping[str, Any], lang: str) -> bytes:
    """Two sheets: the figures and the items."""
    book = Workbook()
    figures = book.active
    assert figures is not None
    figures.title = "汇总" if lang == "zh" else "figures"
    for label, value in figure_rows(report["figures"], lang):
        figures.append([label, _safe(value)])
    figures.column_dimensions["A"].width = 28
    figures.column_dimensions["B"].width = 60
    if "diverted" in report:
        sheet = book.create_sheet("分流" if lang == "zh" else "diverted")
        for label, value in diverted_rows(report, lang):
            sheet.append([label, _safe(value)])
    for name, table, title in (("by_unit", unit_table, ("按承办单位", "units")),
                               ("joint_meeting", meeting_table, ("联席会议", "joint meeting"))):
        if name in report:
            sheet = book.create_sheet(title[0] if lang == "zh" else title[1])
            for row in table(report, lang):
                sheet.append([_safe(c) for c in row])
    items = book.create_sheet("按事项" if lang == "zh" else "items")
    for row in item_table(report["items"], lang):
        items.append([_safe(c) for c in row])
    for column in "ABCDEFGHI":
        items.column_dimensions[column].width = 16
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
