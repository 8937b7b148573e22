"""Category lists: the shipped list loads; every mistake names its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalogue import (
    Category,
    CategoryError,
    Item,
    check_targets,
    load_categories,
    parse_categories,
)
from gateway.config import Line, TransferConfig
from gateway.transfer.decide import classify

REPO = Path(__file__).resolve().parents[2]


def test_shipped_list_has_9_categories_50_divertible_items_and_the_police_matters() -> None:
    catalogue = load_categories(REPO / "config/categories.yaml")
    assert len(catalogue.categories) == 9
    assert len(catalogue.items) == 50 and not any(i.never_transfer for i in catalogue.items)
    police = {m.id: m.category for m in catalogue.police}
    assert len(police) == 7 and all(m.never_transfer for m in catalogue.police)
    assert {"vehicle.fire_lane": "vehicle", "utilities.gas_leak": "utilities",
            "civil_disputes.domestic_violence": "civil_disputes"}.items() <= police.items()
    assert all(c.stays_with_110_if for c in catalogue.categories)
    assert all(i.name_zh and i.name_en for i in [*catalogue.items, *catalogue.police])


def test_lookup_by_item_and_category_code() -> None:
    catalogue = load_categories(REPO / "config/categories.yaml")
    item = catalogue.lookup("302")
    assert isinstance(item, Item) and item.id == "utilities.burst_pipe"
    assert item.category == "utilities" and item.name_en == "Burst water pipe"
    matter = catalogue.lookup("104")  # a police matter: its code is typed like an item's
    assert isinstance(matter, Item) and matter.never_transfer and matter.category == "vehicle"
    assert catalogue.police_matter("vehicle.fire_lane") == matter
    assert catalogue.police_near("vehicle") == [matter]
    category = catalogue.lookup("8")
    assert isinstance(category, Category) and category.id == "labour"
    assert catalogue.lookup("999") is None


POLICE = """police_matters:
  - {id: a.p, near: a, code: "102", name_zh: 警, name_en: P}
"""
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
    # police matters: a list of their own, checked as the items are
    (GOOD + "police_matters: {}\n", 8, "expected a list under `police_matters:`"),
    (GOOD + POLICE.replace("a.p", "a.x"), 9, "duplicate id 'a.x' (first at line 7)"),
    (GOOD + POLICE.replace('"102"', '"101"'), 9, "duplicate code '101' (first at line 7)"),
    (GOOD + POLICE.replace("near: a", "near: b"), 9, "near names unknown category 'b'"),
    (GOOD + POLICE.replace('"102"', '"202"'), 9, "police matter code 202 does not start "
     "with the code 1 of a"),
    (GOOD + POLICE.replace("near: a", "transfer: never"), 9, "unknown key 'transfer'"),
    (GOOD + POLICE.replace("name_zh: 警", "name_zh: \"警\\u0085\""), 9, "name_zh holds U+0085"),
    (GOOD + POLICE.replace("}", ", see_also: [a.q]}"), 9, "see_also names unknown id 'a.q'"),
    # what YAML would take silently: a misspelt list, a key twice, a key that is no text
    (GOOD + POLICE.replace("police_matters:", "police_matter:"), 8,
     "unknown key 'police_matter' (expected `categories:` and `police_matters:`)"),
    (GOOD + POLICE + POLICE, 10, "duplicate key 'police_matters' in the file (first at line 8)"),
    (GOOD + POLICE.replace("near: a, ", "near: a, near: b, "), 9, "duplicate key 'near'"),
    (GOOD + "    ? [x]\n    : y\n", 8, "a key of a category must be a text"),
    (GOOD.replace("    items:\n      - {id: a.x, code: \"101\", name_zh: 乙, name_en: X}\n",
                  "    items: foo\n"), 6, "items must be a list"),
    (GOOD.replace('code: "101"', 'code: "1O1"'), 7, "code '1O1' must be 1 to 4 digits"),
    (GOOD.replace('code: "101"', 'code: "１０１"'), 7, "must be 1 to 4 digits"),
    (GOOD + POLICE.replace('"102"', '"9a"'), 9, "code '9a' must be 1 to 4 digits"),
    (GOOD.replace("  - id: a\n", "  - id: police\n").replace("a.x", "police.x"), 2,
     "the id 'police' is reserved"),
])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(CategoryError) as info:
        parse_categories(text, "cities.yaml")
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"cities.yaml:{line}: ")
    assert message in str(info.value)


def test_a_police_matter_near_no_category_and_an_earlier_releases_never_item() -> None:
    catalogue = parse_categories(GOOD + POLICE.replace("near: a, ", "").replace('"102"', '"007"')
                                 + "  - {id: a.q, near: a, code: \"109\", name_zh: 丁, "
                                   "name_en: Q, see_also: [a.x]}\n")
    assert [(m.id, m.category) for m in catalogue.police] == [("a.p", "police"), ("a.q", "a")]
    assert catalogue.lookup("007") == catalogue.police_matter("a.p")
    # `transfer: never` as files of earlier releases have it: read as a police matter
    old = parse_categories(GOOD + "      - {id: a.n, code: \"103\", name_zh: 丙, name_en: N, "
                                  "transfer: never}\n")
    assert [i.id for i in old.items] == ["a.x"]
    assert [(m.id, m.category, m.never_transfer) for m in old.police] == [("a.n", "a", True)]
    assert old.lookup("103") == old.police[0]


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


SHIPPED = (REPO / "config/categories.yaml").read_text(encoding="utf-8")


@settings(max_examples=120, deadline=None)
@given(st.integers(0, len(SHIPPED)), st.text(max_size=40))
def test_a_torn_or_spliced_list_is_refused_with_its_line_or_loads(cut: int, junk: str) -> None:
    """A file torn at any character, with anything (U+2028, U+0085, CR LF…) spliced in,
    either loads or is refused as a CategoryError naming a line: never another error."""
    for text in (SHIPPED[:cut], SHIPPED[:cut] + junk + SHIPPED[cut:]):
        try:
            catalogue = parse_categories(text, "torn.yaml")
        except CategoryError as exc:
            assert str(exc).startswith(f"torn.yaml:{exc.line}: ") and exc.line >= 1
        else:
            assert {i.code for i in catalogue.items}.isdisjoint(m.code for m in catalogue.police)


def test_identity_documents_go_to_the_liaison_seat_when_one_is_configured() -> None:
    """`target: liaison`: the classification carries the liaison seat's dial string, for
    a key on 110's side only, and only where transfer.liaison is set."""
    catalogue = load_categories(REPO / "config/categories.yaml")
    assert sorted(i.id for i in catalogue.items if i.target == "liaison") == [
        "consumer_and_government.certificates", "daily_help.lost_id_card"]
    with_seat = TransferConfig(liaison="PJSIP/liaison")
    fields, refused = classify("206", catalogue, "110", with_seat)
    assert refused is None
    assert (fields["route"], fields["route_target"]) == ("liaison", "PJSIP/liaison")
    assert "route" not in classify("206", catalogue, "110", TransferConfig())[0]
    assert "route" not in classify("206", catalogue, "12345", with_seat)[0]
    assert "route" not in classify("101", catalogue, "110", with_seat)[0]


def test_an_item_for_a_further_line_goes_there_from_12345s_way_only(tmp_path: Path) -> None:
    """`target: "122"`: a key handing to 12345 routes the item to 122 (its dial string,
    and the direction 110->122); a key already handing to 122, a 12345 agent's key, or
    a config without line 122 leave it where it is."""
    text = (REPO / "config/categories.yaml").read_text(encoding="utf-8").replace(
        "name_en: Abandoned car on the road}", 'name_en: Abandoned car on the road, '
        'target: "122"}', 1)
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    catalogue = load_categories(path)
    traffic = TransferConfig(lines=(Line("122", "交警", "*3", "PJSIP/122@trunk-122"),))
    fields, refused = classify("103", catalogue, "110", traffic)
    assert refused is None and (fields["route"], fields["route_target"], fields["direction"]) \
        == ("122", "PJSIP/122@trunk-122", "110->122")
    assert "route" not in classify("103", catalogue, "110", traffic, to="122")[0]
    assert "route" not in classify("103", catalogue, "12345", traffic)[0]
    assert "route" not in classify("103", catalogue, "110", TransferConfig())[0]
    assert check_targets(catalogue, ["122"], str(path)) is catalogue
    with pytest.raises(CategoryError) as info:
        check_targets(catalogue, ["119"], str(path))
    assert "item vehicle.abandoned has target 122, a line transfer.lines does not have" \
        in str(info.value)


@pytest.mark.parametrize("target", ["police", "Liaison", "''"])
def test_an_unknown_target_is_refused_with_its_line(tmp_path: Path, target: str) -> None:
    text = (REPO / "config/categories.yaml").read_text(encoding="utf-8").replace(
        "target: liaison}", f"target: {target}}}", 1)
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CategoryError, match=r"categories.yaml:\d+: target must be one of "
                                            "queue, liaison|must be a non-empty text"):
        load_categories(path)
