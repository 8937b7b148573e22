"""The push across the boundary, with real processes: ``linkgw push`` reads 12345's feed
from a real redis-server and POSTs to the example receiver (gateway/lab/receiver.py)
over HTTPS with the lab's own CA. The receiver is killed and started again, answers
500, hangs, resets the connection, or shows a certificate of another CA."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from gateway.bridge.change import Change
from gateway.bridge.redis_store import apply_sync
from gateway.lab.ports import free_ports
from gateway.lab.process import wait_until
from gateway.lab.services import PushProcess, ReceiverProcess, RedisServer
from gateway.lab.tls import ServerFiles, make_ca_and_server
from gateway.push.outbox import GROUP
from gateway.schema import Keys, bridge_record

SECRET = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> tuple[ServerFiles, ServerFiles]:
    folder = tmp_path_factory.mktemp("ca")
    return make_ca_and_server(folder, "ours"), make_ca_and_server(folder, "theirs")


class Push:
    """One test's prefix on the shared Redis, its receiver and its push process."""

    def __init__(self, server: RedisServer, folder: Path, ca: ServerFiles,
                 dead_after: float = 3600.0) -> None:
        self.prefix = f"t{secrets.token_hex(4)}"
        self.redis: redis.Redis = server.client()
        self.folder = folder
        self.port = free_ports(1)[0]
        self.out = folder / "received.jsonl"
        self.config = folder / "gateway.yaml"
        self.config.write_text(
            "ami:\n  secret_env: LINKGW_AMI_SECRET\n"
            f"redis:\n  url: \"{server.url}\"\n  prefix: {self.prefix}\n"
            "http:\n  listen: \"\"\n"
            "cluster:\n  lease_ttl: 2.0\n"
            f"push:\n  url: \"https://127.0.0.1:{self.port}/linkgw\"\n"
            "  secret_env: LINKGW_PUSH_SECRET\n"
            f"  ca_file: \"{ca.ca}\"\n  timeout: 1.0\n  retry_initial: 0.2\n"
            f"  retry_max: 0.5\n  dead_after: {dead_after}\n  poll: 0.05\n"
            "log:\n  format: json\n", encoding="utf-8")
        self.env = {"LINKGW_PUSH_SECRET": SECRET, "LINKGW_AMI_SECRET": "unused-here"}
        self.pusher = PushProcess(self.config, self.env, folder / "push.log")
        self.receivers: list[ReceiverProcess] = []

    def receiver(self, files: ServerFiles, mode: str = "ok") -> ReceiverProcess:
        r = ReceiverProcess(self.port, self.out, SECRET, self.folder, files.cert, files.key)
        r.start(mode)
        self.receivers.append(r)
        return r

    def change(self, bridge: str, n: int, name: str = "张三") -> None:
        """One change of a bridge handed to 12345: the gateway's own Lua step writes the
        record and 12345's feed (the outbox) together."""
        apply_sync(self.redis, self.prefix, Change(
            bridge_record(bridge), f"step_{n}", time.time(),
            {"citizen_name": name, "attempt": str(n)}, feed="12345"))

    def group(self) -> dict[str, Any]:
        groups = self.redis.xinfo_groups(Keys(self.prefix).feed("12345"))
        return next((g for g in groups if g["name"] == GROUP), {})

    def close(self) -> None:
        self.pusher.stop()
        for r in self.receivers:
            r.stop()


@pytest.fixture
def push(redis_server: RedisServer, tmp_path: Path,
         cas: tuple[ServerFiles, ServerFiles]) -> Iterator[Push]:
    p = Push(redis_server, tmp_path, cas[0])
    yield p
    p.close()


def _per_bridge_in_order(events: list[dict[str, Any]]) -> None:
    seen: dict[str, list[int]] = {}
    for e in events:
        seen.setdefault(e["bridge_id"], []).append(int(e["fields"]["attempt"]))
    for bridge, steps in seen.items():
        assert steps == sorted(steps), (bridge, steps)


def test_a_receiver_killed_mid_stream_gets_every_event_in_order(
        push: Push, cas: tuple[ServerFiles, ServerFiles]) -> None:
    """30 changes of three bridges, pushed; the receiver is SIGKILLed after some, 30 more
    are written while it is down, it comes back: each of the 60 arrives (at least
    once), in order per bridge, with a valid signature, and the outbox is empty."""
    for n in range(30):
        push.change(f"b{n % 3}", n, name="张三\u2028\r\nx")
    receiver = push.receiver(cas[0])
    push.pusher.start()
    wait_until(lambda: len(receiver.events()) >= 10, 20, "ten events received")
    receiver.kill()
    for n in range(30, 60):
        push.change(f"b{n % 3}", n)
    time.sleep(1.0)  # the pusher meets a dead receiver and retries
    assert '"push.failed"' in push.pusher.log()
    receiver = push.receiver(cas[0])
    wait_until(lambda: len(receiver.events()) == 60, 30, "all 60 events received")
    events = receiver.events()
    assert sorted(int(e["fields"]["attempt"]) for e in events) == list(range(60))
    _per_bridge_in_order(events)
    assert events[0]["fields"]["citizen_name"] == "张三\u2028\r\nx"
    assert {e["event"] for e in events} == {f"step_{n}" for n in range(60)}
    wait_until(lambda: push.group().get("pending") == 0 and push.group().get("lag") == 0,
               5, "nothing left in the outbox")


@pytest.mark.parametrize("mode", ["500", "hang", "reset", "other-ca"])
def test_a_broken_receiver_keeps_the_event_in_the_outbox_until_a_good_one_answers(
        push: Push, cas: tuple[ServerFiles, ServerFiles], mode: str) -> None:
    """Each failure is logged and retried; nothing leaves the outbox; once the receiver
    answers properly, the event arrives."""
    push.change("b1", 1)
    bad = push.receiver(cas[1], "ok") if mode == "other-ca" else push.receiver(cas[0], mode)
    push.pusher.start()
    wait_until(lambda: push.pusher.log().count('"push.failed"') >= 1, 20, "a failed try")
    time.sleep(1.5)
    assert bad.events() == []
    assert push.group().get("pending") == 1  # in flight, never acknowledged
    log = push.pusher.log()
    expected = {"500": "answered 500", "hang": "Cancelled", "reset": "ResponseNeverReceived",
                "other-ca": "SSL"}[mode]
    assert expected in log, log[-2000:]
    bad.stop()
    good = push.receiver(cas[0])
    wait_until(lambda: len(good.events()) == 1, 20, "the event delivered")
    assert good.events()[0]["event"] == "step_1"


def test_an_event_given_up_on_is_listed_and_can_be_sent_again(
        redis_server: RedisServer, tmp_path: Path,
        cas: tuple[ServerFiles, ServerFiles]) -> None:
    """With ``dead_after`` 2 s and a receiver that answers 500, the event goes to the
    dead letters; ``linkgw outbox list`` shows it with why; ``retry`` sends it again
    once the receiver is well; ``drop`` removes one."""
    push = Push(redis_server, tmp_path, cas[0], dead_after=2.0)
    try:
        push.change("b1", 1)
        failing = push.receiver(cas[0], "500")
        push.pusher.start()
        wait_until(lambda: '"push.dead_letter"' in push.pusher.log(), 20, "a dead letter")
        listed = _outbox(push, "list")
        assert "dead letters (1):" in listed and "answered 500" in listed
        assert "event='step_1'" in listed
        failing.stop()
        good = push.receiver(cas[0])
        assert _outbox(push, "retry") == "1 dead letter(s) queued again\n"
        wait_until(lambda: len(good.events()) == 1, 20, "the dead letter delivered")
        again = good.events()[0]
        entries = cast(list[tuple[str, dict[str, str]]],
                       push.redis.xrange(Keys(push.prefix).feed("12345")))
        first = entries[0][0]
        assert (again["outbox_id"], again["redelivered"]) == (first, True)
        assert "dead letters (0):" in _outbox(push, "list")
        assert _outbox(push, "drop", "0-1", code=1).startswith("no such dead letter")
    finally:
        push.close()


def _outbox(push: Push, *args: str, code: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "gateway", "outbox", "--config",
                           str(push.config), *args], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == code, done.stderr
    return done.stdout


@pytest.mark.parametrize("length", ["-1", "99999999", "", "１２"])
def test_the_example_receiver_reads_no_body_it_cannot_bound(
        tmp_path: Path, length: str) -> None:
    """A Content-Length that is negative, too large, missing or not ASCII digits is
    answered at once, before anything of the body is read (a receiver copied from the
    example cannot be made to buffer an unsigned body)."""
    import socket

    receiver = ReceiverProcess(free_ports(1)[0], tmp_path / "r.jsonl", SECRET, tmp_path)
    receiver.start()
    try:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as conn:
            head = "POST /linkgw HTTP/1.1\r\nHost: x\r\n"
            if length:
                head += f"Content-Length: {length}\r\n"
            conn.sendall((head + "\r\n").encode() + b"x" * 1000)
            answer = conn.recv(200).decode("latin-1")
        assert answer.split(" ")[1] in ("411", "413"), answer
        assert receiver.events() == []
    finally:
        receiver.stop()


def test_a_dead_letter_given_up_on_twice_keeps_its_first_place(
        redis_server: RedisServer) -> None:
    """Dead, sent again with ``linkgw outbox retry``, dead again: the dead letter still
    names the entry's first ``outbox_id``, not the retry stream's."""
    import asyncio

    import redis.asyncio as aredis

    from gateway.push.codec import Entry
    from gateway.push.outbox import RedisOutbox

    keys = Keys(f"t{secrets.token_hex(4)}")

    async def twice() -> list[Any]:
        client = aredis.Redis(host="127.0.0.1", port=redis_server.port)
        outbox = RedisOutbox(client, asyncio.get_running_loop(), keys, "12345")
        first = Entry("1796240000000-0", {b"record": bridge_record("b").encode(),
                                          b"id": b"c1", b"event": b"x"})
        await outbox._dead(first, "answered 413", 3)
        again = Entry("retry:1796249999000-0",
                      {b"record": bridge_record("b").encode(), b"id": b"c1", b"event": b"x",
                       b"outbox_id": b"1796240000000-0"})
        await outbox._dead(again, "answered 413", 3)
        got = await client.xrange(keys.push("dead"))
        await client.aclose()
        return cast(list[Any], got)

    dead = asyncio.run(twice())
    assert [fields[b"outbox_id"] for _, fields in dead] == [b"1796240000000-0"] * 2


def test_a_further_lines_pusher_has_a_lease_of_its_own(redis_server: RedisServer) -> None:
    """12345's pusher holds its lease; 122's pusher (``push.feed: "122"``) takes its own
    at the same time, under its own name, and never 12345's."""
    import asyncio

    import redis.asyncio as aredis

    from gateway.push.outbox import RedisOutbox

    keys = Keys(f"t{secrets.token_hex(4)}")

    async def both() -> tuple[bool, bool, bool, list[str]]:
        client = aredis.Redis(host="127.0.0.1", port=redis_server.port,
                              decode_responses=True)
        twelve = RedisOutbox(client, asyncio.get_running_loop(), keys, "12345")
        traffic = RedisOutbox(client, asyncio.get_running_loop(), keys, "122")
        held = await twelve._take_lease("gw-a", 5.0), await traffic._take_lease("gw-b", 5.0)
        taken_over = await twelve._take_lease("gw-b", 5.0)
        names = sorted(str(k) for k in await client.keys(f"{keys.prefix}:push:*"))
        await client.aclose()
        return held[0], held[1], taken_over, names

    twelve_held, traffic_held, taken_over, names = asyncio.run(both())
    assert (twelve_held, traffic_held, taken_over) == (True, True, False)
    assert names == [f"{keys.prefix}:push:122:lease", f"{keys.prefix}:push:lease"]
