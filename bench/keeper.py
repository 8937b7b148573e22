"""Process mode's digit keeper on the real lab: what it costs the host.

    python -m bench.keeper [--transfers 40] [--concurrent 10]

A process-mode lab; ``--transfers`` one-key transfers, ``--concurrent`` at a time, each
call-taker typing ``*1101`` in one go. Printed: the keeper's resident memory and CPU
time at the end (its pid is in ``<spool_dir>/keeper.lock``), and how many records have
code 101 (every one must).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path
from typing import cast

from bench.agi_cpu import TICK, cpu_seconds, rss_kib
from gateway.lab.lab import Lab
from gateway.lab.process import exit_on_sigterm, wait_until
from gateway.lab.sipp import answer_scenario, citizen_scenario
from gateway.schema import Keys, idx_seat


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keeper")
    parser.add_argument("--transfers", type=int, default=40)
    parser.add_argument("--concurrent", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"digit keeper — {platform.python_version()}, {platform.platform()}")
    print(f"run: python -m bench.keeper --transfers {args.transfers} "
          f"--concurrent {args.concurrent}\n")
    calls, at_once = args.transfers, args.concurrent
    with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp), agi="process") as lab:
        timeout = max(120, calls * 15 // at_once + 60)
        agent, seat, citizen = lab.phone("12345"), lab.phone("seat1"), lab.phone("citizen")
        agent.start(answer_scenario("12345", ring_ms=300, hold_ms=12000), calls=calls,
                    timeout_s=timeout)
        seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=4000, key="*1101",
                                   key_after_ms=800), calls=calls, timeout_s=timeout)
        citizen.start(citizen_scenario("citizen", "1398[call_number]", "110", hold_ms=9000),
                      calls=calls, limit=at_once, rate=at_once, timeout_s=timeout)
        codes = {p.name: p.wait(timeout) for p in (citizen, seat, agent)}
        keys = Keys(lab.config.redis.prefix)
        redis = lab.redis_client()

        def coded() -> int:
            ids = cast(list[str], redis.zrange(keys.index(idx_seat("seat1")), 0, -1))
            return sum(redis.hget(keys.bridge(i), "code") == "101" for i in ids)

        assert lab.asterisk is not None
        lock = lab.asterisk.base / "gw/spool/keeper.lock"
        pid = int(lock.read_text().split()[0])
        wait_until(lambda: coded() >= calls, 60, "every record's code")
        print(f"{'phones':<44} {codes}")
        print(f"{'records with code 101':<44} {coded():>6} of {calls}")
        print(f"{'keeper resident memory':<44} {rss_kib(pid) / 1024:>6.1f} MiB")
        print(f"{'keeper CPU time, whole run':<44} {cpu_seconds(pid):>6.2f} s "
              f"(clock ticks of 1/{TICK:.0f} s)")
    return 0


if __name__ == "__main__":
    exit_on_sigterm()
    sys.exit(main(sys.argv[1:]))
