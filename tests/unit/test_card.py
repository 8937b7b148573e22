"""The seat's item card: the golden page from the shipped categories, every text
escaped, and printed by Chromium onto exactly one A4 page."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from gateway.catalogue import Catalogue, Category, Item, load_categories
from gateway.transfer.card import print_pdf, render_card

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests/golden/card.html"


def test_the_card_is_the_golden_page() -> None:
    made = render_card(load_categories(REPO / "config/categories.yaml"), "*1")
    if os.environ.get("LINKGW_GOLDEN") == "write":
        GOLDEN.write_text(made, encoding="utf-8")
    assert made == GOLDEN.read_text(encoding="utf-8")
    # 50 items 110 may hand over, and beside them the 7 police matters 110 keeps
    assert made.count("<section") == 9 and made.count('<tr class="item">') == 50
    assert made.count('<tr class="never">') == 7 and made.count('<td class="code">') == 57
    assert "以下情形仍由110处置" in made and "*1101" in made


def test_a_police_matter_near_no_category_has_a_section_of_its_own() -> None:
    item = Item("x.y", "101", "甲", "y", "x")
    catalogue = Catalogue((Category("x", "1", "类", "x", (), (item,)),),
                          (Item("p.z", "002", "乙", "z", "police", True),))
    made = render_card(catalogue)
    assert made.count("<section") == 2 and '<section data-category="police">' in made
    assert '<tr class="never"><td class="code">002</td><td class="name">乙</td></tr>' in made


def test_every_text_is_escaped() -> None:
    hostile = Catalogue((Category("x", "1", "<script>x()</script>", "x",
                                  ("a & b\u2028 (en)",),
                                  (Item("x.y", "101", '"><img src=x>', "y", "x"),)),))
    made = render_card(hostile, "*1<b>")
    assert "<script>x()" not in made and "<img" not in made and "*1<b>" not in made
    assert "&lt;script&gt;" in made and "a &amp; b" in made


def test_chromium_prints_it_on_one_a4_page(tmp_path: Path) -> None:
    assert shutil.which("chromium"), "make setup installs Debian's chromium"
    html, pdf = tmp_path / "card.html", tmp_path / "card.pdf"
    html.write_text(render_card(load_categories(REPO / "config/categories.yaml")), "utf-8")
    assert print_pdf(html, pdf) == ""
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", data)) == 1
