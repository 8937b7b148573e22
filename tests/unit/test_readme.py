"""The README says what the code and the tests say: its table of record fields is the
schema's, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway.bridge.state import Outcome
from gateway.schema import fields_markdown

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _between(begin: str, end: str) -> str:
    start = README.index(begin) + len(begin)
    return README[start:README.index(end, start)].strip("\n") + "\n"


def test_the_field_table_is_the_schemas() -> None:
    assert _between("<!-- fields:begin -->", "<!-- fields:end -->") == fields_markdown()


def test_every_outcome_is_explained() -> None:
    for outcome in Outcome:
        assert f"`{outcome.value}`" in README, outcome


def test_every_test_the_readme_names_exists() -> None:
    defined = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    named = set(re.findall(r"`(test_[a-z0-9_]+)`", README))
    assert named, "the README names the tests that show what it says"
    assert sorted(named - defined) == []
