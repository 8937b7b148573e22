"""The AGI scripts of the duty phone's call (FastAGI or process mode, like the transfer's).

The ringer's Originate runs ``[linkgw-duty]`` on the duty phone once it is answered.
Each script answers in ``LINKGW_ANSWER`` = ``RESULT|sounds|identity``, and the dialplan
plays and asks:

- ``duty`` (arg: the order's number): ``OK|<what to say>|extension`` (or ``pin``), where
  what to say is a ``&`` list of prompts: a new work order, its number digit by digit,
  its category; ``DONE|<already accepted>`` when someone was first; ``GONE`` when there
  is no such order.
- ``duty_accept`` (args: the order, the key pressed, the PIN typed): ``OK|<accepted>``
  with the order accepted on record, by the extension or the PIN's officer, via
  ``duty``; ``PIN|<wrong PIN>`` (asked again), ``KEY`` (not 1), ``DONE|<already>``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from gateway.catalogue import POLICE, Catalogue
from gateway.config import DutyConfig
from gateway.pins import officer_of, parse_pins
from gateway.records.actor import Actor
from gateway.records.errors import Conflict, NotFound, RecordError
from gateway.transfer.channel import Session

SOUNDS = "linkgw/zh"
T = TypeVar("T")
#: ``PJSIP/duty1-0000002a`` → ``duty1``
_ENDPOINT = re.compile(r"[A-Za-z0-9]+/([0-9A-Za-z][0-9A-Za-z._-]{0,31})-[0-9a-f]+\Z")


class Orders(Protocol):
    catalogue: Catalogue

    def order(self, ticket: str) -> dict[str, str]: ...

    def act(self, ticket: str, action: str, fields: dict[str, Any], actor: Actor
            ) -> dict[str, str]: ...


Blocking = Callable[..., Awaitable[Any]]  # runs a blocking call (a thread, or at once)
Script = Callable[[Session], Coroutine[Any, Any, None]]


def category_prompt(catalogue: Catalogue, category_id: str) -> str:
    """``cat_<category>``: a police matter says the category it is near; an unknown one
    ``cat_other``."""
    matter = catalogue.police_matter(category_id)
    category = matter.category if matter else category_id
    if category != POLICE and catalogue.category(category) is None:
        return f"{SOUNDS}/cat_other"
    return f"{SOUNDS}/cat_{category}"


def announcement(ticket: str, order: dict[str, str], catalogue: Catalogue) -> str:
    """What the duty officer hears: a new work order, its number, its category."""
    digits = [f"{SOUNDS}/digit_{d}" for d in ticket if d in "0123456789"]
    return "&".join([f"{SOUNDS}/duty_new_order", *digits, f"{SOUNDS}/duty_category",
                     category_prompt(catalogue, order.get("category", ""))])


def who(channel: str, typed_pin: str, config: DutyConfig) -> str | None:
    """The operator id of who pressed 1: the PIN's officer (None: a wrong PIN) or the
    extension."""
    if config.identity == "pin":
        return officer_of(parse_pins(config.pins), typed_pin) if config.pins else None
    found = _ENDPOINT.match(channel)
    return found.group(1) if found else "duty"


def make_duty_scripts(orders: Callable[[], Orders], config: Callable[[], DutyConfig],
                      blocking: Blocking, postpone: Callable[[str, float], None],
                      clock: Callable[[], float] = time.time) -> dict[str, Script]:
    """``postpone(ticket, until)``: the next ring of an order someone listens to waits
    (:func:`gateway.duty.index.postpone_ring`)."""

    async def duty(session: Session) -> None:
        ticket = session.env_args[0] if session.env_args else ""
        desk = orders()
        try:
            order = await blocking(desk.order, ticket)
        except RecordError:
            order = {}
        if not order:
            answer = "GONE"
        elif order.get("status") != "received":
            answer = f"DONE|{SOUNDS}/duty_already"
        else:
            answer = f"OK|{announcement(ticket, order, desk.catalogue)}|{config().identity}"
            try:  # someone listens: the next ring waits a whole interval from now
                await blocking(postpone, ticket, clock() + config().every)
            except RecordError:
                pass  # rung again sooner: the order still waits, nothing is lost
        await session.set_variable("LINKGW_ANSWER", answer)

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

    return {"duty": duty, "duty_accept": duty_accept}
