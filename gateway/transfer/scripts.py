"""The AGI scripts of the transfer feature. They do not know which transport runs them.

Each reads what it needs from Asterisk in one round trip (:mod:`gateway.transfer.channel`)
and answers in one: the variable ``LINKGW_ANSWER`` = ``RESULT|bridge id|prompt``, which
the dialplan splits. ``RESULT`` is ``OK`` or a reason word; the dialplan treats anything
but ``OK`` (the gateway unreachable included) as "go on without the gateway".

- ``incoming``: a citizen's call reached 110 or 12345 (arg: the number dialled). Register.
- ``onekey``: the one key (arg 1 ``transfer``) or the consult key (``consult``) was
  pressed; arg 2 is the citizen's channel (``${BRIDGEPEER}``). Open a bridge and dial the
  other line at once (or refuse); then, while the other line rings and the citizen hears
  music, take the item code the key-presser types (:mod:`gateway.transfer.code`) and
  answer with it: ``RESULT|bridge|prompt|code|opened`` (``opened`` is 1 when a bridge was
  opened: the dialplan then reports the key done with the code, and the bridge's owner
  records the code or, for a refused one, cancels the other line).
- ``emergency``: the key-presser flagged an emergency (arg: the citizen's channel); the
  dialplan has put the flag on the citizen's channel already. Record it.
- ``handed``: a 12345 agent's hand-over arrived over the trunk (arg: the number dialled;
  :mod:`gateway.transfer.arrival`). Register it: ``OK|bridge id``.
- ``taken``: run on the 110 seat that answered a hand-over (arg: its bridge id).
- ``handed_end``: nobody at 110 took it (args: its bridge id, Dial's ``DIALSTATUS``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol

from gateway.config import TransferConfig
from gateway.records.errors import Malformed
from gateway.records.ticket_changes import check_bridge_id
from gateway.transfer import channel
from gateway.transfer.arrival import HEADERS, Arrivals
from gateway.transfer.channel import Session
from gateway.transfer.model import CodeWait, KeyPress, Opened, Party, Refused
from gateway.transfer.phase import Mode


class Desk(Protocol):
    """The gateway side of the scripts (the transfer service, or process mode's)."""

    config: TransferConfig
    arrivals: Arrivals

    def register_call(self, citizen: Party, dialed: str, unreadable: str = "") -> None: ...

    def flag_emergency(self, citizen: Party, flag: str) -> None: ...

    async def open(self, press: KeyPress) -> Opened | Refused: ...

    def classify(self, typed: str, side: str, to: str = ""
                 ) -> tuple[dict[str, str], Refused | None]: ...

    def collect_code(self, press: KeyPress) -> CodeWait:
        """Open the code window now; the code once it closes."""
        ...


Script = Callable[[Session], Coroutine[Any, Any, None]]


def make_scripts(desk: Desk) -> dict[str, Script]:
    async def incoming(session: Session) -> None:
        dialed = (session.env_args or ("",))[0]
        try:
            citizen = await channel.read_own(session)
        except channel.ChannelReadError as exc:
            # Registered from the env's own channel and uniqueid (they come before any
            # caller ID in the env, so no caller ID can forge them); the rest is unsure.
            desk.register_call(Party(session.env_channel, session.env_uniqueid), dialed,
                               unreadable=str(exc))
            raise
        desk.register_call(citizen, dialed)
        await session.set_variable(*channel.answer("OK"))

    async def onekey(session: Session) -> None:
        args = session.env_args
        mode = Mode.CONSULT if args[:1] == ("consult",) else Mode.TRANSFER
        peer = channel.channel_name(args[1] if len(args) > 1 else "")
        if peer is None:
            await session.set_variable(*channel.answer("NO_PEER"))
            return
        # a further line's own key (transfer.lines) passes that line's number
        line = args[2] if len(args) > 2 else ""
        press = replace(await channel.read_key(session, peer, mode), line=line)
        result = await desk.open(press)
        if isinstance(result, Refused):
            await session.set_variable(*channel.answer(result.reason, result.bridge_id,
                                                       result.prompt))
            return
        # On the citizen's channel, where every gateway reads it: a transfer runs (a
        # second key refuses; if the key-presser hangs up now, the dialplan sends the
        # citizen into the conference instead of ending the call).
        await session.set_variable(f"SHARED(LINKGW_ACTIVE,{peer})", result.bridge_id)
        window = desk.collect_code(press)  # it opens now; digits count from here
        # the prompt asks for the code: not when it was typed with the key, in one go
        if desk.config.code_digits and desk.config.code_prompt and not window.complete:
            await session.stream_file(desk.config.code_prompt)
        code = await window.code
        _, refusal = desk.classify(code, press.side, press.line)
        if refusal is None:
            await session.set_variable(*channel.answer("OK", result.bridge_id, "", code, True))
        else:
            await session.set_variable(*channel.answer(refusal.reason, result.bridge_id,
                                                       refusal.prompt, code, True))

    async def emergency(session: Session) -> None:
        peer = channel.channel_name((session.env_args or ("",))[0])
        if peer is None:
            await session.set_variable(*channel.answer("NO_PEER"))
            return
        press = await channel.read_key(session, peer, Mode.TRANSFER)
        if press.emergency:
            desk.flag_emergency(press.citizen, press.emergency)
        await session.set_variable(*channel.answer("OK", "", desk.config.emergency_prompt))

    async def handed(session: Session) -> None:
        dialed = (session.env_args or ("",))[0]
        citizen, headers = await channel.read_arrival(session, HEADERS)
        bridge_id, _ = desk.arrivals.arrived(citizen, headers, dialed)
        await session.set_variable(*channel.answer("OK", bridge_id))

    def bridge_arg(session: Session) -> str | None:
        """The bridge id the dialplan passed (one the ``handed`` script answered)."""
        bridge_id = (session.env_args or ("",))[0]
        try:
            check_bridge_id(bridge_id)
        except Malformed:
            return None
        return bridge_id

    async def taken(session: Session) -> None:
        bridge_id = bridge_arg(session)
        if bridge_id is None:
            await session.set_variable(*channel.answer("NO_BRIDGE"))
            return
        desk.arrivals.taken(bridge_id, await channel.read_endpoint(session))
        await session.set_variable(*channel.answer("OK", bridge_id))

    async def handed_end(session: Session) -> None:
        bridge_id = bridge_arg(session)
        if bridge_id is None:
            await session.set_variable(*channel.answer("NO_BRIDGE"))
            return
        status = session.env_args[1] if len(session.env_args) > 1 else ""
        desk.arrivals.ended(bridge_id, status)
        await session.set_variable(*channel.answer("OK", bridge_id))

    return {"incoming": incoming, "onekey": onekey, "emergency": emergency,
            "handed": handed, "taken": taken, "handed_end": handed_end}
