"""sd_notify: exact datagrams on a real socket; readiness on a fake clock."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from gateway.lab.fakes import null_log
from gateway.systemd.notify import Notifier, clean_value, message, socket_address, watchdog_interval
from gateway.systemd.readiness import POLL_SECONDS, Check, Readiness


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A stand-in for systemd's notify socket: a datagram socket bound to a path."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def test_the_message_is_key_value_lines() -> None:
    assert message({"READY": "1", "STATUS": "就绪"}) == "READY=1\nSTATUS=就绪\n".encode()


@pytest.mark.parametrize("hostile", ["x\nREADY=1", "x\rREADY=1", "x\u2028READY=1",
                                     "x\u2029READY=1", "x\u0085READY=1"])
def test_a_line_break_in_a_value_cannot_add_an_assignment(hostile: str) -> None:
    assert message({"STATUS": hostile}) == b"STATUS=x READY=1\n"


def test_control_characters_are_dropped_from_a_value() -> None:
    assert clean_value("a\x00b\x1b[31mc\x7f") == "ab[31mc"


@pytest.mark.parametrize("key", ["", "ready", "A=B", "A\nB", "STATUS "])
def test_a_key_that_is_not_systemds_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a sd_notify key"):
        message({key: "1"})


def test_an_abstract_socket_name_starts_with_a_nul_byte() -> None:
    assert socket_address("@linkgw/notify") == b"\0linkgw/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    with pytest.raises(ValueError, match="neither a path nor @name"):
        socket_address("relative/notify")


def test_the_datagram_reaches_the_socket(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert notifier.send(READY="1", STATUS="ready") is True
    assert received(sock) == [b"READY=1\nSTATUS=ready\n"]


def test_without_a_manager_nothing_is_sent() -> None:
    notifier = Notifier.from_environ({})
    assert notifier.active is False
    assert notifier.send(READY="1") is False
    assert notifier.sent == 0 and notifier.failed == 0


def test_a_gone_manager_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody"))
    assert notifier.send(READY="1") is False
    assert notifier.failed == 1


def test_the_watchdog_pings_at_half_the_interval_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "-5"}) is None
    assert watchdog_interval({}) is None


class Parts:
    def __init__(self) -> None:
        self.ami = self.redis = self.listener = False

    def checks(self) -> list[Check]:
        return [Check("AMI", lambda: self.ami), Check("Redis", lambda: self.redis),
                Check("fastagi listener", lambda: self.listener)]


def test_ready_is_said_once_and_only_when_every_part_is_up(
        manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    clock, parts = Clock(), Parts()
    readiness = Readiness(Notifier(path), parts.checks(), clock, null_log())
    readiness.startService()
    assert received(sock) == [
        b"STATUS=starting, waiting for: AMI, Redis, fastagi listener\n"]
    parts.listener = parts.redis = True
    clock.advance(POLL_SECONDS)
    assert received(sock) == [b"STATUS=starting, waiting for: AMI\n"]
    clock.advance(POLL_SECONDS)
    assert received(sock) == []
    parts.ami = True
    clock.advance(POLL_SECONDS)
    assert received(sock) == [
        b"READY=1\nSTATUS=ready: AMI, Redis and the listeners are up\n"]
    assert readiness.ready is True
    parts.ami = False
    clock.advance(POLL_SECONDS)
    assert received(sock) == [b"STATUS=degraded, down: AMI\n"]
    parts.ami = True
    clock.advance(POLL_SECONDS)
    assert received(sock) == [b"STATUS=ready: AMI, Redis and the listeners are up\n"]
    readiness.stopService()
    assert received(sock) == [b"STOPPING=1\nSTATUS=stopping: finishing AGI sessions\n"]
    assert clock.getDelayedCalls() == []


def test_the_watchdog_is_fed_from_the_clock(manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    clock, parts = Clock(), Parts()
    parts.ami = parts.redis = parts.listener = True
    readiness = Readiness(Notifier(path), parts.checks(), clock, null_log(), watchdog=15.0)
    readiness.startService()
    assert received(sock)[1:] == [b"WATCHDOG=1\n"]
    clock.advance(14.9)
    assert b"WATCHDOG=1\n" not in received(sock)
    clock.advance(0.1)
    assert b"WATCHDOG=1\n" in received(sock)
    readiness.stopService()


def test_a_reload_is_bracketed_and_says_ready_only_if_it_was(
        manager: tuple[socket.socket, str]) -> None:
    sock, path = manager
    readiness = Readiness(Notifier(path), [], Clock(), null_log(), monotonic=lambda: 12.5)
    readiness.status = "starting, waiting for: AMI"
    readiness.reloading()
    readiness.reloaded("config reloaded")  # not ready yet: a reload must not say so
    readiness.ready = True
    readiness.reloading()
    readiness.reloaded("config reloaded")
    assert received(sock) == [
        b"RELOADING=1\nMONOTONIC_USEC=12500000\nSTATUS=reloading\n",
        b"STATUS=starting, waiting for: AMI; config reloaded\n",
        b"RELOADING=1\nMONOTONIC_USEC=12500000\nSTATUS=reloading\n",
        b"READY=1\nSTATUS=ready; config reloaded\n"]
