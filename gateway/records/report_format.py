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
from typing import Any

from openpyxl import Workbook

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
    "kept_by_110": "110保留", "abandoned": "市民挂断", "failed": "失败",
    "refused": "拒绝转接", "unknown": "不明",
    "emergency": "紧急警情", "never_transfer": "不可转接事项", "unknown_code": "代码无效",
    "code_required": "未输入事项代码",
    "already": "已在转接中", "ami_down": "系统故障",
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
    lines += ["", "按事项（拒绝或未接收最多者在前）" if lang == "zh" else
              "by item (most refused or declined first)"]
    table = [[printable(c) for c in row] for row in item_table(report["items"], lang)]
    columns = [max(width(row[i]) for row in table) + 2 for i in range(len(table[0]))]
    lines += ["".join(_pad(c, w) for c, w in zip(row, columns, strict=True)).rstrip()
              for row in table]
    if len(table) == 1:
        lines.append("（无）" if lang == "zh" else "(none)")
    return "\n".join(lines)


def _safe(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (= + - @ first) gets a leading '."""
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
    items = book.create_sheet("按事项" if lang == "zh" else "items")
    for row in item_table(report["items"], lang):
        items.append([_safe(c) for c in row])
    for column in "ABCDEFGHI":
        items.column_dimensions[column].width = 16
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
