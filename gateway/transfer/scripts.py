"""The AGI scripts of the transfer feature. They do not know which transport runs them.

- ``incoming``: a citizen's call reached the 110 context. Register it.
- ``onekey``:   a seat pressed the one-key feature. Open a bridge, answer the seat's AGI at
  once (the feature runs on the seat's bridge thread: it must return in milliseconds),
  and let the service move the call once the AGI has returned.

Both set ``LINKGW_RESULT``: ``OK`` or a reason word. The dialplan treats anything but
``OK`` (the gateway unreachable included) as "go on without the gateway".

Caller ID is read base64-encoded (``BASE64_ENCODE``): Asterisk writes AGI replies and
env lines without escaping, so a caller ID carrying a newline could forge a reply line.
Base64 cannot, and the exact bytes reach the record.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from gateway.transfer.service import Party, TransferRefused, TransferService


class Session(Protocol):
    """What the scripts need from an AGI session (FastAGI or process-mode)."""

    @property
    def env_channel(self) -> str: ...

    @property
    def env_uniqueid(self) -> str: ...

    async def get_variable(self, name: str) -> str | None: ...

    async def get_full_variable(self, expression: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...


def _b64(value: str | None) -> str:
    if not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


async def _party(session: Session, channel: str | None = None) -> Party:
    """Read one leg's ids and caller ID; ``channel`` None means the AGI's own channel."""

    def expr(inner: str) -> str:
        return f"${{IMPORT({channel},{inner})}}" if channel else f"${{{inner}}}"

    uniqueid = await session.get_full_variable(expr("UNIQUEID"))
    linkedid = await session.get_full_variable(expr("CHANNEL(linkedid)"))
    endpoint = await session.get_full_variable(expr("CHANNEL(endpoint)"))
    number = await session.get_full_variable(f"${{BASE64_ENCODE({expr('CALLERID(num)')})}}")
    name = await session.get_full_variable(f"${{BASE64_ENCODE({expr('CALLERID(name)')})}}")
    return Party(
        channel=channel or session.env_channel,
        uniqueid=uniqueid or (session.env_uniqueid if channel is None else ""),
        linkedid=linkedid or "",
        number=_b64(number),
        name=_b64(name),
        endpoint=endpoint or "",
    )


def make_scripts(
    service: TransferService, clock: IReactorTime
) -> dict[str, Callable[[Session], Coroutine[Any, Any, None]]]:
    async def incoming(session: Session) -> None:
        citizen = await _party(session)
        dialed = await session.get_full_variable("${EXTEN}") or ""
        service.register_call(citizen, dialed)
        await session.set_variable("LINKGW_CALL", citizen.uniqueid)
        await session.set_variable("LINKGW_RESULT", "OK")

    async def onekey(session: Session) -> None:
        peer = await session.get_variable("BRIDGEPEER")
        if not peer or "," in peer:
            await session.set_variable("LINKGW_RESULT", "NO_PEER")
            return
        seat = await _party(session)
        citizen = await _party(session, peer)
        try:
            bridge = service.request(citizen, seat)
        except TransferRefused as exc:
            service.log.warning("transfer.refused", reason=exc.reason, seat=seat.channel)
            await session.set_variable("LINKGW_RESULT", "ALREADY")
            return
        await session.set_variable("LINKGW_BRIDGE", bridge.id)
        await session.set_variable("LINKGW_RESULT", "OK")
        # Move the call only after this AGI has returned and the feature hook is done.
        clock.callLater(0, service.start, bridge.id)

    return {"incoming": incoming, "onekey": onekey}
