"""Benchmarks: ``python -m bench`` (or ``make bench``). Prints figures, asserts nothing.

- AGI reply lines parsed per second, AMI messages parsed per second;
- transfer state-machine edges per second;
- whole bridges per second through the transfer service (key press → AMI events → the
  bridge log's in-memory store), with fakes for AMI and Redis: the gateway's own cost;
- memory held per live bridge (tracemalloc).
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
from collections.abc import Callable

from twisted.internet.task import Clock

from gateway.agi.codec import ReplyParser
from gateway.ami.codec import AmiParser
from gateway.bridge.log import BridgeLog
from gateway.bridge.state import AgentAnswered, Context, Left, Redirected, Role, State, transition
from gateway.bridge.store import MemoryStore
from gateway.config import TransferConfig
from gateway.testing import FakeAmi, NullLog
from gateway.transfer.service import Party, TransferService


def rate(name: str, unit: str, n: int, fn: Callable[[int], None]) -> None:
    started = time.perf_counter()
    fn(n)
    elapsed = time.perf_counter() - started
    print(f"{name:<44} {n / elapsed:>12,.0f} {unit}/s   ({n:,} in {elapsed:.2f} s)")


def agi_replies(n: int) -> None:
    parser = ReplyParser()
    line = b"200 result=1 (PJSIP/citizen-00000000)\n"
    for _ in range(n):
        parser.feed(line)


def ami_messages(n: int) -> None:
    parser = AmiParser()
    parser.feed(b"Asterisk Call Manager/9.0.0\r\n")
    message = (b"Event: ConfbridgeJoin\r\nPrivilege: call,all\r\nConference: linkgw-2026112"
               b"8195037abcdef\r\nChannel: PJSIP/citizen-00000000\r\nUniqueid: 1795.0\r\n"
               b"Linkedid: 1795.0\r\nCallerIDNum: 13800138000\r\n\r\n")
    for _ in range(n // 100):
        parser.feed(message * 100)


def edges(n: int) -> None:
    ctx = Context()
    for _ in range(n // 4):
        transition(State.REQUESTED, Redirected(1.0), ctx)
        transition(State.DIALING, AgentAnswered(2.0, "PJSIP/x-1", "b-a0"), ctx)
        transition(State.THREE_PARTY, Left(3.0, Role.SEAT), ctx)
        transition(State.HANDED_OFF, Left(4.0, Role.CITIZEN), ctx)


def service() -> tuple[TransferService, FakeAmi, Clock]:
    clock, ami, store = Clock(), FakeAmi(), MemoryStore()
    clock.advance(1_795_895_437)
    ids = iter(range(10**9))
    svc = TransferService(ami, BridgeLog(store, clock=clock, log=NullLog()),
                          TransferConfig(), clock=clock, log=NullLog(),
                          new_id=lambda _: f"20261128195037{next(ids):06x}")
    return svc, ami, clock


def bridges(n: int) -> None:
    svc, ami, _clock = service()
    for i in range(n):
        b = svc.request(Party(f"PJSIP/citizen-{i}", f"c{i}", number="13800138000"),
                        Party(f"PJSIP/seat1-{i}", f"s{i}", endpoint="seat1"))
        svc.start(b.id)
        ami.sent[-1].succeed()
        conf = f"linkgw-{b.id}"
        ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid=f"c{i}")
        ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid=f"s{i}")
        ami.emit("OriginateResponse", Response="Success", Uniqueid=f"{b.id}-a0")
        ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid=f"s{i}")
        ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid=f"c{i}")
        ami.emit("ConfbridgeEnd", Conference=conf)
        ami.sent.clear()


def memory_per_bridge(n: int = 2000) -> None:
    svc, _, _ = service()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(n):
        svc.request(Party(f"PJSIP/citizen-{i}", f"c{i}", number="13800138000"),
                    Party(f"PJSIP/seat1-{i}", f"s{i}", endpoint="seat1"))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"{'memory per live bridge (in the service)':<44} {grown / n / 1024:>12.1f} KiB"
          f"   ({n:,} bridges; the in-memory store's copy included)")


def main() -> int:
    print(f"linkgw benchmarks — {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print("run: make bench   (or .venv/bin/python -m bench)\n")
    rate("AGI reply lines parsed", "lines", 300_000, agi_replies)
    rate("AMI messages parsed", "messages", 100_000, ami_messages)
    rate("state-machine edges", "edges", 400_000, edges)
    rate("bridges through the transfer service", "bridges", 5_000, bridges)
    memory_per_bridge()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
