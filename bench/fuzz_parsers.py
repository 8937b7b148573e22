"""Fuzz the pure parsers: N generated inputs each, no crash allowed.

    python -m bench.fuzz_parsers [N]        (default 100000; make fuzz)

Inputs are random bytes, and real AGI/AMI transcripts with random bytes inserted,
deleted or flipped. A parser may only answer with a value or with its own protocol
error (AgiProtocolError for AGI; the AMI parser never raises). Anything else is a
crash: the input is printed and the run exits 1. Seeded, so a run can be repeated.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

from gateway.agi.codec import ReplyParser, parse_env
from gateway.agi.errors import AgiProtocolError
from gateway.ami.codec import AmiParser
from gateway.testing import agi_env

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


TARGETS: list[tuple[str, Callable[[bytes], None], bytes]] = [
    ("AGI env block", env, AGI_ENV),
    ("AGI replies", replies, AGI_REPLIES),
    ("AMI messages", ami, AMI),
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
