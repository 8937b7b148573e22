"""The AGI scripts of the transfer feature. They do not know which transport runs them.

- ``incoming``: a citizen's call reached the 110 context. Register it.
- ``onekey``:   a call-taker (or a 12345 agent) pressed the one key (arg ``transfer``) or
  the consult key (arg ``consult``), maybe followed by an item code. Open a bridge or
  refuse, answer the AGI at once (the feature runs on the bridge's thread), and let the
  service move the call once the AGI has returned.
- ``emergency``: the call-taker flagged an emergency: this call is never transferred.

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

from gateway.agi.errors import AgiHangup
from gateway.bridge.state import Mode
from gateway.transfer.service import DIRECTIONS, Party, TransferRefused, TransferService


class Session(Protocol):
    """What the scripts need from an AGI session (FastAGI or process-mode)."""

    @property
    def env_channel(self) -> str: ...

    @property
    def env_uniqueid(self) -> str: ...

    @property
    def env_args(self) -> tuple[str, ...]: ...

    async def get_variable(self, name: str) -> str | None: ...

    async def get_full_variable(self, expression: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str: ...


Script = Callable[[Session], Coroutine[Any, Any, None]]


def _b64(value: str | None) -> str:
    """Decode ``BASE64_ENCODE(=…)`` and drop the leading ``=``."""
    if not value:
        return ""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
    return text[1:] if text.startswith("=") else text


async def _party(session: Session, channel: str | None = None) -> Party:
    """Read one leg's ids and caller ID; ``channel`` None means the AGI's own channel."""

    def expr(inner: str) -> str:
        return f"${{IMPORT({channel},{inner})}}" if channel else f"${{{inner}}}"

    uniqueid = await session.get_full_variable(expr("UNIQUEID"))
    linkedid = await session.get_full_variable(expr("CHANNEL(linkedid)"))
    endpoint = await session.get_full_variable(expr("CHANNEL(endpoint)"))
    # "=" before the value: BASE64_ENCODE() of an empty value is an Asterisk warning.
    number = await session.get_full_variable(f"${{BASE64_ENCODE(={expr('CALLERID(num)')})}}")
    name = await session.get_full_variable(f"${{BASE64_ENCODE(={expr('CALLERID(name)')})}}")
    return Party(
        channel=channel or session.env_channel,
        uniqueid=uniqueid or (session.env_uniqueid if channel is None else ""),
        linkedid=linkedid or "",
        number=_b64(number),
        name=_b64(name),
        endpoint=endpoint or "",
    )


async def _two_parties(session: Session) -> tuple[Party, Party] | None:
    """(citizen, key-presser) of a two-party call, or None (LINKGW_RESULT=NO_PEER set)."""
    peer = await session.get_variable("BRIDGEPEER")
    if not peer or "," in peer:
        await session.set_variable("LINKGW_RESULT", "NO_PEER")
        return None
    return await _party(session, peer), await _party(session)


#: Seconds between the onekey AGI's answer and the move into the conference.
MOVE_DELAY = 0.1


def make_scripts(service: TransferService, clock: IReactorTime) -> dict[str, Script]:
    config = service.config

    async def incoming(session: Session) -> None:
        citizen = await _party(session)
        dialed = (session.env_args or ("",))[0]
        service.register_call(citizen, dialed)
        await session.set_variable("LINKGW_CALL", citizen.uniqueid)
        await session.set_variable("LINKGW_RESULT", "OK")

    async def onekey(session: Session) -> None:
        parties = await _two_parties(session)
        if parties is None:
            return
        citizen, seat = parties
        side = await session.get_variable("LINKGW_SIDE") or "110"
        side = side if side in DIRECTIONS else "110"
        mode = Mode.CONSULT if session.env_args[:1] == ("consult",) else Mode.TRANSFER
        code = ""
        if config.code_digits:
            # Digits typed right after the key wait in the channel's queue meanwhile.
            try:
                code = await session.get_data("beep", int(config.code_timeout * 1000),
                                              config.code_digits)
            except AgiHangup:
                service.ended_at_the_key(citizen, seat, side)
                raise
            code = "".join(c for c in code if c.isdigit()) or config.default_code
        try:
            bridge = service.request(citizen, seat, side=side, mode=mode, code=code)
        except TransferRefused as exc:
            await session.set_variable("LINKGW_RESULT", exc.reason.upper())
            if exc.prompt:
                await session.set_variable("LINKGW_PROMPT", exc.prompt)
            return
        await session.set_variable("LINKGW_BRIDGE", bridge.id)
        await session.set_variable("LINKGW_RESULT", "OK")
        # Move the call only after this AGI has returned and the feature's Gosub has
        # reached Return() (moving it earlier works, but Asterisk logs an abnormal exit).
        clock.callLater(MOVE_DELAY, service.start, bridge.id)

    async def emergency(session: Session) -> None:
        parties = await _two_parties(session)
        if parties is None:
            return
        service.flag_emergency(*parties)
        await session.set_variable("LINKGW_PROMPT", config.emergency_prompt)
        await session.set_variable("LINKGW_RESULT", "OK")

    return {"incoming": incoming, "onekey": onekey, "emergency": emergency}
