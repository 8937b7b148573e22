"""The transfer service: a key press becomes a bridge; Asterisk's news moves it on.

It is the front of the transfer feature, and wires its seams:

- the opener (:meth:`TransferService.open`): a key press is refused or opens a bridge
  and dials the other line at once;
- event intake (:meth:`on_ami_event`, :meth:`apply`): what an AMI event means for which
  bridge is :mod:`gateway.transfer.correlate`'s business, the other line's leg
  :class:`gateway.transfer.legs.Leg`'s; facts become events;
- the stepper (:mod:`gateway.transfer.stepper`): the one place an edge of the state
  table is applied, persisted and logged;
- the command runner (:mod:`gateway.transfer.commands`): the table's commands carried
  out on Asterisk.

Recovery, the cluster sweep and process mode's follower use a small public API, never
the service's parts: the bridges followed (:meth:`knows`, :meth:`adopt`, :meth:`forget`,
:meth:`followed`, :meth:`leg`, :meth:`track`), the table (:meth:`step`, :meth:`note`,
:meth:`citizen_gone`), the commands (:meth:`run`, :meth:`hold`, :meth:`leg_named`) and
what Asterisk holds (:attr:`telephony`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from gateway.ami.codec import AmiMessage
from gateway.ami.errors import AmiNotConnected, AmiTimeout
from gateway.bridge.store import Index
from gateway.catalogue import Catalogue
from gateway.config import TicketConfig, TransferConfig
from gateway.deadlines import Deadlines
from gateway.transfer import decide, opener
from gateway.transfer.arrival import Arrivals
from gateway.transfer.commands import Commands
from gateway.transfer.correlate import EVENTS, Fact
from gateway.transfer.digits import CodeReader
from gateway.transfer.effects import Ami, Effects
from gateway.transfer.events import Command, Event, RedirectFailed
from gateway.transfer.ids import new_bridge_id
from gateway.transfer.intake import Intake
from gateway.transfer.legs import Leg
from gateway.transfer.model import Bridge, CodeWait, KeyPress, Opened, Party, Refused
from gateway.transfer.persist import Persistor, Sink
from gateway.transfer.registry import Registry
from gateway.transfer.stepper import Meter, Ownership, Stepper

__all__ = ["Meter", "Ownership", "TransferService"]


class TransferService:
    def __init__(
        self,
        ami: Ami,
        sink: Sink,
        config: TransferConfig,
        *,
        clock: IReactorTime,
        log: Any,
        catalogue: Catalogue | None = None,
        new_id: Callable[[float], str] = new_bridge_id,
        ownership: Ownership | None = None,
        meter: Meter | None = None,
        tickets: TicketConfig | None = None,
        ticket_pattern: str = r"^\d{8,20}$",
    ) -> None:
        self.ami = ami
        self.config = config
        self.clock = clock
        self.log = log
        self.catalogue = catalogue or Catalogue(())
        self.new_id = new_id
        self.ownership = ownership or Ownership()
        self.effects = Effects(ami, config)
        self.persist = Persistor(sink, config.response_deadline)
        self.opener = opener.Opener(self.persist, self.flag_emergency)
        self.tickets = tickets or TicketConfig()
        self.arrivals = Arrivals(sink.record, clock.seconds, config.response_deadline,
                                 ticket_pattern, lambda code: self.classify(code, "12345")[0],
                                 self.ownership.instance)
        self.registry = Registry()
        self.legs: dict[str, Leg] = {}  # bridge id → the current attempt's leg
        self.asterisk = ""  # the Asterisk's system name, learnt at login
        self.stepper = Stepper(self.persist, self.effects, self.registry, self.legs,
                               self.ownership, clock=clock, log=log,
                               runner=lambda: self.commands, feedback_due=self._feedback_due)
        self.commands = Commands(self.effects, self.persist, self.legs, clock=clock, log=log,
                                 step=self.stepper.step, note=self.stepper.note)
        if meter is not None:
            self.stepper.meter = meter
        self.intake = Intake(self.stepper, self.commands, self.registry, self.legs,
                             clock=clock, log=log, classify=self.classify,
                             decline_reason=lambda code: self.config.decline_reason(code))
        self.codes = CodeReader(ami.events, clock, config.code_digits, config.code_timeout)
        ami.events.subscribe(self.on_ami_event, EVENTS)

    def reconfigure(self, config: TransferConfig, catalogue: Catalogue) -> None:
        """A reload (SIGHUP): the next key uses the new values; bridges already open
        keep the plan they were given."""
        self.config = self.effects.config = config
        self.catalogue = catalogue
        self.persist.response_deadline = self.arrivals.response_deadline = \
            config.response_deadline
        self.codes.digits, self.codes.timeout = config.code_digits, config.code_timeout

    def _feedback_due(self, category_id: str, at: float, line: str) -> float:
        """12345's feedback deadline for a category (categories.yaml), else the site's,
        on the catalogue of the moment (a reload changes it)."""
        return Deadlines(self.tickets, self.catalogue).feedback(
            category_id, at, self.config.line(line)).at

    def live(self) -> list[dict[str, str]]:
        """The bridges not yet ended, oldest first (for the supervisor's page)."""
        return [dict(b.fields) for b in self.registry.live()]

    # -- calls reaching a line ------------------------------------------------------------
    def register_call(self, citizen: Party, dialed: str, unreadable: str = "") -> None:
        """A citizen's call reached 110 or 12345: record it (never waits on the store)."""
        self.persist.call_registered(citizen, dialed, self.clock.seconds(), unreadable)
        if unreadable:
            self.log.warning("call.callerid_unreadable", uniqueid=citizen.uniqueid,
                             channel=citizen.channel, error=unreadable)
        # debug: the AGI session's own line says it already, and every 110 call is here
        self.log.debug("call.registered", uniqueid=citizen.uniqueid, channel=citizen.channel,
                       dialed=dialed)

    def flag_emergency(self, citizen: Party, flag: str) -> None:
        """The call-taker pressed the emergency key; the dialplan has already put the
        flag (``<epoch>|<endpoint>``) on the citizen's channel, where every gateway
        reads it. This records it, once per flag."""
        self.persist.emergency(citizen, flag, self.clock.seconds())
        self.log.warning("call.emergency", uniqueid=citizen.uniqueid, flag=flag)

    # -- the key ------------------------------------------------------------------------
    async def open(self, press: KeyPress) -> Opened | Refused:
        """The key was pressed: refuse, or open a bridge and dial the other line now.
        Answers once Asterisk has queued the Originate, so that the dialplan knows."""
        now = self.clock.seconds()
        opening = opener.decide(press, self.config, self.ami.connected, now,
                                self.new_id(now), self.asterisk, self.ownership.instance)
        if isinstance(opening, Refused):
            self.log.info("bridge.key_again", citizen=press.citizen.channel,
                          bridge_id=press.active)
            return opening
        bridge, refusal = opening.bridge, opening.refusal
        if refusal is not None:
            self.log.warning("bridge.refused", bridge_id=bridge.id, reason=refusal.reason,
                             detail=refusal.detail)
            return self.opener.refuse(press, bridge, refusal, now)
        self.registry.add(bridge)
        self.ownership.claim(bridge.id)

        def opened() -> None:
            self.opener.requested(bridge, now)
            self.log.info("bridge.requested", bridge_id=bridge.id,
                          citizen=press.citizen.channel, seat=press.seat.channel,
                          direction=bridge.fields["direction"], mode=bridge.mode.value)

        try:
            await self.commands.dial(bridge, 0, first=opened)
        except (AmiNotConnected, AmiTimeout) as exc:
            self.step(bridge, RedirectFailed(self.clock.seconds(), f"AMI: {exc}"))
            return Refused("ami_down", str(exc), bridge_id=bridge.id)
        return Opened(bridge.id)

    def classify(self, typed: str, side: str, to: str = ""
                 ) -> tuple[dict[str, str], Refused | None]:
        return decide.classify(typed, self.catalogue, side, self.config, to)

    # -- the item code, from the digits Asterisk reports ------------------------------
    def collect_code(self, press: KeyPress) -> CodeWait:
        """The digits the key-presser types after the key (see :mod:`.digits`)."""
        key = decide.key_of(press, self.config)
        code = self.codes.collect(key, press.seat.uniqueid)
        return CodeWait(code.called, code)

    # -- what Asterisk reports ----------------------------------------------------------
    def on_ami_event(self, message: AmiMessage) -> None:
        self.intake.on_ami_event(message)

    def apply(self, bridge: Bridge, fact: Fact, at: float,
              data: dict[str, str] | None = None) -> None:
        """One fact about a bridge, live or (``data``: recovered from) the journal."""
        self.intake.apply(bridge, fact, at, data)

    # -- the public API of recovery, the cluster and the follower ------------------------
    def knows(self, bridge_id: str) -> bool:
        return bridge_id in self.registry

    def adopt(self, bridge: Bridge, leg: Leg | None = None) -> None:
        """Follow a bridge this process did not open (recovered, adopted, handed to a
        follower), with its ringing leg when that is known."""
        self.registry.add(bridge)
        if leg is not None:
            self.legs[bridge.id] = leg

    def forget(self, bridge_id: str) -> None:
        """Stop following a bridge (another gateway took it over)."""
        bridge = self.registry.get(bridge_id)
        if bridge is not None:
            self.registry.remove(bridge)
        self.legs.pop(bridge_id, None)

    def followed(self) -> list[Bridge]:
        return self.registry.followed()

    def leg(self, bridge_id: str) -> Leg | None:  # the current attempt's, if known
        return self.legs.get(bridge_id)

    def track(self, bridge_id: str, leg: Leg) -> None:
        self.legs[bridge_id] = leg

    @property
    def instance(self) -> str:
        return self.ownership.instance

    @property
    def ami_up(self) -> bool:
        return self.ami.connected

    @property
    def telephony(self) -> Effects:
        """Asterisk, asked (journal, conference members, channels, system name)."""
        return self.effects

    def step(self, bridge: Bridge, event: Event, data: dict[str, str] | None = None) -> None:
        self.stepper.step(bridge, event, data)

    def note(self, bridge: Bridge, event: str, fields: dict[str, str],
             indexes: tuple[Index, ...] = (), at: float | None = None,
             data: dict[str, str] | None = None) -> None:
        self.stepper.note(bridge, event, fields, indexes, at, data)

    def citizen_gone(self, bridge: Bridge, at: float,
                     data: dict[str, str] | None = None) -> None:
        self.stepper.citizen_gone(bridge, at, data)

    def hold(self, held: list[Command] | None) -> None:
        self.commands.hold(held)

    def run(self, bridge: Bridge, command: Command, at_once: bool = False) -> None:
        self.commands.run(bridge, command, at_once)

    def leg_named(self, bridge: Bridge, leg: Leg) -> None:
        self.commands.leg_named(bridge, leg)
