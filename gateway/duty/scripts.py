"""The AGI script of the duty phone's call (FastAGI or process mode, like the transfer's).

The ringer's Originate runs ``[linkgw-duty]`` on the duty phone once it is answered,
with what to say already on the channel (:mod:`gateway.duty.say`): the officer hears
the order at once and may press 1 during it. Then ``duty_accept`` (args: the order, the
key pressed, the PIN typed) answers in ``LINKGW_ANSWER``: ``OK|<accepted>`` with the
order accepted on record, by the extension or the PIN's officer, via ``duty``;
``PIN|<wrong PIN>`` (asked again), ``KEY`` (not 1), ``DONE|<already>`` (someone was
first, or it is no longer waiting), ``ERROR`` (Redis: rung again later).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from gateway.config import DutyConfig
from gateway.duty.say import SOUNDS
from gateway.pins import officer_of, parse_pins
from gateway.records.actor import Actor
from gateway.records.errors import Conflict, NotFound, RecordError
from gateway.transfer.channel import Session

T = TypeVar("T")
#: ``PJSIP/duty1-0000002a`` → ``duty1``
_ENDPOINT = re.compile(r"[A-Za-z0-9]+/([0-9A-Za-z][0-9A-Za-z._-]{0,31})-[0-9a-f]+\Z")


class Orders(Protocol):
    def act(self, ticket: str, action: str, fields: dict[str, Any], actor: Actor
            ) -> dict[str, str]: ...


Blocking = Callable[..., Awaitable[Any]]  # runs a blocking call (a thread, or at once)
Script = Callable[[Session], Coroutine[Any, Any, None]]


def who(channel: str, typed_pin: str, config: DutyConfig) -> str | None:
    """The operator id of who pressed 1: the PIN's officer (None: a wrong PIN) or the
    extension."""
    if config.identity == "pin":
        return officer_of(parse_pins(config.pins), typed_pin) if config.pins else None
    found = _ENDPOINT.match(channel)
    return found.group(1) if found else "duty"


def make_duty_scripts(orders: Callable[[], Orders], config: Callable[[], DutyConfig],
                      blocking: Blocking) -> dict[str, Script]:
    async def duty_accept(session: Session) -> None:
        args = [*session.env_args, "", "", ""]
        ticket, key, pin = args[0], args[1], args[2]
        if key != "1":
            await session.set_variable("LINKGW_ANSWER", "KEY")
            return
        operator = who(session.env_channel, pin, config())
        if operator is None:
            await session.set_variable("LINKGW_ANSWER", f"PIN|{SOUNDS}/duty_wrong_pin")
            return
        extension = _ENDPOINT.match(session.env_channel)
        note = f"值班电话 {extension.group(1)}" if extension else "值班电话"
        try:
            done = await blocking(orders().act, ticket, "accept", {"note": note},
                                  Actor("duty", operator))
            # accepted before by someone else (the desk answers a repeat with the
            # record as it stands): this officer is told it is taken
            mine = (done.get("accepted_by"), done.get("accepted_via")) == (operator, "duty")
            answer = f"OK|{SOUNDS}/duty_accepted" if mine else f"DONE|{SOUNDS}/duty_already"
        except (Conflict, NotFound):
            answer = f"DONE|{SOUNDS}/duty_already"
        except RecordError:  # Redis down: not accepted; the phone rings again later
            answer = "ERROR"
        await session.set_variable("LINKGW_ANSWER", answer)

    return {"duty_accept": duty_accept}
