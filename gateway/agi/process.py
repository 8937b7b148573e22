"""Process-mode AGI: ``AGI(/path/incoming)`` runs this as a program, for sites that do
not allow network AGI. The call flows are the same coroutines the FastAGI server runs.

pyst2's :class:`asterisk.agi.AGI` reads the env block from stdin; commands go out
through :class:`SafeAGI`, which formats them with this project's codec (pyst2's own
quoting does not escape quotes) and parses replies with its reply parser.

Asterisk waits for an AGI program to exit before the dialplan goes on, and a transfer
lives for minutes, so the program answers the script at once and then, when there is
work left (a change to write, a bridge to follow), detaches into a follower process
(double fork) that connects to AMI and Redis, does that work, and exits when every
bridge it opened has ended and its changes are written (or spooled).

    linkgw-agi incoming|onekey|emergency [args…]    (config: $LINKGW_CONFIG)
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gateway.agi.codec import HANGUP, AgiEnv, AgiReply, ReplyParser, format_command
from gateway.agi.errors import AgiCommandError, AgiDeadChannel, AgiHangup


class SafeAGI:
    """pyst2's AGI for the env and the pipes; this project's codec for the lines."""

    def __init__(self, stdin: Any = None, stdout: Any = None) -> None:
        from asterisk.agi import AGI

        devnull = open(os.devnull, "w")
        self.agi = AGI(stdin=stdin or sys.stdin, stdout=stdout or sys.stdout, stderr=devnull)
        self.env = AgiEnv({k.removeprefix("agi_"): v for k, v in self.agi.env.items()})

    def command(self, command: str, *args: str) -> AgiReply:
        if self.agi._got_sighup:
            raise AgiHangup("SIGHUP from Asterisk")
        self.agi.stdout.write(format_command(command, *args).decode("utf-8"))
        self.agi.stdout.flush()
        parser = ReplyParser()
        while True:
            line = self.agi.stdin.readline()
            if not line:
                raise AgiHangup("AGI pipe closed")
            raw = line.encode("utf-8") if isinstance(line, str) else line
            parsed = parser.feed(raw)
            if parsed is None or parsed is HANGUP:
                continue
            if isinstance(parsed, AgiDeadChannel):
                raise AgiHangup(parsed.reply)
            if isinstance(parsed, AgiCommandError):
                raise parsed
            assert isinstance(parsed, AgiReply)
            return parsed


class ProcessSession:
    """The scripts' Session over SafeAGI (blocking calls inside async methods)."""

    def __init__(self, agi: SafeAGI) -> None:
        self.agi = agi

    @property
    def env_channel(self) -> str:
        return self.agi.env.channel

    @property
    def env_uniqueid(self) -> str:
        return self.agi.env.uniqueid

    @property
    def env_args(self) -> tuple[str, ...]:
        return self.agi.env.args

    async def get_variable(self, name: str) -> str | None:
        reply = self.agi.command("GET VARIABLE", name)
        return reply.data if reply.result == 1 else None

    async def get_full_variable(self, expression: str) -> str | None:
        reply = self.agi.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        self.agi.command("SET VARIABLE", name, value)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        reply = self.agi.command("GET DATA", prompt, str(timeout_ms), str(max_digits))
        return reply.text if reply.result != -1 else ""


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything pending (blocking I/O inside)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the script waited on something: process mode cannot do that")


class Later:
    """A callLater that only remembers: the follower runs the calls once AMI is up."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callLater(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((fn, args))


def detach() -> bool:
    """Double fork; True in the follower, False in the program Asterisk waits for."""
    sys.stdout.flush()
    if os.fork():
        os.wait()  # the middle child exits at once
        return False
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return True


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    script = args[0] if args else Path(sys.argv[0]).name
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor

    from gateway.agi.follower import Follower
    from gateway.config import load_config_file

    config = load_config_file(Path(os.environ.get("LINKGW_CONFIG", "/etc/linkgw/gateway.yaml")))
    later = Later()
    follower = Follower(config, reactor, later)
    session = ProcessSession(SafeAGI())
    scripts = follower.scripts()
    if script not in scripts:
        print(f"linkgw-agi: no script {script!r}", file=sys.stderr)
        return 2
    try:
        run_now(scripts[script](session))
    except AgiHangup:
        pass
    except Exception as exc:  # the dialplan sees AGISTATUS=FAILURE; the log says why
        follower.log.exception("agi.process_failed", script=script, error=str(exc))
        return 1
    agi_pid = os.getpid()
    if not follower.has_work(later) or not detach():
        return 0
    follower.run(later, agi_pid)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
