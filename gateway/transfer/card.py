"""The seat's item card: one printable page (A4) of the categories and items a 110
call-taker may hand to 12345, each with the code typed after the one key, the items
that stay with 110 whatever is typed, and when a matter of the category stays with
110. In Chinese, from ``config/categories.yaml`` (pure: a catalogue in, HTML out;
``linkgw items --card``). Every text is escaped."""

from __future__ import annotations

import shutil
import subprocess
from html import escape
from pathlib import Path

from gateway.catalogue import POLICE, Catalogue, Category, Item

STYLE = """
@page{size:A4;margin:10mm}
body{font:9.5pt/1.3 "Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei","PingFang SC",
 sans-serif;color:#111;margin:0}
h1{font-size:13pt;margin:0 0 1mm} p.how{margin:0 0 2mm;font-size:9pt}
.grid{columns:2;column-gap:6mm}
section{break-inside:avoid;border:1px solid #999;border-radius:2mm;padding:1.5mm 2.5mm;
 margin:0 0 2mm}
h2{font-size:10.5pt;margin:0 0 .5mm} h2 .code{font-family:monospace;font-size:11pt}
table{border-collapse:collapse;width:100%} td{padding:.1mm 1mm;vertical-align:top}
td.code{font-family:monospace;font-weight:700;width:11mm}
tr.never td{color:#a00} tr.never td.name::after{content:" （不转，110处置）"}
div.stay{font-size:8.5pt;margin-top:.5mm} ul{margin:0 0 0 4mm;padding:0;color:#333}
"""


def _conditions(category: Category) -> str:
    if not category.stays_with_110_if:
        return ""
    items = "".join(f"<li>{escape(c.split(' (')[0])}</li>" for c in category.stays_with_110_if)
    return f'<div class="stay">以下情形仍由110处置：<ul>{items}</ul></div>'


def _rows(items: list[Item]) -> str:
    """Items in code order; the police matters among them in red."""
    return "".join(
        f'<tr class="{"never" if item.never_transfer else "item"}">'
        f'<td class="code">{escape(item.code)}</td>'
        f'<td class="name">{escape(item.name_zh)}</td></tr>'
        for item in sorted(items, key=lambda i: i.code))


def _section(category: Category, police: list[Item]) -> str:
    return (f'<section data-category="{escape(category.id)}">'
            f'<h2><span class="code">{escape(category.code)}</span> '
            f"{escape(category.name_zh)}</h2><table>{_rows([*category.items, *police])}</table>"
            f"{_conditions(category)}</section>")


def _other_police(police: list[Item]) -> str:
    """Police matters near no category, in a section of their own."""
    if not police:
        return ""
    return (f'<section data-category="{POLICE}"><h2>其他警情（110处置）</h2>'
            f"<table>{_rows(police)}</table></section>")


def render_card(catalogue: Catalogue, one_key: str = "*1", code_digits: int = 3) -> str:
    """The card as one HTML page."""
    digits = {1: "一", 2: "两", 3: "三", 4: "四"}.get(code_digits, str(code_digits))
    sections = "".join(_section(c, catalogue.police_near(c.id)) for c in catalogue.categories) \
        + _other_police(catalogue.police_near(POLICE))
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>一键转接12345 事项代码卡</title><style>{STYLE}</style></head><body>"
        "<h1>一键转接12345 事项代码卡</h1>"
        f'<p class="how">按 <b>{escape(one_key)}</b> 后输入{digits}位事项代码（如 '
        f"<b>{escape(one_key)}101</b>）；只输类别代码一位亦可；红色事项不转接，由110处置。"
        "</p>"
        f'<div class="grid">{sections}</div></body></html>\n')


def print_pdf(html: Path, pdf: Path) -> str:
    """Print the card to PDF with a headless Chromium; "" when done, else why not."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome"))), None)
    if browser is None:
        return "no Chromium installed (apt-get install chromium); the HTML prints too"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}",
                           html.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not pdf.exists():
        return f"Chromium failed: {done.stderr.strip()[-300:]}"
    return ""
