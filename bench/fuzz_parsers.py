"""Fuzz the parsers and readers of outside bytes: N generated inputs each.

    python -m bench.fuzz_parsers [N]        (default 100000; make fuzz)

- AGI env block, AGI replies, AMI messages: random bytes, and real transcripts with
  random bytes inserted, deleted or flipped. A parser may only answer with a value or
  with its own protocol error (AgiProtocolError for AGI; the AMI parser never raises).
- The spool reader: files of real changes (Chinese names, U+2028, U+2029, U+0085, CR LF
  in values) torn at any byte, with garbage lines (bytes, broken UTF-8, other line
  separators) between them. No crash, and **no valid line lost**: every change whose
  line is whole comes back, in order.
- The digit keeper's question parser and the digit lines a program reads: only a
  uniqueid of safe ASCII, or a digit a channel can type, comes out.
- The names of day indexes read back from Redis (``linkgw retention``): any name, torn,
  not UTF-8, ``../`` inside; only a real date comes out as a day, and its export file is
  that day's own in the export folder.
- The digit keeper's socket: a real keeper on a real Unix socket, any bytes sent in any
  pieces: it answers ERR, a well-formed answer, or waits; it never raises and keeps no
  connection that hung up.
- The inbound ticket entry handler: entries of random fields (bytes, not UTF-8, huge,
  empty) through ``InboundTickets.handle`` (a desk that checks the bridge id as the real
  one does; the real desk is tested on Redis). No exception escapes, and every entry is
  acknowledged, applied or refused with a copy on the errors stream.

Anything else is a crash: the input is printed and the run exits 1. Seeded, so a run
can be repeated.
"""

from __future__ import annotations

import fnmatch
import random
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.agi.codec import ReplyParser, parse_env
from gateway.agi.errors import AgiProtocolError
from gateway.ami.codec import AmiParser
from gateway.bridge.change import Change, Index
from gateway.bridge.spool import parse_lines
from gateway.lab.fakes import agi_env, null_log
from gateway.process.keeper_wire import DIGITS, parse_digit_line, parse_question
from gateway.records.inbound import InboundTickets
from gateway.records.ticket_changes import check_bridge_id

AGI_ENV = agi_env("onekey", callerid="13800138000", calleridname="张三",
                  args=("transfer", "PJSIP/citizen-00000000"))
AGI_REPLIES = (b"200 result=1 (PJSIP/citizen-00000000)\n200 result=0\n200 result=-1\n"
               b"200 result=101 (timeout)\n510 Invalid or unknown command\n"
               b"511 Command Not Permitted on a dead channel or intercept routine\n"
               b"520-Invalid command syntax.  Proper usage follows:\n Usage: GET DATA\n"
               b"520 End of proper usage.\nHANGUP\n100 result=0 Trying...\n")
AMI = (b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nActionID: gw-1\r\n"
       b"Message: Dual Redirect successful\r\n\r\nEvent: ConfbridgeJoin\r\nConference: "
       b"linkgw-20261128195037abcdef\r\nChannel: PJSIP/citizen-00000000\r\nUniqueid: 1.0\r\n"
       b"\r\nEvent: OriginateResponse\r\nResponse: Failure\r\nReason: 0\r\n\r\n")


def mutate(rng: random.Random, seed: bytes) -> bytes:
    if rng.random() < 0.2:
        return rng.randbytes(rng.randrange(0, 300))
    data = bytearray(seed)
    for _ in range(rng.randrange(1, 8)):
        op, at = rng.randrange(3), rng.randrange(len(data) + 1)
        if op == 0:
            data[at:at] = rng.randbytes(rng.randrange(1, 12))
        elif op == 1:
            del data[at:at + rng.randrange(1, 12)]
        elif data:
            data[at % len(data)] ^= 1 << rng.randrange(8)
    return bytes(data)


def env(data: bytes) -> None:
    try:
        parse_env(data.split(b"\n"))
    except AgiProtocolError:
        pass


def replies(data: bytes) -> None:
    parser = ReplyParser()
    for line in data.split(b"\n"):
        try:
            parser.feed(line)
        except AgiProtocolError:
            parser = ReplyParser()


def ami(data: bytes) -> None:
    parser = AmiParser()
    cut = len(data) // 2
    parser.feed(data[:cut])
    parser.feed(data[cut:])


NAMES = ("张三", "Zhang\u2028San", "Li\u0085Si", "王\u2029五", 'a "b"\r\nEXEC Hangup', "")
GARBAGE = (b"\xe5\xbc", b"{", b"\xc3\x28", "\u2028".encode(), b"\r", b"null", b"[]",
           b'{"id": 1}', b"\x00" * 3)


def spool(rng: random.Random) -> None:
    """A spool file as a crash or a full disk leaves it; every whole line must come back."""
    changes = [Change(f"bridge:b{n}", "e", 1_795_895_437.0 + n,
                      {"citizen_name": rng.choice(NAMES), "n": str(n)},
                      (Index("live", f"b{n}", float(n)),), {"why": rng.choice(NAMES)})
               for n in range(rng.randrange(1, 8))]
    data, whole = b"", []
    for change in changes:
        if rng.random() < 0.3:
            data += rng.choice(GARBAGE) + rng.randbytes(rng.randrange(0, 6)).replace(
                b"\n", b"") + b"\n"
        data += change.to_json().encode() + b"\n"
        whole.append(change.id)
    cut = rng.randrange(len(data) + 1)
    torn = data[:cut]
    complete = torn[:torn.rfind(b"\n") + 1]  # the lines that survived whole
    expected = [c.id for c in changes if c.to_json().encode() + b"\n" in complete]
    got = [c.id for c in parse_lines(torn, null_log())]
    if got != expected:
        raise AssertionError(f"lost lines: expected {expected}, got {got}")


class _Stream:
    """What InboundTickets asks of Redis for one entry."""

    def __init__(self) -> None:
        self.acked: list[str] = []
        self.copied: list[dict[Any, Any]] = []

    def xack(self, stream: str, group: str, entry_id: str) -> None:
        self.acked.append(entry_id)

    def xadd(self, stream: str, fields: dict[Any, Any], **_: Any) -> None:
        if not all(isinstance(v, str) and len(v) <= 256 for v in fields.values()):
            raise AssertionError(f"an uncut or non-text copy: {fields!r}"[:300])
        self.copied.append(fields)


class _Desk:
    def bridge(self, bridge_id: str) -> dict[str, str]:
        check_bridge_id(bridge_id)
        return {"direction": "110->12345", "dialing_target": "PJSIP/12345"}  # 12345's

    def apply_message(self, fields: dict[str, str], via: str) -> dict[str, str]:
        check_bridge_id(fields.get("bridge_id", ""))
        return {}


def inbound(rng: random.Random) -> None:
    stream = _Stream()
    handler = InboundTickets(stream, _Desk(), "in", "gw-fuzz", null_log())  # type: ignore[arg-type]
    keys = [b"bridge_id", b"ticket", b"status", b"note", b"incident", "张".encode()[:2]]
    raw = {rng.choice(keys) + rng.randbytes(rng.randrange(0, 2)):
           rng.randbytes(rng.choice((0, 3, 40, 70_000)))
           for _ in range(rng.randrange(0, 6))}
    if rng.random() < 0.3:
        raw[b"bridge_id"] = b"20261128195037abcdef"
    handler.handle("1-1", raw)
    if stream.acked != ["1-1"] or handler.applied + handler.refused != 1:
        raise AssertionError(f"entry not settled: acked={stream.acked}")
    if handler.refused != len(stream.copied):
        raise AssertionError("a refused entry without its copy")


KEEPER = (b"linkgw-a582951b-1795934916.33\nH * 1795934916.120\nH 1 1795934916.300\n.\n"
          b"D 1 1795934916.480\n")


def keeper(data: bytes) -> None:
    """The digit keeper's two sides: a question it reads, the lines a program reads.
    Only a uniqueid of safe ASCII, or a digit the keeper can send, may come out."""
    for line in data.split(b"\n"):
        asked = parse_question(line)
        if asked is not None and not (asked.isascii() and asked.isprintable()
                                      and " " not in asked):
            raise AssertionError(f"question {asked!r} let through")
        for kind in (b"H", b"D"):
            item = parse_digit_line(line, kind)
            if item is not None and item[0] not in DIGITS:
                raise AssertionError(f"digit {item!r} let through")


class _Days:
    """A Redis whose day indexes are named by an attacker with the gateway's user."""

    def __init__(self, names: list[bytes]) -> None:
        self.names = names

    def scan_iter(self, match: str, count: int) -> list[bytes]:
        """SCAN MATCH's glob (as fnmatch reads it, byte for byte)."""
        return [n for n in self.names if fnmatch.fnmatchcase(n.decode("latin-1"), match)]


def _day_name(rng: random.Random) -> bytes:
    day = rng.choice((b"2026-01-05", b"2026-02-30", b"../../x/owned", b"2026-01-05/../x",
                      b"0001-01-01", "２０２６-01-05".encode(), b"2026-01-05\n",
                      "2026-01-05\u2028".encode(), b"\xff\xfe", b""))
    if rng.random() < 0.5:
        day = mutate(rng, day)
    kind = rng.choice((b"day:", b"calls:day:", b"workorders:day:", b"", b"day:day:"))
    return b"linkgw:idx:" + kind + day


def retention_names(rng: random.Random) -> None:
    """Day index names from Redis become file names only as real dates: whatever the
    names, every day found is one, and its export file is the day's own in export_dir."""
    from gateway.records.retention import Retention, is_day

    export = Path("/nonexistent/linkgw-fuzz/export")
    names = [_day_name(rng) for _ in range(rng.randrange(1, 6))]
    refused: list[str] = []
    retention = Retention(_Days(names), "linkgw", export, log=refused.append)  # type: ignore[arg-type]
    days = retention.days()
    for day in days:
        path = retention.export_path(day)
        if not is_day(day) or path.parent != export or path.name != f"{day}.jsonl":
            raise AssertionError(f"day {day!r} names {path}")
    if len(days) + len(refused) > len(names):
        raise AssertionError(f"{len(names)} names, {len(days)} days, {len(refused)} refused")


def keeper_socket(rng: random.Random) -> None:
    """A program, or anyone who can reach the socket, sends any bytes in any pieces: the
    keeper answers ERR, a well-formed answer, or waits for the rest; it never raises
    and never keeps a connection that has gone."""
    rig = _keeper_rig()
    keeper, path = rig
    question = rng.choice((b"linkgw-a582951b-1795934916.33\n", b"u-1\n", b"\n",
                           "张三\n".encode(), b"x" * 200 + b"\n", b"u\r\nEXEC Hangup\n"))
    data = mutate(rng, question) if rng.random() < 0.7 else question
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(str(path))
        keeper.step(0.5)  # accepts
        at = 0
        while at < len(data):
            piece = rng.randrange(1, 9)
            try:
                sock.sendall(data[at:at + piece])
            except (BrokenPipeError, ConnectionResetError):
                break  # refused and closed before the sender was done
            at += piece
            keeper.step(0.0)
        keeper.step(0.0)
        sock.setblocking(False)
        try:
            answer = sock.recv(65536)
        except BlockingIOError:
            answer = b""  # still waiting for the end of its question
        except ConnectionResetError:
            answer = b"ERR\n"  # closed with the answer unread: it was the refusal
    finally:
        sock.close()
    keeper.step(0.0)  # the program hung up
    if answer not in (b"", b"ERR\n", b".\n") and not answer.startswith(b"H "):
        raise AssertionError(f"answer {answer!r} to {data!r}")
    if keeper.clients:
        raise AssertionError(f"{len(keeper.clients)} connection(s) kept after hang-up")


_RIG: list[Any] = []


def _keeper_rig() -> tuple[Any, Path]:
    """One keeper on a real Unix socket (in a private temporary folder) for the run,
    its AMI a socket pair that says nothing."""
    if not _RIG:
        from gateway.process.keeper import Keeper, _listen
        from gateway.process.keeper_wire import paths

        folder = Path(tempfile.mkdtemp(prefix="linkgw-fuzz-"))
        ours, theirs = socket.socketpair()
        _, socket_path = paths(str(folder))

        class Quiet:
            def fileno(self) -> int:
                return ours.fileno()

            def pump(self) -> list[Any]:
                return []

            def take_events(self) -> list[Any]:
                return []

            def action(self, name: str, headers: Any = (), timeout: Any = None) -> Any:
                raise AssertionError("no digit, no question to Asterisk")

        _RIG.extend([Keeper(Quiet(), _listen(socket_path), idle_exit=1e9), socket_path,
                     theirs])
    return _RIG[0], _RIG[1]


TARGETS: list[tuple[str, Callable[[bytes], None], bytes]] = [
    ("AGI env block", env, AGI_ENV),
    ("AGI replies", replies, AGI_REPLIES),
    ("AMI messages", ami, AMI),
    ("digit keeper", keeper, KEEPER),
]
GENERATED: list[tuple[str, Callable[[random.Random], None], str]] = [
    ("spool reader", spool, "no valid line lost"),
    ("inbound entries", inbound, "every entry settled"),
    ("retention names", retention_names, "only real dates, inside export_dir"),
    ("keeper socket", keeper_socket, "no connection kept"),
]


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    rng = random.Random(20261128)
    for name, parse, seed in TARGETS:
        started = time.perf_counter()
        for _ in range(count):
            data = mutate(rng, seed)
            try:
                parse(data)
            except Exception as exc:
                print(f"CRASH in {name}: {type(exc).__name__}: {exc}\ninput: {data!r}")
                return 1
        print(f"{name:<16} {count} inputs, no crash ({time.perf_counter() - started:.1f} s)")
    for name, run, kept in GENERATED:
        started = time.perf_counter()
        for n in range(count):
            state = rng.getstate()
            try:
                run(rng)
            except Exception as exc:
                print(f"CRASH in {name} (input {n}): {type(exc).__name__}: {exc}")
                rng.setstate(state)
                return 1
        print(f"{name:<16} {count} inputs, no crash, {kept} "
              f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
