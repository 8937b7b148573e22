"""Upgrades keep records: what the previous release wrote (a fixture of raw Redis keys
from a two-PBX demo run of main at 0f24973, plus a ticket and a work order written by
that release's desks) reads back with this one, its chain still verifies, this
release's changes land beside it with their version, and ``check-records`` names what
it could not read (a newer version, bytes that are not UTF-8, an event that is not
JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis

from gateway.catalogue import load_categories
from gateway.config import Config
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.chain import verify_day
from gateway.records.check import RecordCheck
from gateway.records.queries import Records
from gateway.records.tickets import TicketDesk

REPO = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((REPO / "tests/fixtures/records-0f24973.json").read_text("utf-8"))
# Keys and record names below are literals on purpose, not gateway.schema's: they are
# spelt as release 0f24973 wrote them, and a schema.py that spells them otherwise
# must fail here (records already in Redis are not renamed).
DB = 7  # a database of its own on the session's redis-server


#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")


def restore(client: redis.Redis, keys: dict[str, Any]) -> None:
    for key, item in keys.items():
        kind, value = item["type"], item["value"]
        if kind == "hash":
            client.hset(key, mapping=value)
        elif kind == "string":
            client.set(key, value)
        elif kind == "set":
            client.sadd(key, *value)
        elif kind == "zset":
            client.zadd(key, dict(value))
        elif kind == "stream":
            for entry_id, fields in value:
                client.xadd(key, fields, id=entry_id)


@pytest.fixture
def old(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port, db=DB, decode_responses=True)
    client.flushdb()
    restore(client, FIXTURE["keys"])
    yield client
    client.flushdb()


def bridge_id() -> str:
    [key] = [k for k in FIXTURE["keys"] if k.startswith("linkgw:bridge:")]
    return str(key.rsplit(":", 1)[1])


def check(redis_server: RedisServer) -> list[str]:
    raw = redis.Redis(port=redis_server.port, db=DB)
    return RecordCheck(raw, "linkgw").run().lines()


def test_the_previous_releases_records_read_back(old: redis.Redis,
                                                 redis_server: RedisServer) -> None:
    found = Records(old, "linkgw", ZoneInfo("Asia/Shanghai")).bridge(bridge_id())
    assert found["bridge"]["outcome"] == "handed_off"
    assert "schema" not in found["bridge"]  # written before versions: read as 0
    assert found["ticket"]["ticket"] == "2026120300001"
    assert [e["event"] for e in found["events"]][:2] == ["transfer_requested",
                                                        "agent_dialing"]
    day = bridge_id()[:4] + "-" + bridge_id()[4:6] + "-" + bridge_id()[6:8]
    assert verify_day(old, "linkgw", day).ok
    said = check(redis_server)
    assert said[-1] == "ok: this release reads every record and event"
    assert "bridge v0: 1" in said and "workorder v0: 1" in said
    assert "events entry v0: 19" in said


def test_this_releases_changes_land_beside_them_with_their_version(
        old: redis.Redis, redis_server: RedisServer) -> None:
    catalogue = load_categories(REPO / "config/categories.yaml")
    desk = TicketDesk(old, "linkgw", Config().tickets, catalogue, lambda: 1796300000.0)
    desk.status(bridge_id(), "assigned", "城关派出所", API)
    assert "schema" not in old.hgetall(f"linkgw:ticket:{bridge_id()}")  # its creator's
    events = cast(list[tuple[str, dict[str, str]]], old.xrange("linkgw:events"))
    newest = events[-1][1]
    assert (newest["record"], newest["schema"]) == (f"ticket:{bridge_id()}", "1")
    said = check(redis_server)
    assert "events entry v1: 1" in said and said[-1].startswith("ok")
    day = bridge_id()[:4] + "-" + bridge_id()[4:6] + "-" + bridge_id()[6:8]
    assert verify_day(old, "linkgw", day).ok


def test_what_cannot_be_read_is_named(old: redis.Redis, redis_server: RedisServer) -> None:
    raw = redis.Redis(port=redis_server.port, db=DB)
    old.hset(f"linkgw:bridge:{bridge_id()}", "schema", "9")
    raw.hset("linkgw:call:u-\u2028", b"name", b"\xff\xfe")
    old.xadd("linkgw:events", {"record": "bridge:x", "id": "c", "event": "e", "at": "1",
                               "data": "[1]", "fields": "{"})
    old.set("linkgw:feed:110", "not a stream")
    raw.hset(b"linkgw:workorder:\xff9", b"schema", b"7")  # a name that is not UTF-8
    said = check(redis_server)
    problems = [line for line in said if line.startswith("unreadable: ")]
    [(newest, _)] = cast(list[tuple[str, dict[str, str]]],
                         old.xrevrange("linkgw:events", count=1))
    assert problems == [
        f"unreadable: linkgw:bridge:{bridge_id()}: schema 9: written by a newer linkgw",
        "unreadable: linkgw:call:u-\u2028: 'name' is not UTF-8",
        "unreadable: linkgw:workorder:\\xff9: schema 7: written by a newer linkgw",
        f"unreadable: linkgw:events {newest}: data is not a JSON object",
        f"unreadable: linkgw:events {newest}: fields is not a JSON object",
        "unreadable: linkgw:feed:110: not a stream"]
    assert said[-1] == "6 unreadable"


def test_the_cli_exits_1_when_something_is_unreadable(
        old: redis.Redis, redis_server: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"redis:\n  url: \"redis://127.0.0.1:{redis_server.port}/{DB}\"\n"
                      "http:\n  listen: \"\"\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "LINKGW_AMI_SECRET": "x"}
    done = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                           str(config)], capture_output=True, text=True, timeout=60, env=env)
    assert (done.returncode, done.stdout.splitlines()[-1]) == \
        (0, "ok: this release reads every record and event"), done.stderr
    old.hset(f"linkgw:workorder:{FIXTURE_ORDER}", "schema", "2")
    done = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                           str(config)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert f"unreadable: linkgw:workorder:{FIXTURE_ORDER}: schema 2: written by a newer " \
           "linkgw" in done.stdout


FIXTURE_ORDER = "2026120390001"
