"""The shipped Redis users (config/redis.acl), loaded by a real redis-server: each sees
and changes what is its own, and gets NOPERM for the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from gateway.bridge.acl import AclError, render
from gateway.bridge.change import Change
from gateway.bridge.redis_store import apply_sync
from gateway.config import TicketConfig, load_config_file
from gateway.lab.ports import free_ports
from gateway.lab.services import RedisServer
from gateway.records.retention import Retention
from gateway.schema import Keys, bridge_record, call_record, idx_day

KEYS = Keys("linkgw")  # the shipped prefix, that of config/redis.acl
INBOUND = KEYS.inbound(TicketConfig.inbound_stream)  # the stream 12345 may write to
ACL = Path(__file__).resolve().parents[2] / "config/redis.acl"
PASSWORDS = {"linkgw-gateway": "gw-pass-0123456789", "linkgw-12345": "张 三\r\n pass 12345",
             "linkgw-supervisor": "sup-pass-0123456789",
             "linkgw-maintenance": "maint-pass-0123456789"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    workdir: Path = tmp_path_factory.mktemp("redis-acl")
    acl = workdir / "users.acl"
    acl.write_text(render(ACL.read_text(encoding="utf-8"), KEYS.prefix, PASSWORDS),
                   encoding="utf-8")
    server = RedisServer(free_ports(1)[0], workdir, workdir, appendonly=False)
    server.extra_args = ["--aclfile", str(acl)]
    server.start()  # its `default` user (not in the file) is the test's admin
    try:
        yield server
    finally:
        server.stop()


def as_user(server: RedisServer, user: str) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, username=user,
                       password=PASSWORDS[user], decode_responses=True)


def noperm(call: object) -> None:
    assert callable(call)
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()


@pytest.fixture(scope="module")
def written(server: RedisServer) -> redis.Redis:
    """What the gateway wrote as its own user: a registered call (never handed over) and
    a bridge handed to 12345, through the real Lua script."""
    gateway = as_user(server, "linkgw-gateway")
    apply_sync(gateway, KEYS.prefix, Change(call_record("u-1"), "call_registered", 1000.0,
                                             {"number": "13900000001", "name": "王五"}, id="a"))
    apply_sync(gateway, KEYS.prefix, Change(
        bridge_record("b1"), "transfer_requested", 1001.0,
        {"citizen_number": "13800138000", "seat_channel": "PJSIP/seat1-1",
         "direction": "110->12345"}, id="b", feed="12345"))
    gateway.xgroup_create(KEYS.feed("12345"), "12345", id="0", mkstream=True)
    gateway.xgroup_create(INBOUND, "linkgw", id="0", mkstream=True)
    return gateway


def test_the_gateway_user_works_its_own_keys_and_nothing_else(
        server: RedisServer, written: redis.Redis) -> None:
    assert written.hgetall(KEYS.call("u-1"))["name"] == "王五"
    assert written.xlen(KEYS.events) == 2
    assert written.xreadgroup("linkgw", "gw-1", {INBOUND: ">"}) == []
    noperm(lambda: written.set("other:key", "x"))
    noperm(lambda: written.flushall())
    noperm(lambda: written.keys("*"))
    noperm(lambda: written.config_get("dir"))
    noperm(lambda: written.acl_list())
    # what would reach beyond its keys: other applications' scripts and functions,
    # another database, a sample of other key names
    noperm(lambda: written.function_flush())
    noperm(lambda: written.function_load("#!lua name=x\nredis.register_function('f', "
                                         "function() return 1 end)"))
    noperm(lambda: written.script_flush())
    noperm(lambda: written.script_kill())
    noperm(lambda: written.execute_command("SELECT", 1))
    noperm(lambda: written.randomkey())
    noperm(lambda: written.scan())  # other applications' key names


def test_retention_and_check_records_log_in_as_the_maintenance_user(
        server: RedisServer, written: redis.Redis, tmp_path: Path) -> None:
    """They list keys (SCAN), which the gateway's user may not: the CLI logs in as the
    user retention.redis_username names, with its own password."""
    written.zadd(KEYS.index(idx_day("2026-01-05")), {"b1": 1.0})
    maintenance = as_user(server, "linkgw-maintenance")
    days = Retention(maintenance, KEYS.prefix, tmp_path / "export").days()
    assert days == ["2026-01-05"]
    with pytest.raises(redis.exceptions.NoPermissionError):
        Retention(written, KEYS.prefix, tmp_path / "export").days()
    noperm(lambda: maintenance.flushall())
    noperm(lambda: maintenance.keys("*"))
    noperm(lambda: maintenance.get("other:key"))
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"redis:\n  url: \"redis://127.0.0.1:{server.port}/0\"\n"
        "  username: linkgw-gateway\n  password_env: LINKGW_REDIS_PASSWORD\n"
        "retention:\n  redis_username: linkgw-maintenance\n"
        "  redis_password_env: LINKGW_REDIS_PASSWORD_MAINTENANCE\n"
        "http:\n  listen: \"\"\nami:\n  secret_env: LINKGW_AMI_SECRET\n", encoding="utf-8")
    env = {**os.environ, "LINKGW_REDIS_PASSWORD": PASSWORDS["linkgw-gateway"],
           "LINKGW_REDIS_PASSWORD_MAINTENANCE": PASSWORDS["linkgw-maintenance"]}
    done = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                           str(config)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    env["LINKGW_REDIS_PASSWORD_MAINTENANCE"] = PASSWORDS["linkgw-gateway"]  # a wrong one
    refused = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                              str(config)], capture_output=True, text=True, env=env,
                             timeout=60, check=False)
    assert refused.returncode == 3 and "Redis:" in refused.stderr, refused.stderr
    del env["LINKGW_REDIS_PASSWORD_MAINTENANCE"]  # the gateway's environment, without it
    unset = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                            str(config)], capture_output=True, text=True, env=env,
                           timeout=60, check=False)
    assert (unset.returncode, unset.stderr) == (2, (
        "linkgw check-records: retention.redis_username is 'linkgw-maintenance' but "
        "retention.redis_password_env names no variable that is set (the maintenance "
        "user's password)\n"))
    # a site that has not named the maintenance user yet is told what to set
    plain = tmp_path / "plain.yaml"
    plain.write_text(config.read_text(encoding="utf-8").split("retention:")[0]
                     + "http:\n  listen: \"\"\nami:\n  secret_env: LINKGW_AMI_SECRET\n",
                     encoding="utf-8")
    hinted = subprocess.run([sys.executable, "-m", "gateway", "check-records", "--config",
                             str(plain)], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert hinted.returncode == 3 and "set retention.redis_username: linkgw-maintenance" \
        in hinted.stderr, hinted.stderr
    started = load_config_file(config, {"LINKGW_REDIS_PASSWORD": "x", "LINKGW_AMI_SECRET": "y"})
    assert started.retention.redis_password == ""  # not required to start the gateway


def test_12345_reads_its_feed_and_writes_work_orders_and_nothing_more(
        server: RedisServer, written: redis.Redis) -> None:
    twelve = as_user(server, "linkgw-12345")
    got = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]],
               twelve.xreadgroup("12345", "ts-1", {KEYS.feed("12345"): ">"}))
    [(_, entries)] = got
    assert [(e["record"], e["event"]) for _, e in entries] == \
        [(bridge_record("b1"), "transfer_requested")]
    assert "13800138000" in entries[0][1]["fields"]
    assert "seat_channel" not in entries[0][1]["fields"]
    assert twelve.xack(KEYS.feed("12345"), "12345", entries[0][0]) == 1
    assert twelve.xadd(INBOUND, {"bridge_id": "b1", "ticket": "12345678"})
    assert twelve.xrange(f"{INBOUND}:errors") == []
    noperm(lambda: twelve.hgetall(KEYS.call("u-1")))  # calls never handed over
    noperm(lambda: twelve.hgetall(KEYS.bridge("b1")))
    noperm(lambda: twelve.xrange(KEYS.events))  # the full stream
    noperm(lambda: twelve.xrange(INBOUND))  # what others wrote there
    noperm(lambda: twelve.xadd(KEYS.feed("12345"), {"forged": "x"}))
    noperm(lambda: twelve.delete(KEYS.feed("12345")))
    noperm(lambda: twelve.scan())


def test_the_supervisor_reads_everything_and_changes_nothing(
        server: RedisServer, written: redis.Redis) -> None:
    supervisor = as_user(server, "linkgw-supervisor")
    assert supervisor.hgetall(KEYS.bridge("b1"))["citizen_number"] == "13800138000"
    assert len(cast(list[object], supervisor.xrange(KEYS.events))) == 2
    noperm(lambda: supervisor.hset(KEYS.bridge("b1"), "state", "ended"))
    noperm(lambda: supervisor.xadd(INBOUND, {"bridge_id": "b1"}))
    noperm(lambda: supervisor.delete(KEYS.bridge("b1")))
    noperm(lambda: supervisor.keys("*"))
    noperm(lambda: supervisor.get("other:key"))
    noperm(lambda: supervisor.scan())  # other applications' key names
    noperm(lambda: supervisor.randomkey())


def test_a_wrong_password_or_no_password_logs_nobody_in(server: RedisServer) -> None:
    wrong = redis.Redis(host="127.0.0.1", port=server.port, username="linkgw-12345",
                        password="张 三", decode_responses=True)
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    assert "#" in render(ACL.read_text(encoding="utf-8"), "linkgw", PASSWORDS)
    unset = render(ACL.read_text(encoding="utf-8"), "linkgw", {})
    assert "#" not in unset and unset.count("resetpass") == 4


def test_the_file_follows_the_sites_prefix_and_refuses_what_redis_would_misread() -> None:
    text = render(ACL.read_text(encoding="utf-8"), "city-a", {})
    # literals: the rendered rules' text (key patterns for Redis's ACL), not keys
    assert "~city-a:feed:12345" in text and "%W~city-a:tickets:in" in text
    assert "linkgw:" not in text
    for prefix in ("a b", "x*", "", "lab\n"):
        with pytest.raises(AclError):
            render(ACL.read_text(encoding="utf-8"), prefix, {})
    with pytest.raises(AclError):
        render("# a comment Redis would refuse\n" + ACL.read_text(encoding="utf-8"),
               "linkgw", {})
