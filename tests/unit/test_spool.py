"""The spool meets what a crash, a full disk, a hostile caller and a hostile file leave:
Chinese names, Unicode line separators, non-UTF-8 bytes, writes torn at any byte."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from gateway.bridge.change import Change, Index
from gateway.bridge.spool import Spool, parse_lines
from gateway.lab.fakes import null_log
from gateway.schema import call_record, idx_calls_caller

NAMES = ["Zhang\u2028San", "Li\u0085Si", "王\u2029五", "赵六", 'q"uote\\', "cr\r\nlf", "\x00nul"]


def change(n: int, name: str) -> Change:
    return Change(call_record(f"u{n}"), "call_registered", 1_795_895_437.5 + n,
                  {"name": name, "number": "13800138000"},
                  (Index(idx_calls_caller(name), f"u{n}", 1.0),), {"why": name}, id=f"c{n}")


def test_every_name_comes_back_exactly_and_the_file_is_ascii(tmp_path: Path) -> None:
    """Line separators inside values (U+2028, U+2029, U+0085) and Chinese text never
    split a line: the file holds only ASCII, and every change is read back whole."""
    spool = Spool(tmp_path, "gw", null_log())
    changes = [change(n, name) for n, name in enumerate(NAMES)]
    spool.append(changes)
    raw = spool.path.read_bytes()
    assert raw.isascii() and raw.count(b"\n") == len(NAMES)
    assert spool.load() == changes


def test_a_torn_multibyte_tail_is_dropped_and_logged_never_fatal(tmp_path: Path) -> None:
    """A valid line, then 张 without its last byte (the likely tear with Chinese names
    written by a file not of this format): the valid change is kept."""
    path = tmp_path / "gw.jsonl"
    path.write_bytes(change(1, "a").to_json().encode() + b"\n" + "张".encode()[:-1])
    with capture_logs() as logs:
        changes = Spool(tmp_path, "gw", structlog.get_logger()).load()
    assert [c.id for c in changes] == ["c1"]
    assert [(e["event"], e["line"]) for e in logs] == [("spool.torn_line", 2)]


def test_a_torn_last_line_never_swallows_the_next_change(tmp_path: Path) -> None:
    path = tmp_path / "gw.jsonl"
    path.write_bytes(change(1, "a").to_json().encode() + b"\n" + b'{"record": "bri')
    spool = Spool(tmp_path, "gw", null_log())
    spool.append([change(2, "b")])
    assert [c.id for c in spool.load()] == ["c1", "c2"]


def test_bad_lines_in_the_middle_are_skipped_with_their_number(tmp_path: Path) -> None:
    lines = [change(1, "a").to_json().encode(), b"\xc3\x28 not utf-8", b"[1, 2]",
             b'{"record": 1}', change(2, "b").to_json().encode(),
             '{"raw": "raw \u2028 separator"}'.encode()]
    with capture_logs() as logs:
        changes = parse_lines(b"\n".join(lines) + b"\n", structlog.get_logger())
    assert [c.id for c in changes] == ["c1", "c2"]
    assert [e["line"] for e in logs] == [2, 3, 4, 6]
    assert {e["event"] for e in logs} == {"spool.bad_line"}


def test_a_raw_line_separator_written_by_another_tool_does_not_split(tmp_path: Path) -> None:
    """Lines are split on \\n only: a U+2028 written raw (ensure_ascii=False elsewhere)
    stays inside its line."""
    good = change(3, "x").to_json().replace('"x"', '"a\u2028b\u0085c"').encode()
    assert [c.fields["name"] for c in parse_lines(good + b"\n", null_log())] == \
        ["a\u2028b\u0085c"]


def test_the_file_is_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "gw", null_log())
    spool.append([change(1, "张三")])
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6), st.data())
def test_a_write_torn_at_any_byte_loses_only_the_torn_line(names: list[str],
                                                           data: st.DataObject) -> None:
    """Cut the file anywhere: every line finished before the cut is read back, nothing
    after it, and reading never raises."""
    changes = [change(n, name) for n, name in enumerate(names)]
    blob = b"".join(c.to_json().encode() + b"\n" for c in changes)
    cut = data.draw(st.integers(0, len(blob)))
    complete = blob[:cut].count(b"\n")
    assert parse_lines(blob[:cut], null_log()) == changes[:complete]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_read_without_an_exception(blob: bytes) -> None:
    for item in parse_lines(blob, null_log()):
        assert isinstance(item, Change)


def test_the_spool_folder_is_made_private_and_a_foreign_or_linked_one_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 5: the folder is this user's and nobody else may write it."""
    import os

    from gateway.bridge.spool import secure_folder

    made = tmp_path / "new" / "spool"
    secure_folder(made)
    assert stat.S_IMODE(os.lstat(made).st_mode) == 0o700
    opened = tmp_path / "opened"
    opened.mkdir(mode=0o755)
    opened.chmod(0o777)
    secure_folder(opened)  # ours, too open (an older keeper made it so): closed
    assert stat.S_IMODE(os.lstat(opened).st_mode) == 0o700
    linked = tmp_path / "linked"
    linked.symlink_to(made)
    with pytest.raises(PermissionError, match="not a folder"):
        secure_folder(linked)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    with pytest.raises(PermissionError, match="belongs to uid"):
        secure_folder(made)


def test_a_planted_link_or_fifo_is_never_written_through_or_adopted(tmp_path: Path) -> None:
    """A link at this process's spool path is refused (its target untouched); a linked
    or FIFO ``.jsonl`` of a "dead process" is not adopted, and its target is not
    truncated."""
    import os

    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (folder / "gw.jsonl").symlink_to(target)
    with pytest.raises(OSError):
        Spool(folder, "gw", null_log()).append([change(1, "张三")])
    assert target.read_text() == "keep me\n"
    (folder / "gw.jsonl").unlink()
    (folder / "dead.jsonl").symlink_to(target)
    os.mkfifo(folder / "fifo.jsonl")
    mine = Spool(folder, "gw", structlog.get_logger())
    with capture_logs() as logs:
        assert mine.adopt() == []
    assert target.read_text() == "keep me\n"
    assert sorted(e["path"].rsplit("/", 1)[1] for e in logs
                  if e["event"] == "spool.not_adopted") == ["dead.jsonl", "fifo.jsonl"]
