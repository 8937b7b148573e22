"""Category lists: which non-police matters may be handed over, loaded from YAML.

Category lists are local (each city publishes its own), so they are configuration. A file
holds categories, each with items; every category and item has a stable ``id``, Chinese
and English names and a numeric ``code`` the call-taker may type after the key (one
digit for a category, three for an item: ``101`` is item 01 of category 1). An item may
name related items in ``see_also``. Each category lists when it ``stays_with_110_if``.

Police matters are a list of their own (``police_matters``): 110 keeps them whatever is
typed (the key is refused), and a work order 12345 dispatches to the police may name
one. Each has the item's keys and may say which category it is ``near`` (the seat's card
lists it there; its code then starts with that category's code). An item of a category
marked ``transfer: never``, as files of earlier releases have them, is read as a police
matter near its category.

Loading rejects, with the file and line: duplicate ids or codes (across both lists), an
item code that does not start with its category's code, an unknown ``see_also`` or
``near`` id, unknown keys.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gateway.deadlines import MAX_WORKING_DAYS

if TYPE_CHECKING:  # the config imports this module's neighbours, not this one
    from gateway.config import TransferConfig


class CategoryError(Exception):
    code = "categories_invalid"

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source, self.line = source, line


@dataclass(frozen=True)
class Item:
    id: str
    code: str
    name_zh: str
    name_en: str
    category: str
    never_transfer: bool = False
    see_also: tuple[str, ...] = ()
    # "liaison": handed to the police liaison seat at 12345, not its queue; a further
    # line's number (transfer.lines: "122"): handed to that line
    target: str = ""


@dataclass(frozen=True)
class Category:
    id: str
    code: str
    name_zh: str
    name_en: str
    stays_with_110_if: tuple[str, ...]
    items: tuple[Item, ...]
    feedback_hours: float | None = None  # deadline for 12345's feedback; None: default
    response_hours: float | None = None  # 110's answer to a work order; None: default
    feedback_days: int | None = None  # the same in working days (before the hours)
    response_days: int | None = None


@dataclass(frozen=True)
class Catalogue:
    categories: tuple[Category, ...]
    police: tuple[Item, ...] = ()  # never handed over (``never_transfer``)

    def lookup(self, code: str) -> Category | Item | None:
        """The item (three digits), police matter or category (one digit) a typed code
        names."""
        for category in self.categories:
            if category.code == code:
                return category
            for item in category.items:
                if item.code == code:
                    return item
        return next((m for m in self.police if m.code == code), None)

    @property
    def items(self) -> list[Item]:
        """The items that may be handed over."""
        return [i for c in self.categories for i in c.items]

    def police_near(self, category_id: str) -> list[Item]:
        """The police matters the card lists beside a category."""
        return [m for m in self.police if m.category == category_id]

    def police_matter(self, matter_id: str) -> Item | None:
        return next((m for m in self.police if m.id == matter_id), None)

    def category(self, category_id: str) -> Category | None:
        return next((c for c in self.categories if c.id == category_id), None)


_CATEGORY_KEYS = {"id", "code", "name_zh", "name_en", "stays_with_110_if", "items",
                  "feedback_hours", "response_hours", "feedback_days", "response_days"}
_ITEM_KEYS = {"id", "code", "name_zh", "name_en", "transfer", "see_also", "target"}
#: Where an item may be handed: the other line's queue ("" or "queue"), its police
#: liaison seat (``transfer.liaison``), or a further line by its number ("122": one of
#: ``transfer.lines``, which :func:`gateway.app.load_catalogue` checks).
TARGETS = ("queue", "liaison", "<a further line's number>")
_POLICE_KEYS = {"id", "code", "name_zh", "name_en", "near", "see_also"}
_TOP_KEYS = {"categories", "police_matters"}
#: The ``category`` of a police matter near no category.
POLICE = "police"


def _mapping(node: yaml.Node, source: str, what: str) -> dict[str, tuple[Any, int]]:
    if not isinstance(node, yaml.MappingNode):
        raise CategoryError(source, node.start_mark.line + 1, f"{what} must be a mapping")
    out: dict[str, tuple[Any, int]] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode):
            raise CategoryError(source, line, f"a key of {what} must be a text")
        if key.value in out:  # YAML would keep the last one: a mistake, said
            raise CategoryError(source, line, f"duplicate key {key.value!r} in {what} "
                                              f"(first at line {out[key.value][1]})")
        out[key.value] = (value, line)
    return out


def _entry(node: yaml.Node, source: str, what: str, allowed: set[str]
           ) -> tuple[dict[str, tuple[Any, int]], int]:
    """A category, an item or a police matter: its keys (only ``allowed``) and line."""
    entry = _mapping(node, source, what)
    for key, (_, key_line) in entry.items():
        if key not in allowed:
            raise CategoryError(source, key_line, f"unknown key {key!r} in {what}")
    return entry, node.start_mark.line + 1


def _sequence(node: Any, source: str, line: int, what: str) -> list[Any]:
    if not isinstance(node, yaml.SequenceNode):
        raise CategoryError(source, line, f"{what} must be a list")
    return list(node.value)


_CODE = re.compile(r"[0-9]{1,4}\Z")


def _code(entry: dict[str, tuple[Any, int]], source: str, line: int) -> str:
    """A code the call-taker types: ASCII digits only."""
    code = _scalar(entry, "code", source, line)
    if not _CODE.match(code):
        raise CategoryError(source, entry["code"][1], f"code {code!r} must be 1 to 4 digits")
    return code


def _scalar(entry: dict[str, tuple[Any, int]], key: str, source: str, line: int) -> str:
    if key not in entry:
        raise CategoryError(source, line, f"missing {key}")
    node, key_line = entry[key]
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        raise CategoryError(source, key_line, f"{key} must be a non-empty text")
    return _shown_text(str(node.value), key, source, key_line)


#: Unicode categories a name shown on the card, the page and the reports may not hold:
#: control and format characters (an escape, a right-to-left override), lone
#: surrogates (no UTF-8 has them: the page could not be written), private or unassigned
#: code points, line and paragraph separators.
_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _shown_text(value: str, key: str, source: str, line: int) -> str:
    for char in value:
        if unicodedata.category(char) in _UNSHOWN:
            raise CategoryError(source, line, f"{key} holds U+{ord(char):04X}, a character "
                                "that cannot be shown (control, format, surrogate, "
                                "separator or unassigned)")
    return value


def _strings(entry: dict[str, tuple[Any, int]], key: str, source: str) -> tuple[str, ...]:
    if key not in entry:
        return ()
    node, line = entry[key]
    if not isinstance(node, yaml.SequenceNode) or \
            not all(isinstance(n, yaml.ScalarNode) for n in node.value):
        raise CategoryError(source, line, f"{key} must be a list of texts")
    return tuple(_shown_text(str(n.value), key, source, n.start_mark.line + 1)
                 for n in node.value)


def parse_categories(text: str, source: str = "<categories>") -> Catalogue:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CategoryError(source, mark.line + 1 if mark else 1, f"not valid YAML: {exc}") \
            from exc
    if root is None:
        raise CategoryError(source, 1, "empty file: expected `categories:`")
    top = _mapping(root, source, "the file")
    if "categories" not in top or not isinstance(top["categories"][0], yaml.SequenceNode):
        raise CategoryError(source, 1, "expected a list under `categories:`")
    for key, (_, key_line) in top.items():
        if key not in _TOP_KEYS:  # a misspelt `police_matters:` would drop them all
            raise CategoryError(source, key_line, f"unknown key {key!r} (expected "
                                                  "`categories:` and `police_matters:`)")
    ids: dict[str, int] = {}
    codes: dict[str, int] = {}
    refs: list[tuple[str, int]] = []
    categories = []
    police: list[Item] = []

    def claim(table: dict[str, int], value: str, line: int, what: str) -> None:
        if value in table:
            raise CategoryError(source, line, f"duplicate {what} {value!r} "
                                              f"(first at line {table[value]})")
        table[value] = line

    for cat_node in top["categories"][0].value:
        cat, line = _entry(cat_node, source, "a category", _CATEGORY_KEYS)
        cid, ccode = _scalar(cat, "id", source, line), _code(cat, source, line)
        if cid == POLICE:
            raise CategoryError(source, cat["id"][1], f"the id {POLICE!r} is reserved (police "
                                                      "matters near no category)")
        claim(ids, cid, line, "id")
        claim(codes, ccode, line, "code")
        items: list[Item] = []
        items_node, items_line = cat.get("items", (yaml.SequenceNode("", []), line))
        for item_node in _sequence(items_node, source, items_line, "items"):
            item, iline = _entry(item_node, source, "an item", _ITEM_KEYS)
            iid, icode = _scalar(item, "id", source, iline), _code(item, source, iline)
            claim(ids, iid, iline, "id")
            claim(codes, icode, iline, "code")
            if not icode.startswith(ccode):
                raise CategoryError(source, iline, f"item code {icode} does not start with "
                                                   f"its category's code {ccode}")
            transfer = _scalar(item, "transfer", source, iline) if "transfer" in item else "yes"
            if transfer not in ("yes", "never"):
                raise CategoryError(source, item["transfer"][1], "transfer must be yes or never")
            see_also = _strings(item, "see_also", source)
            refs += [(ref, item["see_also"][1]) for ref in see_also]
            target = _scalar(item, "target", source, iline) if "target" in item else "queue"
            if target not in TARGETS and not re.fullmatch(r"[0-9]{3,6}", target):
                raise CategoryError(source, item["target"][1],
                                    f"target must be one of {', '.join(TARGETS)}")
            read = Item(iid, icode, _scalar(item, "name_zh", source, iline),
                        _scalar(item, "name_en", source, iline), cid,
                        transfer == "never", see_also,
                        "" if target == "queue" else target)
            # an earlier release's `transfer: never`: a police matter near its category
            (police if read.never_transfer else items).append(read)
        categories.append(Category(cid, ccode, _scalar(cat, "name_zh", source, line),
                                   _scalar(cat, "name_en", source, line),
                                   _strings(cat, "stays_with_110_if", source), tuple(items),
                                   _hours(cat, "feedback_hours", source, line),
                                   _hours(cat, "response_hours", source, line),
                                   _days(cat, "feedback", source, line),
                                   _days(cat, "response", source, line)))
    if "police_matters" in top:
        police += _police_matters(
            top["police_matters"], source, categories,
            lambda what, value, line: claim(ids if what == "id" else codes, value, line, what),
            refs)
    for ref, line in refs:
        if ref not in ids:
            raise CategoryError(source, line, f"see_also names unknown id {ref!r}")
    return Catalogue(tuple(categories), tuple(police))


#: Takes an id or a code (``what``) for one entry, refusing one taken before.
Claim = Callable[[str, str, int], None]


def _police_matters(entry: tuple[Any, int], source: str, categories: list[Category],
                    claim: Claim, refs: list[tuple[str, int]]) -> list[Item]:
    node, line = entry
    if not isinstance(node, yaml.SequenceNode):
        raise CategoryError(source, line, "expected a list under `police_matters:`")
    codes = {c.id: c.code for c in categories}
    out = []
    for matter_node in _sequence(node, source, line, "police_matters"):
        matter, mline = _entry(matter_node, source, "a police matter", _POLICE_KEYS)
        mid, mcode = _scalar(matter, "id", source, mline), _code(matter, source, mline)
        claim("id", mid, mline)
        claim("code", mcode, mline)
        near = _scalar(matter, "near", source, mline) if "near" in matter else POLICE
        if near != POLICE and near not in codes:
            raise CategoryError(source, matter["near"][1], f"near names unknown category "
                                                           f"{near!r}")
        if near != POLICE and not mcode.startswith(codes[near]):
            raise CategoryError(source, mline, f"police matter code {mcode} does not start "
                                               f"with the code {codes[near]} of {near}")
        see_also = _strings(matter, "see_also", source)
        refs += [(ref, matter["see_also"][1]) for ref in see_also]
        out.append(Item(mid, mcode, _scalar(matter, "name_zh", source, mline),
                        _scalar(matter, "name_en", source, mline), near, True, see_also))
    return out


def _hours(cat: dict[str, tuple[Any, int]], key: str, source: str, line: int
           ) -> float | None:
    """An optional positive number of hours."""
    if key not in cat:
        return None
    text = _scalar(cat, key, source, line)
    try:
        hours = float(text)
    except ValueError:
        raise CategoryError(source, cat[key][1], f"{key} must be a number") from None
    if not hours > 0:
        raise CategoryError(source, cat[key][1], f"{key} must be greater than 0")
    return hours


def _days(cat: dict[str, tuple[Any, int]], deadline: str, source: str, line: int
          ) -> int | None:
    """An optional whole number of working days (``<deadline>_days``), never beside
    ``<deadline>_hours``: one deadline, counted one way."""
    key = f"{deadline}_days"
    if key not in cat:
        return None
    if f"{deadline}_hours" in cat:
        raise CategoryError(source, cat[key][1], f"{key} and {deadline}_hours: give one")
    text = _scalar(cat, key, source, line)
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_WORKING_DAYS):
        raise CategoryError(source, cat[key][1],
                            f"{key} must be 1 to {MAX_WORKING_DAYS} working days")
    return int(text)


def load_categories(path: Path) -> Catalogue:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CategoryError(str(path), 1, f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise CategoryError(str(path), line, f"not UTF-8 (byte {exc.start}: "
                            f"{exc.object[exc.start:exc.end]!r})") from exc
    return parse_categories(text, str(path))


def load_for(transfer: TransferConfig) -> Catalogue:
    """The catalogue a config names (``transfer.categories``), its items' further lines
    checked against the config's (:func:`check_targets`)."""
    return check_targets(load_categories(Path(transfer.categories)),
                         (line.name for line in transfer.lines), transfer.categories)


def check_targets(catalogue: Catalogue, lines: Iterable[str], source: str) -> Catalogue:
    """Every item handed to a further line names one the config has (``lines``: their
    numbers); a typo would otherwise send the item to 12345's queue unnoticed."""
    known = set(lines)
    for item in catalogue.items:
        if item.target not in ("", "liaison") and item.target not in known:
            raise CategoryError(source, 0, f"item {item.id} has target {item.target}, a "
                                           "line transfer.lines does not have")
    return catalogue
