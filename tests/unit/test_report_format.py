"""The report as people open it, against golden files: the text in Chinese and in
English, the CSV (a byte order mark, CRLF, formulas defused) and the workbook's cells.
A changed label shows here as a changed golden file (regenerate with
``LINKGW_GOLDEN=write``, then read the diff)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from gateway.records.report_format import report_csv, report_text, report_xlsx

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

REPORT: dict[str, Any] = {
    "figures": {
        "month": "2026-11", "time_zone": "Asia/Shanghai", "transfers": 4, "ended": 4,
        "live": 0, "by_outcome": {"refused": 2, "kept_by_first_line": 1, "handed_off": 1},
        "by_direction": {"110->12345": {"refused": 2, "kept_by_first_line": 1, "handed_off": 1}},
        "recovered": 0, "unknown": 0, "unknown_reasons": {},
        "by_category": {"vehicle": 2, "noise": 2},
        "by_hour": {f"{h:02d}": (2 if h == 10 else 0) for h in range(24)},
        "answer_bands": {"0-5": 1, "5-10": 0, "10-15": 0, "15-20": 0, "20-30": 0, "30+": 0},
        "dialled": 2, "answered": 1, "answer_p50_s": 3.2, "answer_p90_s": 3.2,
        "answered_within_15s": 0.5, "answered_within_20s": 0.5, "queue_p50_s": 0.8,
        "queue_within_15s": 1.0, "queue_within_20s": 1.0,
        "queue_standard": {"within_15s": 0.9, "within_20s": 0.95},
        "reverse_due": 0, "reverse_responded_on_time": 0, "response_rate": None,
        "workorders": {"received": 3, "accepted": 2, "answered": 1, "accept_due": 3,
                       "accepted_on_time": 2, "accept_rate": 0.6667, "due": 1,
                       "answered_on_time": 1, "response_rate": 1.0},
    },
    "items": [
        {"item": "vehicle.fire_lane", "item_name": "占用消防通道", "category": "vehicle",
         "code": "104", "transfers": 2, "refused": 2,
         "refusal_reasons": {"never_transfer": 2}, "declined": 0, "not_reached": 0},
        {"item": "noise.night", "item_name": "=HYPERLINK(\"x\")\u2028夜间", "category": "noise",
         "code": "201", "transfers": 2, "refused": 0, "refusal_reasons": {}, "declined": 1,
         "not_reached": 0},
    ],
}


def golden(name: str, made: bytes) -> bytes:
    path = GOLDEN / name
    if os.environ.get("LINKGW_GOLDEN") == "write":
        path.write_bytes(made)
    return path.read_bytes()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_text_report(lang: str) -> None:
    made = (report_text(REPORT, lang) + "\n").encode("utf-8")
    assert made == golden(f"report.{lang}.txt", made)


def test_the_chinese_report_says_what_a_supervisor_reads() -> None:
    text = report_text(REPORT, "zh")
    assert "转接总数" in text and "按结果" in text and "已移交 1" in text
    assert "15秒内接听率" in text and "50.0%" in text and "反馈率" in text
    assert "\u2028" not in text and "{" not in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_csv_opens_in_excel(lang: str) -> None:
    made = report_csv(REPORT["items"], lang).encode("utf-8")
    assert made.startswith(b"\xef\xbb\xbf") and b"\r\n" in made
    assert b"\"'=HYPERLINK" in made  # a formula is defused
    assert made == golden(f"report.{lang}.csv", made)


def test_the_workbook_holds_the_figures_and_the_items() -> None:
    book = load_workbook(io.BytesIO(report_xlsx(REPORT, "zh")))
    cells = {sheet.title: [[c for c in row] for row in sheet.iter_rows(values_only=True)]
             for sheet in book.worksheets}
    made = (json.dumps(cells, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    assert list(cells) == ["汇总", "按事项"]
    assert made == golden("report.zh.xlsx.json", made)
