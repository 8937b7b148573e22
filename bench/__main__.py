"""Benchmarks: ``python -m bench`` (or ``make bench``). Prints figures; checks only that
the work measured was really done (every message parsed whole).

- AGI reply lines parsed per second, AMI events parsed per second (a real one, and the
  worst case of the caller-ID rule);
- transfer state-machine edges per second;
- whole bridges per second through the transfer service (the key's AGI script → AMI
  bytes through the real client → the bridge log's in-memory store), Asterisk faked at
  the wire and Redis in memory: the gateway's own cost;
- memory held per live bridge (tracemalloc);
- process mode's digit keeper: digits per second through its book, and its memory
  when full (every channel it keeps with every digit it keeps).
"""

from __future__ import annotations

import os
import platform
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.agi.codec import ReplyParser
from gateway.ami.codec import MAX_CALLER_ID_LINES, AmiParser
from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.catalogue import load_categories
from gateway.config import TransferConfig
from gateway.lab.fakes import ChannelDouble, WireAsterisk, null_log
from gateway.process.keeper import KEEP_CHANNELS, KEEP_DIGITS, DigitBook
from gateway.transfer.events import AgentAnswered, Joined, Left
from gateway.transfer.phase import Phase, Role, State
from gateway.transfer.scripts import make_scripts
from gateway.transfer.services import TransferService
from gateway.transfer.table import transition


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


#: A ConfbridgeJoin as Asterisk 22 writes it (a whole channel snapshot).
CONFBRIDGE_JOIN = (
    b"Event: ConfbridgeJoin\r\nPrivilege: call,all\r\nConference: linkgw-20261128195037abcdef"
    b"\r\nBridgeUniqueid: 5c6e2f2e-1c1b-4f3e-9d7e-0a1b2c3d4e5f\r\nBridgeType: base\r\n"
    b"BridgeTechnology: softmix\r\nBridgeCreator: ConfBridge\r\nBridgeName: linkgw-2026"
    b"1128195037abcdef\r\nBridgeNumChannels: 2\r\nBridgeVideoSourceMode: none\r\n"
    b"Channel: PJSIP/citizen-00000000\r\nChannelState: 6\r\nChannelStateDesc: Up\r\n"
    b"CallerIDNum: 13800138000\r\nCallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\r\n"
    b"ConnectedLineNum: 110\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\n"
    b"AccountCode: \r\nContext: linkgw-join-citizen\r\nExten: 20261128195037abcdef\r\n"
    b"Priority: 1\r\nUniqueid: 1795895437.0\r\nLinkedid: 1795895437.0\r\n"
    b"Admin: No\r\nMuted: No\r\n\r\n")
#: The worst case for the caller-ID rule: a caller ID as the last header, so the lines
#: after it are held, then read again.
CALLER_ID_LAST = (b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: Probe\r\n"
                  b"Uniqueid: 1795.0\r\nCallerIDNum: 13800138000\r\n\r\n")


def ami_parse(message: bytes) -> Callable[[int], None]:
    def run(n: int) -> None:
        parser = AmiParser()
        parser.feed(b"Asterisk Call Manager/9.0.0\r\n")
        got = 0
        for _ in range(n // 100):
            got += len(parser.feed(message * 100))
        got += len(parser.feed(b"\r\n" * (MAX_CALLER_ID_LINES + 1)))  # what is still held
        assert got == n // 100 * 100, got  # every message came out whole
    return run


def edges(n: int) -> None:
    p = Phase()
    for _ in range(n // 4):
        transition(p, AgentAnswered(1.0, "PJSIP/x-1", "b-a0"))
        transition(replace(p, state=State.ANSWERED), Joined(2.0, Role.CITIZEN))
        transition(replace(p, state=State.THREE_PARTY), Left(3.0, Role.SEAT))
        transition(replace(p, state=State.HANDED_OFF), Left(4.0, Role.CITIZEN))


class Rig:
    """The transfer service with Asterisk faked at the AMI wire (real client, bytes in
    and out) and the in-memory store: the gateway's own cost per bridge."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_795_895_437)
        ids = iter(range(10**9))
        self.asterisk = WireAsterisk(self.clock)
        self.store = MemoryStore()
        self.service = TransferService(
            self.asterisk.client, BridgeLog(self.store, clock=self.clock, log=null_log()),
            TransferConfig(), clock=self.clock, log=null_log(),
            catalogue=load_categories(Path(__file__).parents[1] / "config/categories.yaml"),
            new_id=lambda _: f"20261128195037{next(ids):06x}")
        self.onekey = make_scripts(self.service)["onekey"]

    def key(self, i: int) -> str:
        """The key pressed, the Originate queued, code 101 typed (AMI's DTMFEnd): the
        key's AGI has answered with the bridge id."""
        citizen, seat = f"PJSIP/citizen-{i:08x}", f"PJSIP/seat1-{i:08x}"
        session = ChannelDouble(seat, f"s{i}", ("transfer", citizen), {
            "UNIQUEID": f"s{i}", "CHANNEL(endpoint)": "seat1", "LINKGW_SIDE": "110",
            f"IMPORT({citizen},UNIQUEID)": f"c{i}",
            f"IMPORT({citizen},CALLERID(num))": "13800138000"})
        defer.ensureDeferred(self.onekey(session))
        self.asterisk.reply(self.asterisk.pending("Originate")[0],
                            Message="Originate successfully queued")
        for digit in "101":
            self.asterisk.event("DTMFEnd", Channel=seat, Uniqueid=f"s{i}", Digit=digit,
                                Direction="Received")
        for action in self.asterisk.pending():  # the citizen's channel marked, …
            self.asterisk.reply(action)
        return session.set["LINKGW_ANSWER"].split("|")[1]


def bridges(n: int) -> None:
    rig = Rig()
    a = rig.asterisk
    for i in range(n):
        bid = rig.key(i)
        conf, seat = f"linkgw-{bid}", f"PJSIP/seat1-{i:08x}"
        a.event("Newchannel", Uniqueid=f"{bid}-a0", Channel="PJSIP/12345-1")
        a.event("OriginateResponse", Response="Success", Uniqueid=f"{bid}-a0",
                Channel="PJSIP/12345-1")
        a.event("UserEvent", UserEvent="LinkgwKeyDone", Bridge=bid, Code="101",
                Channel=seat)
        a.event("Unhold", Channel=seat, Uniqueid=f"s{i}")
        a.reply(a.pending("Redirect")[0])
        a.event("ConfbridgeJoin", Conference=conf, Uniqueid=f"{bid}-a0")
        a.event("ConfbridgeJoin", Conference=conf, Uniqueid=f"s{i}")
        a.event("ConfbridgeJoin", Conference=conf, Uniqueid=f"c{i}")
        a.event("ConfbridgeLeave", Conference=conf, Uniqueid=f"s{i}")
        for action in a.pending():
            a.reply(action)
        a.event("ConfbridgeLeave", Conference=conf, Uniqueid=f"c{i}")
        a.event("ConfbridgeLeave", Conference=conf, Uniqueid=f"{bid}-a0")
        for action in a.pending():
            a.reply(action)
        if i % 100 == 99:  # time passes: ended bridges are let go (the fake clock
            rig.clock.advance(61.0)  # sorts every pending call, a real reactor does not)
    live = rig.service.live()
    outcomes = {r.get("outcome") for r in rig.store.records.values() if "outcome" in r}
    assert outcomes == {"handed_off"} and not live, (outcomes, len(live))  # really done


def memory_per_bridge(n: int = 2000) -> None:
    rig = Rig()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(n):
        rig.key(i)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"{'memory per live bridge (in the service)':<44} {grown / n / 1024:>12.1f} KiB"
          f"   ({n:,} bridges; the in-memory store's copy included)")


def keeper_digits(n: int) -> None:
    book = DigitBook()
    for i in range(n):
        book.digit(f"linkgw-a582951b-1795934916.{i % 5000}", "0123456789*#"[i % 12], i)


def keeper_memory() -> None:
    book = DigitBook()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(KEEP_CHANNELS * KEEP_DIGITS):
        book.digit(f"linkgw-a582951b-1795934916.{i % KEEP_CHANNELS}", "7", 1795934916.0 + i)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(book.typed) == KEEP_CHANNELS
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"{'digit keeper memory, full':<44} {grown / 2**20:>12.1f} MiB"
          f"   ({KEEP_CHANNELS:,} channels × {KEEP_DIGITS} digits)")


def main() -> int:
    print(f"linkgw benchmarks — {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print("run: make bench   (or .venv/bin/python -m bench)\n")
    rate("AGI reply lines parsed", "lines", 300_000, agi_replies)
    rate("AMI events parsed (Asterisk 22 ConfbridgeJoin)", "events", 100_000,
         ami_parse(CONFBRIDGE_JOIN))
    rate("AMI events parsed (worst case: caller ID last)", "events", 20_000,
         ami_parse(CALLER_ID_LAST))
    rate("state-machine edges", "edges", 400_000, edges)
    rate("bridges through the transfer service", "bridges", 5_000, bridges)
    memory_per_bridge()
    rate("digits through the digit keeper's book", "digits", 300_000, keeper_digits)
    keeper_memory()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
