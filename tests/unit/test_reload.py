"""A reload (SIGHUP) applies ``transfer`` and the categories, refuses what needs a
restart as a whole, and keeps the old config when the files are broken."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.catalogue import Catalogue
from gateway.config import Config, Line, load_config_file
from gateway.reload import Reloader, changed, plan

REPO = Path(__file__).resolve().parents[2]
ENV = {"LINKGW_AMI_SECRET": "s3", "LINKGW_API_TOKEN": "t" * 32}


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        self._add("error", event, **kw)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(REPO / "config" / "gateway.yaml", tmp_path / "gateway.yaml")
    shutil.copy(REPO / "config" / "categories.yaml", tmp_path / "categories.yaml")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


class Running:
    """What the gateway would hold: its config, and what a reload handed it."""

    def __init__(self, folder: Path) -> None:
        self.config = load_config_file(folder / "gateway.yaml", ENV)
        self.applied: list[tuple[Config, Catalogue]] = []
        self.log = Log()
        self.reloader = Reloader(folder / "gateway.yaml", lambda: self.config, self.apply,
                                 self.log, ENV)

    def apply(self, config: Config, catalogue: Catalogue) -> None:
        self.applied.append((config, catalogue))
        self.config = config


def test_changed_names_each_field_that_differs() -> None:
    old = Config()
    new = replace(old, transfer=replace(old.transfer, code_timeout=5.0, onekey="*9"),
                  fastagi=replace(old.fastagi, listen="tcp:4574"))
    assert changed(old, new) == ["fastagi.listen", "transfer.onekey", "transfer.code_timeout"]
    assert changed(old, old) == []


def test_a_transfer_value_is_applied_and_a_dialplan_value_says_run_linkgw_dialplan() -> None:
    old = Config()
    timeout = plan(old, replace(old, transfer=replace(old.transfer, code_timeout=5.0)))
    assert (timeout.live, timeout.fixed, timeout.dialplan_stale) == (
        ("transfer.code_timeout",), (), False)
    key = plan(old, replace(old, transfer=replace(old.transfer, onekey="*9")))
    assert (key.live, key.refused, key.dialplan_stale) == (("transfer.onekey",), False, True)


def test_new_decline_codes_say_run_linkgw_dialplan_a_new_text_applies_at_once() -> None:
    """The consult agent's menu is made from the globals' key and codes: a code added or
    taken away (or the key) makes them stale; a reason's new text is the gateway's only,
    and the next decline records it."""
    old = Config()
    reasons = old.transfer.decline_reasons
    codes = plan(old, replace(old, transfer=replace(
        old.transfer, decline_reasons=(*reasons, ("7", "另行处理")))))
    assert (codes.live, codes.dialplan_stale) == (("transfer.decline_reasons",), True)
    key = plan(old, replace(old, transfer=replace(old.transfer, decline_key="*8")))
    assert key.dialplan_stale
    text = plan(old, replace(old, transfer=replace(
        old.transfer, decline_reasons=(("1", "属公安职责"), *reasons[1:]))))
    assert (text.live, text.dialplan_stale) == (("transfer.decline_reasons",), False)


def test_a_lines_api_token_changed_needs_a_restart_its_notice_does_not() -> None:
    """The API's roles are made at start: a line whose token changes, or a line added
    or taken away, is refused by a reload (a revoked token would go on reading); its
    notice is a dialplan value like any other."""
    line = Line("122", "交警", "*3", "PJSIP/122", token="t" * 16)
    old = replace(Config(), transfer=replace(Config().transfer, lines=(line,)))
    for lines in ((replace(line, token="u" * 16),), ()):
        again = plan(old, replace(old, transfer=replace(old.transfer, lines=lines)))
        assert again.refused and "transfer.lines (a line or its API token)" in again.fixed
    notice = plan(old, replace(old, transfer=replace(
        old.transfer, lines=(replace(line, notice_prompt="site/n122"),))))
    assert (notice.refused, notice.dialplan_stale) == (False, True)


def test_the_next_key_gets_the_new_code_timeout(folder: Path) -> None:
    running = Running(folder)
    edit(folder / "gateway.yaml", "code_timeout: 3.0", "code_timeout: 6.5")
    assert running.reloader.reload() == "config reloaded (1 values changed)"
    assert [c.transfer.code_timeout for c, _ in running.applied] == [6.5]
    assert running.log.events[-1][:2] == ("info", "reload.applied")
    assert running.log.events[-1][2]["changed"] == ["transfer.code_timeout"]


def test_a_new_category_list_is_read(folder: Path) -> None:
    running = Running(folder)
    edit(folder / "categories.yaml", "name_zh: 挪车", "name_zh: 挪车（新）")
    assert running.reloader.reload() == "config reloaded (0 values changed)"
    [(_, catalogue)] = running.applied
    assert any(c.name_zh == "挪车（新）" for c in catalogue.categories)


def test_a_listen_address_change_is_refused_and_nothing_is_applied(folder: Path) -> None:
    running = Running(folder)
    before = running.config
    edit(folder / "gateway.yaml", "code_timeout: 3.0", "code_timeout: 6.5")
    edit(folder / "gateway.yaml", 'listen: "tcp:4573:interface=127.0.0.1"',
         'listen: "tcp:4574:interface=127.0.0.1"')
    outcome = running.reloader.reload()
    assert outcome == ("reload refused: fastagi.listen need a restart (old config kept)")
    assert running.applied == [] and running.config is before
    level, event, fields = running.log.events[-1]
    assert (level, event, fields["changed"]) == ("error", "reload.refused", ["fastagi.listen"])


@pytest.mark.parametrize("broken", ["code_timeout: [", "code_timeout: \u2028",
                                    "code_timeout: -1"])
def test_a_broken_config_keeps_the_old_one(folder: Path, broken: str) -> None:
    running = Running(folder)
    edit(folder / "gateway.yaml", "code_timeout: 3.0", broken)
    assert running.reloader.reload().startswith("reload refused: the config or categories")
    assert running.applied == []
    level, event, fields = running.log.events[-1]
    assert (level, event, fields["reason"]) == ("error", "reload.refused", "unreadable")
    assert "gateway.yaml" in fields["error"]


def test_a_category_list_that_is_not_utf8_keeps_the_old_one(folder: Path) -> None:
    running = Running(folder)
    (folder / "categories.yaml").write_bytes(b"categories:\n  - id: \xff\xfe\n")
    assert running.reloader.reload().startswith("reload refused")
    assert running.applied == []
