"""The process-mode AGI program: ``AGI(/path/onekey,transfer,${BRIDGEPEER})``.

It reads the env with this project's hardened reader (:class:`gateway.agi.codec.EnvReader`,
not pyst2's, which a caller ID with CR LF CR LF ends early), runs the same script
coroutines as the FastAGI server with a desk of its own
(:class:`gateway.process.desk.ProcessDesk`), and answers. Only then, when there is work
left, it detaches (double fork) a process that writes the changes
(:mod:`gateway.process.writer`) or owns the bridge it opened and follows it to its end
(:mod:`gateway.process.follower`). Asterisk waits for the program to exit, so nothing on
the way to the answer imports Twisted, a Redis client or structlog.

    linkgw-agi incoming|onekey|code|emergency|handed|taken|handed_end|duty_accept …
    (config: $LINKGW_CONFIG)

Asterisk sends SIGHUP when the channel hangs up: the next command then fails with a
hangup, and the script ends as in FastAGI.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

from gateway.agi.codec import HANGUP, AgiEnv, AgiReply, EnvReader, ReplyParser, format_command
from gateway.agi.errors import AgiCommandError, AgiDeadChannel, AgiError, AgiHangup
from gateway.catalogue import Catalogue, CategoryError, load_for
from gateway.config import Config, ConfigError, load_config_file
from gateway.duty.scripts import make_duty_scripts
from gateway.process.desk import ProcessDesk, Work
from gateway.process.logfile import log_line, log_path
from gateway.transfer.channel import ChannelReadError
from gateway.transfer.scripts import make_scripts


class PipeSession:
    """The scripts' Session over the AGI pipes (blocking reads inside async methods)."""

    def __init__(self, env: AgiEnv, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self.env = env
        self._in, self._out = stdin, stdout
        self.hung_up = False

    @property
    def env_channel(self) -> str:
        return self.env.channel

    @property
    def env_uniqueid(self) -> str:
        return self.env.uniqueid

    @property
    def env_args(self) -> tuple[str, ...]:
        return self.env.args

    def command(self, command: str, *args: str) -> AgiReply:
        if self.hung_up:
            raise AgiHangup("SIGHUP from Asterisk")
        self._out.write(format_command(command, *args))
        self._out.flush()
        parser = ReplyParser()
        while True:
            line = self._in.readline(16384)
            if not line:
                raise AgiHangup("AGI pipe closed")
            parsed = parser.feed(line)
            if parsed is None or parsed is HANGUP:
                continue
            if isinstance(parsed, AgiDeadChannel):
                raise AgiHangup(parsed.reply)
            if isinstance(parsed, AgiCommandError):
                raise parsed
            assert isinstance(parsed, AgiReply)
            return parsed

    async def get_full_variable(self, expression: str) -> str | None:
        reply = self.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        self.command("SET VARIABLE", name, value)

    async def stream_file(self, sound: str) -> None:
        self.command("STREAM FILE", sound, "")


def read_env(stdin: BinaryIO) -> AgiEnv:
    reader = EnvReader()
    while True:
        line = stdin.readline(16384)
        if not line:
            raise AgiHangup("AGI pipe closed before the env was complete")
        env = reader.feed(line.removesuffix(b"\n"))
        if env is not None:
            return env


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything pending (blocking I/O inside)."""
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the script waited on something: process mode cannot do that")


def detach() -> bool:
    """Double fork; True in the detached process, False in the program Asterisk waits
    for."""
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


def finish(config: Config, work: Work) -> None:
    """In the detached process: make sure the digit keeper runs (for the next key
    press), then follow the bridge, or only write the changes."""
    try:
        from gateway.process.keeper import ensure_running

        ensure_running(config.redis.spool_dir, (config.redis.password,))
    except OSError as exc:
        log_line(log_path(config), "agi.keeper_not_started", error=str(exc))
    try:
        if work.bridge is not None:
            from gateway.process.follower import follow

            follow(config, work)
        else:
            from gateway.process.writer import write

            write(config, work.changes)
    except BaseException as exc:  # the detached process has nobody else to tell
        log_line(log_path(config), "agi.detached_failed", error=repr(exc))
    os._exit(0)


class _Orders:
    """The work orders, for a duty phone's call only (never on the key's path): the
    record desk, built by the composition root (Twisted and all) when 1 is pressed."""

    def __init__(self, config: Config, catalogue: Catalogue) -> None:
        self.config, self.catalogue = config, catalogue

    def act(self, ticket: str, action: str, fields: dict[str, Any], actor: Any
            ) -> dict[str, str]:
        from gateway.app import build_records

        desk = build_records(self.config, time.time, self.catalogue).workorders
        return desk.act(ticket, action, fields, actor)


async def _at_once(call: Callable[..., Any], *args: Any) -> Any:
    return call(*args)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else Path(sys.argv[0]).name
    config_file = Path(os.environ.get("LINKGW_CONFIG", "/etc/linkgw/gateway.yaml"))
    try:
        config = load_config_file(config_file, process_mode=True)
        catalogue = load_for(config.transfer)
    except (ConfigError, CategoryError) as exc:
        print(f"linkgw-agi: config error: {exc}", file=sys.stderr)
        return 2  # the dialplan sees AGISTATUS=FAILURE and goes on without the gateway
    session_holder: list[PipeSession] = []

    def hangup(signum: int, frame: object) -> None:
        for session in session_holder:
            session.hung_up = True

    signal.signal(signal.SIGHUP, hangup)
    owner = f"{config.cluster.instance or os.uname().nodename}-agi-{os.getpid()}"
    desk = ProcessDesk(config, catalogue, f"{owner}/{os.urandom(4).hex()}")
    orders = _Orders(config, catalogue)
    scripts = make_scripts(desk) | make_duty_scripts(
        lambda: orders, lambda: config.duty, _at_once)
    if name not in scripts:
        print(f"linkgw-agi: no script {name!r}", file=sys.stderr)
        return 2
    try:
        env = read_env(sys.stdin.buffer)
        session = PipeSession(env, sys.stdin.buffer, sys.stdout.buffer)
        session_holder.append(session)
        run_now(scripts[name](session))
    except AgiHangup:
        pass
    except (AgiError, ChannelReadError, OSError) as exc:
        log_line(log_path(config), "agi.process_failed", script=name, error=str(exc),
                 error_id=getattr(exc, "code", type(exc).__name__))
        if not desk.work.changes:
            return 1
    work = desk.work
    if (work.changes or work.bridge is not None) and detach():
        finish(config, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
