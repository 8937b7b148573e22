"""The README and the docs say what the code and the tests say: the table of record fields
is the schema's, every test they name exists, and every link lands. The README stays a
map: short, and linking every page of docs/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway.outcome import Outcome
from gateway.schema import fields_markdown

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
TEXTS = {path: path.read_text(encoding="utf-8") for path in [README, *PAGES]}
ALL = "\n".join(TEXTS.values())

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def _between(text: str, begin: str, end: str) -> str:
    start = text.index(begin) + len(begin)
    return text[start:text.index(end, start)].strip("\n") + "\n"


def _links(text: str) -> list[str]:
    """The targets of the markdown links, outside code."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", text)))


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces
    as hyphens, a repeated one numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _local(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target)


def test_the_field_table_is_the_schemas() -> None:
    holding = [p for p, text in TEXTS.items() if "<!-- fields:begin -->" in text]
    assert [p.relative_to(REPO).as_posix() for p in holding] == ["docs/record-api-cli.md"]
    table = _between(TEXTS[holding[0]], "<!-- fields:begin -->", "<!-- fields:end -->")
    assert table == fields_markdown()


def test_every_outcome_is_explained() -> None:
    for outcome in Outcome:
        assert f"`{outcome.value}`" in ALL, outcome


def test_every_test_the_docs_name_exists() -> None:
    defined = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", ALL))
    assert named, "the README and the docs name the tests that show what they say"
    assert sorted(named - defined) == []


def test_the_readme_is_a_map_not_a_manual() -> None:
    assert len(TEXTS[README].splitlines()) < 200


def test_every_relative_link_lands() -> None:
    broken = []
    for path, text in TEXTS.items():
        for target in filter(_local, _links(text)):
            file, _, anchor = target.partition("#")
            landing = (path.parent / file).resolve() if file else path
            if not landing.exists():
                broken.append(f"{path.relative_to(REPO)}: {target} (no such file)")
            elif anchor and landing.suffix == ".md":
                if anchor not in _anchors(landing.read_text(encoding="utf-8")):
                    broken.append(f"{path.relative_to(REPO)}: {target} (no such heading)")
    assert broken == []


def test_every_page_of_the_docs_is_linked_from_the_readme() -> None:
    assert PAGES, "docs/ holds the pages the README maps"
    linked = {
        (REPO / target.partition("#")[0]).resolve()
        for target in filter(_local, _links(TEXTS[README]))
    }
    assert [p.name for p in PAGES if p.resolve() not in linked] == []
