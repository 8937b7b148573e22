"""FastAGI server cost: CPU per ``incoming`` session against panoramisk doing the same
work in the same run, and memory at 1,000 concurrent AGI sessions.

    python -m bench.agi_cpu [--sessions 2000] [--concurrent 20]      (make bench-agi)

A real redis-server; the gateway (``python -m gateway run``, its production logging,
AMI pointed at a closed port: ``incoming`` needs none) and a panoramisk server
(:mod:`bench.panoramisk_incoming`) as processes of their own. A driver plays Asterisk:
each session sends the env block res_agi sends, answers ``GET FULL VARIABLE`` the way
Asterisk evaluates the expression, and ``200 result=1`` to the rest, then closes.
Server CPU (user + system, from /proc) is read around each batch, until every
session's record is in Redis; batches alternate between the two servers. Memory:
1,000 sessions held open at their first command, the gateway's resident set before and
during.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.lab.fakes import agi_env
from gateway.lab.ports import free_ports
from gateway.lab.process import Proc, wait_until
from gateway.lab.services import RedisServer

_TERM = re.compile(rb"\$\{BASE64_ENCODE\(=(\$\{(?:[^{}]|\{[^{}]*\})*\}|[0-9a-f]+)\)\}")
VALUES = {b"UNIQUEID": b"1795895437.1", b"CHANNEL(linkedid)": b"1795895437.1",
          b"CHANNEL(endpoint)": b"citizen", b"CALLERID(num)": b"13800138000",
          b"CALLERID(name)": "张三".encode(), b"SHARED(LINKGW_CALLER)": b""}
TICK = os.sysconf("SC_CLK_TCK")


_calls = iter(range(1, 10**9))


def evaluate(command: bytes, uniqueid: bytes) -> bytes:
    """Asterisk's answer to one command line from the server (on channel ``uniqueid``)."""
    if not command.startswith(b"GET FULL VARIABLE"):
        return b"200 result=1\n"
    out = []
    values = VALUES | {b"UNIQUEID": uniqueid, b"CHANNEL(linkedid)": uniqueid}
    for match in _TERM.finditer(command):
        inner = match.group(1)
        value = values.get(inner[2:-1], b"") if inner.startswith(b"${") else inner
        out.append(base64.b64encode(b"=" + value))
    return b"200 result=1 (" + b",".join(out) + b")\n"


async def session(port: int, n: int, hold: asyncio.Event | None = None) -> int:
    """One AGI session; the number of commands the server sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    uniqueid = f"1795895437.{next(_calls)}"  # a new call each time, as on a real line
    writer.write(agi_env("incoming", channel=f"PJSIP/citizen-{n:08x}",
                         uniqueid=uniqueid, callerid="13800138000",
                         calleridname="张三", args=("110",)))
    commands = 0
    while line := await reader.readline():
        commands += 1
        if hold is not None:
            await hold.wait()
            hold = None
        writer.write(evaluate(line, uniqueid.encode()))
        await writer.drain()
    writer.close()
    return commands


async def batch(port: int, sessions: int, concurrent: int) -> list[int]:
    gate = asyncio.Semaphore(concurrent)

    async def one(n: int) -> int:
        async with gate:
            return await session(port, n)

    return await asyncio.gather(*(one(n) for n in range(sessions)))


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


REPO = Path(__file__).resolve().parents[1]


def gateway_config(agi: int, ami: int, redis_url: str, spool: Path) -> str:
    return (f'fastagi:\n  listen: "tcp:{agi}:interface=127.0.0.1"\n  allow: ["127.0.0.1"]\n'
            "  max_sessions: 1200\n  session_timeout: 120\n"
            f'ami:\n  endpoint: "tcp:host=127.0.0.1:port={ami}"\n  secret_env: BENCH_SECRET\n'
            f'redis:\n  url: "{redis_url}"\n  spool_dir: "{spool}"\n'
            'http:\n  listen: ""\ncluster:\n  instance: bench\n'
            f'transfer:\n  categories: "{REPO / "config/categories.yaml"}"\n')


def measure(pid: int, port: int, sessions: int, concurrent: int, redis: Any
            ) -> tuple[float, int]:
    """CPU per session, counted until every session's record is in Redis (a server that
    queues its writes does that work after the session has ended)."""
    written = int(redis.xlen("linkgw:events"))
    before = cpu_seconds(pid)
    commands = asyncio.run(batch(port, sessions, concurrent))
    wait_until(lambda: int(redis.xlen("linkgw:events")) >= written + sessions, 60,
               "every session's record in Redis")
    return (cpu_seconds(pid) - before) / sessions * 1000, statistics.mode(commands)


def held(pid: int, port: int, count: int) -> int:
    """The server's RSS with ``count`` sessions open, each waiting at its first command."""
    async def run() -> int:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(session(port, n, gate)) for n in range(count)]
        await asyncio.sleep(0.5)
        while len(os.listdir(f"/proc/{pid}/fd")) < count:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        during = rss_kib(pid)
        gate.set()
        await asyncio.gather(*tasks)
        return during
    return asyncio.run(run())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agi_cpu")
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv[1:])
    print("FastAGI `incoming`: server CPU per session, linkgw against panoramisk")
    print("run: make bench-agi   (or .venv/bin/python -m bench.agi_cpu)\n")
    with tempfile.TemporaryDirectory(prefix="linkgw-agi-") as tmp:
        work = Path(tmp)
        redis_port, agi_port, pan_port, ami_port = free_ports(4)
        redis = RedisServer(redis_port, work / "redis", work)
        redis.start()
        config = work / "gateway.yaml"
        config.write_text(gateway_config(agi_port, ami_port, redis.url, work / "spool"))
        env = dict(os.environ, BENCH_SECRET="bench-only-not-a-secret")
        gateway = Proc("gateway", [sys.executable, "-m", "gateway", "run", "--config",
                                   str(config)], work / "gateway.log", env=env)
        pan = Proc("panoramisk", [sys.executable, "-m", "bench.panoramisk_incoming",
                                  str(pan_port), redis.url], work / "panoramisk.log")
        try:
            try:
                wait_until(lambda: listening(agi_port), 20, "the gateway's FastAGI port")
            except Exception:
                print((work / "gateway.log").read_text()[-2000:])
                raise
            wait_until(lambda: "listening" in (work / "panoramisk.log").read_text(), 20,
                       "panoramisk")
            r = redis.client()
            measure(gateway.pid, agi_port, 200, args.concurrent, r)  # warm up both
            measure(pan.pid, pan_port, 200, args.concurrent, r)
            ours, theirs = [], []
            for _ in range(args.rounds):
                ms, ours_commands = measure(gateway.pid, agi_port, args.sessions,
                                            args.concurrent, r)
                ours.append(ms)
                ms, their_commands = measure(pan.pid, pan_port, args.sessions,
                                             args.concurrent, r)
                theirs.append(ms)
            a, b = statistics.median(ours), statistics.median(theirs)
            for name, value, commands, rounds in (
                    ("linkgw (Twisted FastAGI)", a, ours_commands, ours),
                    ("panoramisk (asyncio)", b, their_commands, theirs)):
                listed = ", ".join(f"{x:.3f}" for x in rounds)
                print(f"{name:<44} {value:7.3f} ms CPU per session "
                      f"({commands} AGI commands; rounds {listed})")
            print(f"{'ratio linkgw / panoramisk':<44} {a / b:7.2f}   ({args.sessions} sessions "
                  f"a round, {args.concurrent} at once, {args.rounds} rounds)")
            idle = rss_kib(gateway.pid)
            during = held(gateway.pid, agi_port, 1000)
            print(f"{'gateway memory, 1,000 AGI sessions open':<44} {during / 1024:7.1f} MiB "
                  f"(idle {idle / 1024:.1f} MiB: {(during - idle) / 1000:.1f} KiB a session)")
        finally:
            gateway.stop()
            pan.stop()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
