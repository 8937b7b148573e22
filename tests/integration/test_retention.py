"""Retention on a real redis-server: a day exported (then removed only if its export is
intact), its chain sealed with a key outside Redis and checkpointed where trimming cut
it; streams trimmed by time but never past what a consumer group has not read."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from gateway.bridge.redis_store import apply_sync
from gateway.bridge.store import Change, Index
from gateway.lab.services import RedisServer
from gateway.records.chain import verify_day
from gateway.records.retention import Retention, RetentionError
from gateway.schema import (
    IDX_LIVE,
    Keys,
    bridge_record,
    call_record,
    idx_caller,
    idx_calls_caller,
    idx_calls_day,
    idx_day,
    idx_seat,
    idx_ticket,
    ticket_record,
)

P = "r"
KEYS = Keys(P)
KEY = b"k" * 32
NAME = "张\u2028三\x85"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis_server.client()
    c.flushdb()
    yield c


def a_day(client: redis.Redis) -> tuple[str, float]:
    """One UTC day's worth of records, written now through the Lua script."""
    now = datetime.now(UTC).timestamp()
    day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    b = "20261128195037aaaaaa"
    changes = [
        Change(call_record("u-1"), "call_registered", now, {"number": "13800138000", "name": NAME},
               (Index(idx_calls_day(day), "u-1", now),
                Index(idx_calls_caller("13800138000"), "u-1", now)), id="c1"),
        Change(bridge_record(b), "transfer_requested", now + 1, {
            "bridge_id": b, "citizen_number": "13800138000", "citizen_name": NAME,
            "seat": "seat1", "direction": "110->12345", "state": "requested"},
            (Index(idx_day(day), b, now + 1), Index(idx_caller("13800138000"), b, now + 1),
             Index(idx_seat("seat1"), b, now + 1), Index(IDX_LIVE, b, now + 1)), id="c2",
            feed="12345"),
        Change(bridge_record(b), "ended", now + 2, {"state": "ended", "outcome": "handed_off"},
               (Index(IDX_LIVE, b, -1),), id="c3", feed="12345"),
        Change(ticket_record(b), "ticket_attached", now + 3, {"ticket": "20261128000001"},
               (Index(idx_ticket("20261128000001"), b, now + 3),), id="c4"),
    ]
    for change in changes:
        apply_sync(client, P, change)
    return day, now


def later(day: str, days: int) -> date:
    return date.fromisoformat(day) + timedelta(days=days)


def test_a_day_is_exported_sealed_removed_and_its_chain_still_verifies(
        client: redis.Redis, tmp_path: Path) -> None:
    day, _ = a_day(client)
    client.xgroup_create(KEYS.feed("12345"), "12345", id="0")
    # "<stream>/<group>": spelt as retention.groups in a site's config
    retention = Retention(client, P, tmp_path / "export", ("feed:12345/12345",), KEY)
    done = retention.run(keep_days=1, today=later(day, 2))
    assert done["days"] == [day]
    # the export: every record and event, ASCII JSON lines, 0600, digest on record
    path = tmp_path / "export" / f"{day}.jsonl"
    data = path.read_bytes()
    assert data.isascii() and stat.S_IMODE(path.stat().st_mode) == 0o600
    items = [json.loads(line) for line in data.split(b"\n") if line]
    records = {i["record"]: i["fields"] for i in items if i["kind"] == "record"}
    assert records[call_record("u-1")]["name"] == NAME
    assert records[bridge_record("20261128195037aaaaaa")]["outcome"] == "handed_off"
    assert records[ticket_record("20261128195037aaaaaa")]["ticket"] == "20261128000001"
    assert [i["entry"]["event"] for i in items if i["kind"] == "event"] == \
        ["call_registered", "transfer_requested", "ended", "ticket_attached"]
    assert client.hget(KEYS.exported(day), "sha256") == hashlib.sha256(data).hexdigest()
    # removed: records, their day and look-up index entries
    assert not client.exists(KEYS.call("u-1"), KEYS.bridge("20261128195037aaaaaa"),
                             KEYS.ticket("20261128195037aaaaaa"), KEYS.index(idx_day(day)),
                             KEYS.index(idx_calls_day(day)))
    assert client.zcard(KEYS.index(idx_caller("13800138000"))) == 0
    assert client.zcard(KEYS.index(idx_ticket("20261128000001"))) == 0
    # the event stream trimmed, the unread feed kept whole
    assert client.xlen(KEYS.events) == 0 and client.xlen(KEYS.feed("12345")) == 2
    assert client.hgetall(KEYS.checkpoint(day))["removed"] == "4"
    report = verify_day(client, P, day, key=KEY)
    assert (report.ok, report.checked, report.trimmed, report.sealed) == (True, 0, 4, "yes")


def test_the_feed_is_trimmed_only_once_its_group_has_read_and_acknowledged(
        client: redis.Redis, tmp_path: Path) -> None:
    day, _ = a_day(client)
    client.xgroup_create(KEYS.feed("12345"), "12345", id="0")
    retention = Retention(client, P, tmp_path, ("feed:12345/12345",), KEY)  # as config
    cutoff = later(day, 1).isoformat()
    assert retention.trim(cutoff)[KEYS.feed("12345")] == 0
    read = cast(Any, client.xreadgroup("12345", "ts", {KEYS.feed("12345"): ">"}, count=1))
    assert retention.trim(cutoff)[KEYS.feed("12345")] == 0  # read, not acknowledged
    client.xack(KEYS.feed("12345"), "12345", read[0][1][0][0])
    assert retention.trim(cutoff)[KEYS.feed("12345")] == 1  # the one acknowledged
    assert client.xlen(KEYS.feed("12345")) == 1


def test_a_day_cut_in_the_middle_verifies_from_its_checkpoint(
        client: redis.Redis, tmp_path: Path) -> None:
    """An audit group on the event stream has read two entries: trimming stops there;
    the rest of the day still chains, from the checkpoint."""
    day, _ = a_day(client)
    client.xgroup_create(KEYS.events, "audit", id="0")
    got = cast(Any, client.xreadgroup("audit", "a", {KEYS.events: ">"}, count=2))
    client.xack(KEYS.events, "audit", *[i for i, _ in got[0][1]])
    retention = Retention(client, P, tmp_path, ("events/audit",), KEY)
    assert retention.trim(later(day, 1).isoformat())[KEYS.events] == 2
    report = verify_day(client, P, day)
    assert (report.ok, report.checked, report.trimmed) == (True, 2, 2)
    client.hset(KEYS.checkpoint(day), "hash", "0" * 40)  # a writer edits the checkpoint
    assert not verify_day(client, P, day).ok


def test_a_redis_writer_cannot_rewrite_a_sealed_day_unnoticed(
        client: redis.Redis, tmp_path: Path) -> None:
    day, _ = a_day(client)
    retention = Retention(client, P, tmp_path, (), KEY)
    assert retention.seal(day)
    assert verify_day(client, P, day, key=KEY).sealed == "yes"
    assert verify_day(client, P, day).sealed == "unchecked"
    # rewrite the whole day consistently, as anyone with Redis write access could: a new
    # chain from scratch, a new head; the seal (made without the key) cannot follow
    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(KEYS.events))
    client.delete(KEYS.events, KEYS.chain(day))
    for _, entry in entries:
        forged = Change(entry["record"], entry["event"], float(entry["at"]),
                        json.loads(entry["fields"]) | {"outcome": "refused"},
                        id=entry["id"] + "x")
        apply_sync(client, P, forged)
    seal = client.hgetall(KEYS.seal(day))
    client.hset(KEYS.seal(day), "hash", client.get(KEYS.chain(day)) or "")
    assert verify_day(client, P, day).ok  # unkeyed, the rewrite holds together
    report = verify_day(client, P, day, key=KEY)
    assert not report.ok and report.broken_at == "(seal)"
    assert seal["mac"] == client.hget(KEYS.seal(day), "mac")


def test_nothing_is_removed_when_the_export_is_gone_or_changed(
        client: redis.Redis, tmp_path: Path) -> None:
    day, _ = a_day(client)
    retention = Retention(client, P, tmp_path, (), KEY)
    path = retention.export(day)
    path.write_bytes(path.read_bytes()[:-3])  # torn
    with pytest.raises(RetentionError):
        retention.remove(day)
    path.unlink()
    with pytest.raises(RetentionError):
        retention.remove(day)
    assert client.exists(KEYS.bridge("20261128195037aaaaaa"))
    assert retention.run(keep_days=1, today=later(day, 2))["days"] == [day]  # exported anew
    assert not client.exists(KEYS.bridge("20261128195037aaaaaa"))


def test_names_from_redis_never_become_paths_outside_the_export_folder(
        client: redis.Redis, tmp_path: Path) -> None:
    """``idx:day:../../x/owned`` (the gateway's own Redis user may write it) is refused
    and left alone; nothing outside ``export_dir`` is touched; the real day is still
    exported and removed, this night and the next."""
    day, _ = a_day(client)
    victim = tmp_path / "x" / "owned.jsonl"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    client.zadd(KEYS.index(idx_day("../../x/owned")), {"a": 1})
    client.zadd(KEYS.index(idx_day("2026-02-30")), {"b": 1})  # not a date
    client.zadd(KEYS.index(idx_calls_day("２０２６-01-01")), {"c": 1})  # not ASCII digits
    said: list[str] = []
    retention = Retention(client, P, tmp_path / "export" / "inner", (), KEY, said.append)
    done = retention.run(keep_days=1, today=later(day, 2))
    assert done["days"] == [day] and done["failed"] == []
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in (tmp_path / "export" / "inner").iterdir()) == \
        [f"{day}.jsonl", f"{day}.seal"]
    assert sum("does not name a day" in line for line in said) == 3
    assert retention.run(keep_days=1, today=later(day, 3))["failed"] == []


def test_an_export_path_in_redis_is_not_trusted_and_a_fifo_does_not_block(
        client: redis.Redis, tmp_path: Path) -> None:
    """``exported:<day>`` pointing at a FIFO elsewhere (or a FIFO planted at the day's
    own file) is never opened for a blocking read: the day is exported again, or, when
    it cannot be, that day is reported and the run goes on."""
    day, _ = a_day(client)
    fifo = tmp_path / "trap"
    os.mkfifo(fifo)
    client.hset(KEYS.exported(day), mapping={"file": str(fifo), "sha256": "0" * 64})
    said: list[str] = []
    export = tmp_path / "export"
    retention = Retention(client, P, export, (), KEY, said.append)
    assert retention.export_intact(day) is False
    assert any("not" in line and "trap" in line for line in said)
    export.mkdir(exist_ok=True)
    os.mkfifo(export / f"{day}.jsonl")
    client.hset(KEYS.exported(day), mapping={"file": str(export / f"{day}.jsonl")})
    assert retention.export_intact(day) is False  # not a regular file: refused at once
    done = retention.run(keep_days=1, today=later(day, 2))
    assert done["days"] == [day]  # exported again, over the FIFO's name (replaced)
    assert (export / f"{day}.jsonl").is_file()


def test_a_deleted_seal_does_not_read_as_intact(client: redis.Redis, tmp_path: Path) -> None:
    """Rewrite a sealed day, then DEL its seal (the gateway's Redis user may): the
    export folder's manifest still says the day was sealed, so ``verify-chain`` reports
    it broken, with or without the key. A manifest that is not a regular file, or not
    this day's, is not trusted either."""
    from gateway.records.cli import run as run_cli
    from gateway.records.queries import Records
    from gateway.records.retention import read_manifest

    day, _ = a_day(client)
    retention = Retention(client, P, tmp_path, (), KEY)
    assert retention.seal(day)
    manifest = read_manifest(tmp_path, day)
    assert manifest is not None and manifest["mac"] == client.hget(KEYS.seal(day), "mac")
    assert stat.S_IMODE((tmp_path / f"{day}.seal").stat().st_mode) == 0o600
    assert verify_day(client, P, day, key=KEY, manifest=manifest).sealed == "yes"
    client.delete(KEYS.seal(day))
    for key in (KEY, b""):
        report = verify_day(client, P, day, key=key, manifest=read_manifest(tmp_path, day))
        assert (report.ok, report.broken_at) == (False, "(seal)")
        assert "gone from Redis" in report.reason
    args = argparse.Namespace(command="verify-chain", day=day, json=False)
    code, text = run_cli(args, Records(client, P), b"", tmp_path)
    assert code == 1 and "BROKEN" in text and "gone from Redis" in text
    (tmp_path / f"{day}.seal").unlink()
    os.mkfifo(tmp_path / f"{day}.seal")  # must not block, must not pass
    assert read_manifest(tmp_path, day) == {"invalid": "not a regular file"}
    (tmp_path / f"{day}.seal").unlink()
    (tmp_path / f"{day}.seal").write_text('{"day": "2020-01-01"}')
    assert read_manifest(tmp_path, day) == {"invalid": "not this day's manifest"}
