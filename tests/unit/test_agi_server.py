"""The FastAGI protocol on a fake transport and a fake clock: exact bytes, no sockets."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from structlog.testing import capture_logs
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from gateway.agi.errors import AgiHangup, AgiInvalidCommand
from gateway.agi.server import AgiSession, FastAgiFactory, FastAgiProtocol
from gateway.lab.fakes import agi_env

ENV = agi_env()


def connect(factory: FastAgiFactory, host: str = "127.0.0.1"
            ) -> tuple[FastAgiProtocol | None, StringTransport]:
    protocol = factory.buildProtocol(IPv4Address("TCP", host, 40000))
    transport = StringTransport()
    if protocol is not None:
        protocol.makeConnection(transport)
    return protocol, transport


def make(script: Callable[[AgiSession], Coroutine[Any, Any, None]], **kw: object
         ) -> tuple[FastAgiFactory, Clock]:
    clock = Clock()
    return FastAgiFactory({"demo": script}, clock=clock, **kw), clock  # type: ignore[arg-type]


def test_script_runs_commands_and_gets_replies() -> None:
    """The script's commands go out as exact lines; replies come back parsed."""
    got: list[object] = []

    async def script(session: AgiSession) -> None:
        got.append(session.env.channel)
        got.append(await session.get_variable("BRIDGEPEER"))
        await session.set_variable("LINKGW_RESULT", "OK")

    factory, _ = make(script)
    protocol, transport = connect(factory)
    assert protocol is not None
    protocol.dataReceived(ENV)
    assert transport.value() == b'GET VARIABLE "BRIDGEPEER"\n'
    transport.clear()
    protocol.dataReceived(b"200 result=1 (PJSIP/citizen-00000000)\n")
    assert transport.value() == b'SET VARIABLE "LINKGW_RESULT" "OK"\n'
    protocol.dataReceived(b"200 result=1\n")
    assert got == ["PJSIP/seat1-00000001", "PJSIP/citizen-00000000"]
    assert transport.disconnecting


def test_hangup_mid_script_is_a_hangup_not_an_error() -> None:
    """HANGUP then 511: the script sees AgiHangup; the session logs outcome=hangup."""
    seen: list[BaseException] = []

    async def script(session: AgiSession) -> None:
        try:
            await session.get_variable("X")
        except AgiHangup as exc:
            seen.append(exc)
            raise

    factory, _ = make(script)
    protocol, _transport = connect(factory)
    assert protocol is not None
    with capture_logs() as logs:
        protocol.dataReceived(ENV)
        protocol.dataReceived(b"HANGUP\n511 Command Not Permitted on a dead channel\n")
    assert len(seen) == 1 and protocol.hung_up
    session_log = [e for e in logs if e["event"] == "agi.session"]
    assert session_log[0]["outcome"] == "hangup"


def test_command_after_hangup_fails_without_being_sent() -> None:
    """After a HANGUP notice the next command raises AgiHangup and never hits the wire."""
    seen: list[BaseException] = []

    async def script(session: AgiSession) -> None:
        await session.command("ANSWER")
        try:
            await session.command("VERBOSE", "late")
        except AgiHangup as exc:
            seen.append(exc)

    factory, _ = make(script)
    protocol, transport = connect(factory)
    assert protocol is not None
    protocol.dataReceived(ENV)
    assert transport.value() == b"ANSWER\n"
    protocol.dataReceived(b"HANGUP\n200 result=0\n")
    assert transport.value() == b"ANSWER\n"
    assert len(seen) == 1


def test_510_reaches_the_script_as_an_error() -> None:
    errors: list[BaseException] = []

    async def script(session: AgiSession) -> None:
        try:
            await session.command("NO SUCH")
        except AgiInvalidCommand as exc:
            errors.append(exc)

    factory, _ = make(script)
    protocol, _t = connect(factory)
    assert protocol is not None
    protocol.dataReceived(ENV + b"510 Invalid or unknown command\n")
    assert isinstance(errors[0], AgiInvalidCommand)


def test_session_time_limit_cuts_the_connection() -> None:
    """A session past its limit is aborted and its pending command fails."""
    async def script(session: AgiSession) -> None:
        await session.command("WAIT FOR DIGIT", "100000")

    factory, clock = make(script, session_timeout=2.0)
    protocol, transport = connect(factory)
    assert protocol is not None
    with capture_logs() as logs:
        protocol.dataReceived(ENV)
        clock.advance(2.0)
    assert transport.disconnecting
    assert any(e["event"] == "agi.session_timeout" for e in logs)
    errors = [e for e in logs if e["event"] == "agi.session"]
    assert errors[0]["error_id"] == "agi_timeout"


def test_address_not_allowed_is_refused() -> None:
    async def script(session: AgiSession) -> None:
        return None

    factory, _ = make(script, allow=frozenset({"127.0.0.1"}))
    protocol, _t = connect(factory, host="10.0.0.9")
    assert protocol is None
    assert factory.counters.refused_address == 1


def test_session_limit_refuses_the_extra_connection() -> None:
    async def script(session: AgiSession) -> None:
        await session.command("ANSWER")

    factory, _ = make(script, max_sessions=1)
    first, _t = connect(factory)
    second, _t2 = connect(factory)
    assert first is not None and second is None
    assert factory.counters.refused_busy == 1


def test_unknown_script_closes_the_session() -> None:
    async def script(session: AgiSession) -> None:
        return None

    factory, _ = make(script)
    protocol, transport = connect(factory)
    assert protocol is not None
    with capture_logs() as logs:
        protocol.dataReceived(ENV.replace(b"demo", b"nosuch"))
    assert transport.disconnecting and transport.value() == b""
    assert logs[0]["event"] == "agi.unknown_script"


def test_malformed_env_line_is_logged_and_closes() -> None:
    """Garbage instead of an env block: a clear error, the connection closed."""
    async def script(session: AgiSession) -> None:
        raise AssertionError("must not run")

    factory, _ = make(script)
    protocol, transport = connect(factory)
    assert protocol is not None
    with capture_logs() as logs:
        protocol.dataReceived(b"GET / HTTP/1.0\n\n")
    assert transport.disconnecting
    assert logs[0]["event"] == "agi.protocol_error"
    assert "not an AGI env line" in logs[0]["error"]


def test_drain_waits_for_running_sessions() -> None:
    """Graceful shutdown: drain() fires only when the last session is gone."""
    async def script(session: AgiSession) -> None:
        await session.command("ANSWER")

    factory, _ = make(script)
    protocol, _transport = connect(factory)
    assert protocol is not None
    protocol.dataReceived(ENV)
    drained = factory.drain()
    assert not drained.called
    protocol.dataReceived(b"200 result=0\n")
    protocol.connectionLost()
    assert drained.called


@pytest.mark.parametrize("reply", [b"200 result=0\n"])
def test_reply_without_a_pending_command_is_a_protocol_error(reply: bytes) -> None:
    async def script(session: AgiSession) -> None:
        return None

    factory, _ = make(script)
    protocol, transport = connect(factory)
    assert protocol is not None
    protocol.dataReceived(ENV)
    transport.disconnecting = False
    with capture_logs() as logs:
        protocol.dataReceived(reply)
    assert logs[0]["event"] == "agi.protocol_error"
