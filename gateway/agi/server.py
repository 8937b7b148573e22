"""FastAGI server on Twisted: one :class:`FastAgiProtocol` per AGI session.

The protocol only moves lines: it reads the env block, hands a :class:`AgiSession` to
the script routed by ``agi_network_script``, writes each command the script sends and
fires that command's Deferred with the parsed reply. Parsing is in
:mod:`gateway.agi.codec`; what a script does is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, connectionDone
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from gateway.agi.codec import HANGUP, AgiEnv, AgiReply, EnvReader, ReplyParser, format_command
from gateway.agi.errors import (
    AgiCommandError,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiProtocolError,
)

AgiScript = Callable[["AgiSession"], Coroutine[Any, Any, None]]


class AgiTimeout(AgiError):
    """The session outlived its time limit and was cut."""

    code = "agi_timeout"


class AgiSession:
    """What a script sees: the env and one command at a time."""

    def __init__(self, env: AgiEnv, protocol: FastAgiProtocol, log: Any) -> None:
        self.env = env
        self.log = log
        self._protocol = protocol

    @property
    def hung_up(self) -> bool:
        return self._protocol.hung_up

    @property
    def env_channel(self) -> str:
        return self.env.channel

    @property
    def env_uniqueid(self) -> str:
        return self.env.uniqueid

    @property
    def env_args(self) -> tuple[str, ...]:
        return self.env.args

    def command(self, command: str, *args: str) -> defer.Deferred[AgiReply]:
        """Send one command; the Deferred fails with AgiHangup, AgiCommandError or fires."""
        return self._protocol.send_command(format_command(command, *args))

    async def get_variable(self, name: str) -> str | None:
        """``GET VARIABLE``: the value, or None when the variable is not set."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == 1 else None

    async def get_full_variable(self, expression: str) -> str | None:
        """``GET FULL VARIABLE``: evaluate an expression such as ``${CHANNEL(linkedid)}``."""
        reply = await self.command("GET FULL VARIABLE", expression)
        return reply.data if reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """``GET DATA``: play ``prompt``, collect up to ``max_digits`` digits (maybe none)."""
        reply = await self.command("GET DATA", prompt, str(timeout_ms), str(max_digits))
        return reply.text if reply.result != -1 else ""

    async def stream_file(self, sound: str) -> None:
        """``STREAM FILE``: play a sound, no key interrupts it."""
        await self.command("STREAM FILE", sound, "")

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, str(level))


class FastAgiProtocol(LineOnlyReceiver):
    """Reads the env, runs the routed script, relays its commands and replies."""

    delimiter = b"\n"
    MAX_LENGTH = 16384
    transport: ITCPTransport  # set by Twisted before connectionMade

    def __init__(self, factory: FastAgiFactory, peer: str) -> None:
        self.factory = factory
        self.peer = peer
        self.hung_up = False
        self._env_reader = EnvReader()
        self._env: AgiEnv | None = None
        self._parser = ReplyParser()
        self._pending: defer.Deferred[AgiReply] | None = None
        self._deadline: IDelayedCall | None = None
        self._started = 0.0
        self._closed = False
        self.log = factory.log.bind(peer=peer)

    # -- connection ------------------------------------------------------------------
    def connectionMade(self) -> None:
        self._started = self.factory.clock.seconds()
        self._deadline = self.factory.clock.callLater(self.factory.session_timeout, self._expire)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._fail_pending(AgiHangup("AGI connection closed"))
        self.factory.session_ended(self)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.log.warning("agi.line_too_long", length=len(line))
        self.transport.abortConnection()

    # -- lines -----------------------------------------------------------------------
    def lineReceived(self, line: bytes) -> None:
        try:
            if self._env is None:
                self._env_line(line)
            else:
                self._reply_line(line)
        except AgiProtocolError as exc:
            self.log.error("agi.protocol_error", error=str(exc), error_id=exc.code)
            self._fail_pending(exc)
            self.transport.loseConnection()

    def _env_line(self, line: bytes) -> None:
        env = self._env_reader.feed(line)
        if env is not None:
            self._env = env
            self._start_script(env)

    def _reply_line(self, line: bytes) -> None:
        parsed = self._parser.feed(line)
        if parsed is None:
            return
        if parsed is HANGUP:
            self.hung_up = True
            self.log.info("agi.hangup_notice")
            return
        pending, self._pending = self._pending, None
        if pending is None:
            raise AgiProtocolError("reply with no command pending", line)
        if isinstance(parsed, AgiDeadChannel):
            self.hung_up = True
            pending.errback(AgiHangup(parsed.reply))
        elif isinstance(parsed, AgiCommandError):
            pending.errback(parsed)
        else:
            assert isinstance(parsed, AgiReply)
            pending.callback(parsed)

    # -- commands --------------------------------------------------------------------
    def send_command(self, line: bytes) -> defer.Deferred[AgiReply]:
        if self._closed or self.hung_up:
            return defer.fail(AgiHangup("channel already hung up"))
        if self._pending is not None:
            return defer.fail(AgiError("one AGI command at a time"))
        self._pending = defer.Deferred()
        self.transport.write(line)
        return self._pending

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.errback(exc)

    # -- script ----------------------------------------------------------------------
    def _start_script(self, env: AgiEnv) -> None:
        name = env.script.rsplit("/", 1)[-1].split("?", 1)[0]
        self.log = self.log.bind(script=name, channel=env.channel, uniqueid=env.uniqueid)
        script = self.factory.scripts.get(name)
        if script is None:
            self.log.warning("agi.unknown_script", request=env.get("request"))
            self.transport.loseConnection()
            return
        session = AgiSession(env, self, self.log)
        d = defer.ensureDeferred(script(session))
        d.addBoth(self._script_done)

    def _script_done(self, result: object) -> None:
        elapsed_ms = round((self.factory.clock.seconds() - self._started) * 1000, 1)
        if isinstance(result, Failure):
            if result.check(AgiHangup):
                self.log.info("agi.session", outcome="hangup", elapsed_ms=elapsed_ms)
            else:
                exc = result.value
                self.log.error(
                    "agi.session",
                    outcome="error",
                    error_id=getattr(exc, "code", type(exc).__name__),
                    error=str(exc),
                    elapsed_ms=elapsed_ms,
                )
        else:
            self.log.info("agi.session", outcome="ok", elapsed_ms=elapsed_ms)
        if not self._closed:
            self.transport.loseConnection()

    def _expire(self) -> None:
        self.log.warning("agi.session_timeout", limit_s=self.factory.session_timeout)
        self._fail_pending(AgiTimeout("AGI session time limit reached"))
        self.transport.abortConnection()


@dataclass
class _Counters:
    refused_address: int = 0
    refused_busy: int = 0
    sessions: int = 0


class FastAgiFactory(Factory):
    """Builds one protocol per accepted connection; enforces allowlist and session limit."""

    def __init__(
        self,
        scripts: Mapping[str, AgiScript],
        *,
        clock: IReactorTime,
        log: Any | None = None,
        allow: frozenset[str] = frozenset({"127.0.0.1", "::1"}),
        max_sessions: int = 200,
        session_timeout: float = 10.0,
    ) -> None:
        self.scripts = scripts
        self.clock = clock
        self.log = log if log is not None else structlog.get_logger("gateway.agi")
        self.allow = allow
        self.max_sessions = max_sessions
        self.session_timeout = session_timeout
        self.active: set[FastAgiProtocol] = set()
        self.counters = _Counters()
        self._drained: list[defer.Deferred[None]] = []

    def buildProtocol(self, addr: IAddress) -> FastAgiProtocol | None:  # type: ignore[override]
        host = str(getattr(addr, "host", ""))
        if host not in self.allow:  # an empty list lets nobody in
            self.counters.refused_address += 1
            self.log.warning("agi.refused", reason="address not allowed", peer=host)
            return None
        if len(self.active) >= self.max_sessions:
            self.counters.refused_busy += 1
            self.log.warning("agi.refused", reason="too many sessions", peer=host)
            return None
        protocol = FastAgiProtocol(self, host)
        self.active.add(protocol)
        self.counters.sessions += 1
        return protocol

    def session_ended(self, protocol: FastAgiProtocol) -> None:
        self.active.discard(protocol)
        if not self.active:
            waiting, self._drained = self._drained, []
            for d in waiting:
                d.callback(None)

    def drain(self) -> defer.Deferred[None]:
        """Fires when no session is running (for a graceful shutdown)."""
        if not self.active:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._drained.append(d)
        return d


