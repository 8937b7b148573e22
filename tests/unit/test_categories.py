"""Category lists: the shipped list loads; every mistake names its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.catalogue import (
    Category,
    CategoryError,
    Item,
    load_categories,
    parse_categories,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_list_has_9_categories_and_about_50_items() -> None:
    catalogue = load_categories(REPO / "config/categories.yaml")
    assert len(catalogue.categories) == 9
    assert len(catalogue.items) == 50
    never = {i.id for i in catalogue.items if i.never_transfer}
    assert {"vehicle.fire_lane", "utilities.gas_leak",
            "civil_disputes.domestic_violence"} <= never
    assert all(c.stays_with_110_if for c in catalogue.categories)
    assert all(i.name_zh and i.name_en for i in catalogue.items)


def test_lookup_by_item_and_category_code() -> None:
    catalogue = load_categories(REPO / "config/categories.yaml")
    item = catalogue.lookup("302")
    assert isinstance(item, Item) and item.id == "utilities.burst_pipe"
    assert item.category == "utilities" and item.name_en == "Burst water pipe"
    category = catalogue.lookup("8")
    assert isinstance(category, Category) and category.id == "labour"
    assert catalogue.lookup("999") is None


GOOD = """categories:
  - id: a
    code: "1"
    name_zh: 甲
    name_en: A
    items:
      - {id: a.x, code: "101", name_zh: 乙, name_en: X}
"""


@pytest.mark.parametrize("text,line,message", [
    (GOOD + "      - {id: a.x, code: \"102\", name_zh: 丙, name_en: Y}\n", 8,
     "duplicate id 'a.x' (first at line 7)"),
    (GOOD + "      - {id: a.y, code: \"101\", name_zh: 丙, name_en: Y}\n", 8,
     "duplicate code '101'"),
    (GOOD + "      - {id: a.y, code: \"201\", name_zh: 丙, name_en: Y}\n", 8,
     "does not start with its category's code 1"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: 丙, name_en: Y, see_also: [b.z]}\n", 8,
     "see_also names unknown id 'b.z'"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: 丙, name_en: Y, transfer: maybe}\n", 8,
     "transfer must be yes or never"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: 丙, name_en: Y, colour: red}\n", 8,
     "unknown key 'colour'"),
    (GOOD + "      - {id: a.y, code: \"102\", name_en: Y}\n", 8, "missing name_zh"),
    (GOOD.replace("    code: \"1\"\n", ""), 2, "missing code"),
    ("categories: [\n", 2, "not valid YAML"),
    ("", 1, "empty file"),
    ("cats: []\n", 1, "expected a list under `categories:`"),
    # names the card, the page and the reports show: nothing that cannot be shown
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: \"\\ud800\", name_en: Y}\n", 8,
     "name_zh holds U+D800"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: \"挪\\u2028车\", name_en: Y}\n", 8,
     "name_zh holds U+2028"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: 丙, name_en: \"\\e]0;x\\a\"}\n", 8,
     "name_en holds U+001B"),
    (GOOD + "      - {id: a.y, code: \"102\", name_zh: 丙, name_en: Y, see_also: [\"\\u202e\"]}\n",
     8, "see_also holds U+202E"),
])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CategoryError) as info:
        parse_categories(text, "cities.yaml")
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"cities.yaml:{line}: ")
    assert message in str(info.value)


def test_good_minimal_list() -> None:
    catalogue = parse_categories(GOOD)
    assert [i.id for i in catalogue.items] == ["a.x"]


def test_a_list_that_is_not_utf8_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "categories.yaml"
    path.write_bytes("categories:\n  - id: 挪车\n    name_zh: \xff\n".encode()
                     .replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(CategoryError) as caught:
        load_categories(path)
    assert str(caught.value) == f"{path}:3: not UTF-8 (byte 40: b'\\xff')"
