"""Soak and load through the real lab: many one-key transfers, nothing dropped or lost;
what the gateway and Asterisk cost while conferences run.

    python -m bench.soak [--transfers 1000] [--concurrent 20]       (make bench-soak)

1. Load: ``--concurrent`` transfers held in three-party at once (citizen, call-taker,
   12345 in each conference, as Asterisk's ConfbridgeList shows); the gateway's and
   Asterisk's CPU over 10 s of that, from /proc.
2. Soak: ``--transfers`` one-key transfers, ``--concurrent`` at a time (FastAGI). Each
   citizen must hang up itself: a BYE from Asterisk fails that call in SIPp, and is
   counted as a dropped citizen call. Every transfer must end in Redis as ``handed_off``;
   one that does not is counted as a missing record. Both must be 0.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from bench.agi_cpu import cpu_seconds
from gateway.lab.lab import Lab
from gateway.lab.process import LabError, exit_on_sigterm, wait_until
from gateway.lab.sipp import SippPhone, answer_scenario, citizen_scenario
from gateway.schema import Keys

PREFIX = "1397"  # citizen numbers of the soak: 1397<call number>


def transfers(lab: Lab, calls: int, at_once: int, seat_hold_ms: int, citizen_hold_ms: int,
              prefix: str) -> tuple[SippPhone, SippPhone, SippPhone]:
    agent, seat, citizen = lab.phone("12345"), lab.phone("seat1"), lab.phone("citizen")
    timeout = max(120, calls * 12 // at_once + 60)
    agent.start(answer_scenario("12345", ring_ms=300, hold_ms=citizen_hold_ms + 5000),
                calls=calls, timeout_s=timeout)
    seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=seat_hold_ms, key="*1",
                               key_after_ms=800), calls=calls, timeout_s=timeout)
    stat = ["-trace_stat", "-stf", str(lab.workdir / "sipp" / "citizen-soak.csv"),
            "-fd", "1"]
    citizen.start(citizen_scenario("citizen", prefix + "[call_number]", "110",
                                   hold_ms=citizen_hold_ms, released_ok=False),
                  calls=calls, limit=at_once, rate=at_once, timeout_s=timeout, extra=stat)
    return agent, seat, citizen


def load(lab: Lab, at_once: int) -> None:
    agent, seat, citizen = transfers(lab, at_once, at_once, 30000, 40000, "1396")
    probe = lab.probe
    assert probe is not None

    def three_party() -> bool:
        try:
            _, rooms = probe.action("ConfbridgeListRooms")
        except LabError:  # "No active conferences" is an error to AMI
            return False
        return sum(int(r.get("Parties", "0")) == 3 for r in rooms) >= at_once

    wait_until(three_party, 60, f"{at_once} three-party conferences")
    asterisk = lab.asterisk
    assert asterisk is not None and asterisk.proc is not None
    pids = {"gateway": lab.gateway.proc.pid if lab.gateway.proc else 0,
            "Asterisk": asterisk.proc.pid}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    time.sleep(10)
    for name, pid in pids.items():
        share = (cpu_seconds(pid) - before[name]) / 10 * 100
        print(f"{name + f' CPU, {at_once} three-party conferences':<44} {share:6.1f} % "
              "of one core (10 s)")
    # Every call ends as calls do (the call-taker leaves at 30 s, the citizen hangs up
    # at 40 s), never by killing a phone: Asterisk would retransmit its BYEs of the
    # killed phone's calls to the soak's phones on the same ports, and a SIPp answering
    # phone counts each such stray BYE as one of its calls.
    codes = {p.name: p.wait(90) for p in (citizen, seat, agent)}
    wait_until(lambda: not probe.action("CoreShowChannels")[1], 60, "every call over")
    if any(codes.values()):
        print(f"{'load: phones that failed':<44} {codes}")


def soak(lab: Lab, calls: int, at_once: int) -> tuple[int, int]:
    started = time.monotonic()
    agent, seat, citizen = transfers(lab, calls, at_once, 2000, 9000, PREFIX)
    citizen.wait(calls * 12 // at_once + 120)
    seat.wait(60)
    agent.wait(60)
    ok, failed = sipp_counts_file(lab.workdir / "sipp" / "citizen-soak.csv")
    dropped = calls - ok

    def settled() -> int:
        r = lab.redis_client()
        keys = Keys(lab.config.redis.prefix)
        n = 0
        for key in cast(list[str], r.keys(keys.bridge("*"))):
            record = cast(dict[str, str], r.hgetall(key))
            if record.get("citizen_number", "").startswith(PREFIX) and \
                    record.get("state") == "ended" and record.get("outcome") == "handed_off":
                n += 1
        return n

    try:
        wait_until(lambda: settled() >= calls, 60, "every record ended")
    except Exception:  # counted below
        pass
    missing = calls - settled()
    print(f"{'soak':<44} {calls} transfers, {at_once} at a time, "
          f"{time.monotonic() - started:.0f} s")
    print(f"{'dropped citizen calls':<44} {dropped}   (SIPp: {ok} ended by the citizen, "
          f"{failed} failed)")
    print(f"{'missing records':<44} {missing}")
    return dropped, missing


def sipp_counts_file(path: Path) -> tuple[int, int]:
    rows = list(csv.reader(path.open(), delimiter=";"))
    head, last = rows[0], rows[-1]
    return (int(last[head.index("SuccessfulCall(C)")]),
            int(last[head.index("FailedCall(C)")]))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the lab and its logs here")
    args = parser.parse_args(argv[1:])
    print("soak and load through the lab (FastAGI)")
    print("run: make bench-soak   (or .venv/bin/python -m bench.soak)\n")
    with tempfile.TemporaryDirectory(prefix="linkgw-soak-") as tmp, \
            Lab(args.keep or Path(tmp)) as lab:
        if not args.skip_load:
            load(lab, args.concurrent)
        dropped, missing = soak(lab, args.transfers, args.concurrent)
    return 0 if dropped == missing == 0 else 1


if __name__ == "__main__":
    exit_on_sigterm()
    sys.exit(main(sys.argv))
