"""Event intake: what Asterisk reports, as events of the state table.

:func:`~gateway.transfer.correlate.correlate` tells which bridge an AMI event concerns
and what it means (a fact); here each fact becomes the table's event for the stepper,
or news of the other line's leg (:class:`~gateway.transfer.legs.Leg`), or a note. Above
this module nothing knows an AMI message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from gateway.ami.codec import AmiMessage
from gateway.schema import iso
from gateway.transfer.commands import Commands
from gateway.transfer.correlate import (
    DeclineKeyed,
    Fact,
    FeatureReturned,
    KeyDoneFact,
    LegFact,
    NoticeFact,
    PartyGone,
    correlate,
)
from gateway.transfer.events import (
    AgentAnswered,
    AgentFailed,
    Declined,
    Joined,
    KeyDone,
    Left,
)
from gateway.transfer.legs import CAUSE_WAIT, Leg, LegAnswered, LegFailed, LegNews
from gateway.transfer.model import Bridge, Refused
from gateway.transfer.phase import Role
from gateway.transfer.registry import Registry
from gateway.transfer.stepper import Stepper

Classify = Callable[[str, str, str], tuple[dict[str, str], Refused | None]]
#: A decline reason's code → its reason (transfer.decline_reasons), None when not listed
Reasons = Callable[[str], str | None]


class Intake:
    def __init__(self, stepper: Stepper, commands: Commands, registry: Registry,
                 legs: dict[str, Leg], *, clock: IReactorTime, log: Any,
                 classify: Classify, decline_reason: Reasons) -> None:
        self.stepper = stepper
        self.commands = commands
        self.registry = registry
        self.legs = legs
        self.clock = clock
        self.log = log
        self.classify = classify
        self.decline_reason = decline_reason

    def on_ami_event(self, message: AmiMessage) -> None:
        now = self.clock.seconds()
        for bridge, fact in correlate(message, self.registry, now):
            self.apply(bridge, fact, now)

    def apply(self, bridge: Bridge, fact: Fact, at: float,
              data: dict[str, str] | None = None) -> None:
        """One fact about a bridge, live or (``data``: recovered from) the journal."""
        match fact:
            case LegFact():
                self._leg_fact(bridge, fact, at)
            case KeyDoneFact(code=code):
                fields, refusal = self.classify(code, bridge.side, bridge.handed_to)
                self.stepper.step(bridge, KeyDone(at, tuple(fields.items()),
                                          refusal.reason if refusal else "",
                                          refusal.detail if refusal else ""), data)
            case FeatureReturned():
                self.commands.feature_returned(bridge)
            case DeclineKeyed():
                self._decline_keyed(bridge, fact, at, data)
            case NoticeFact():
                if "notice_played_at" not in bridge.fields:
                    self.stepper.note(bridge, "notice_played", {"notice_played_at": iso(at)}, at=at,
                              data=data)
            case PartyGone(role=role):
                if role is Role.CITIZEN:
                    self.stepper.citizen_gone(bridge, at, data)
                self.stepper.step(bridge, Left(at, role, ""), data)
            case Joined(role=Role.CITIZEN) if "notice_played_at" not in bridge.fields:
                # the dialplan plays the notice before the citizen joins, but AMI may
                # report the join first (another Stasis topic): the record keeps the order
                self.apply(bridge, NoticeFact(), at, data)
                self.stepper.step(bridge, fact, data)
            case _:
                self.stepper.step(bridge, fact, data)

    def _decline_keyed(self, bridge: Bridge, fact: DeclineKeyed, at: float,
                       data: dict[str, str] | None) -> None:
        """Why the other line declines, typed by its agent in the consult conference:
        the table's :class:`Declined` (which acts only with the three together), when
        the code is one digit and the leg this attempt's. A code the list no longer has
        (changed since the dialplan's globals were written) is kept as a code."""
        code = fact.code
        if not (code.isascii() and code.isdigit() and len(code) == 1) or \
                fact.attempt != bridge.phase.attempt:
            self.log.warning("bridge.decline_ignored", bridge_id=bridge.id,
                             code=code[:8], attempt=fact.attempt)
            return
        reason = self.decline_reason(code) or f"原因代码{code}（未列出）"
        self.stepper.step(bridge, Declined(at, code, reason), data)

    def _leg_fact(self, bridge: Bridge, fact: LegFact, at: float) -> None:
        leg = self.legs.get(bridge.id)
        if leg is None or fact.attempt != bridge.phase.attempt:
            return  # an earlier attempt's leg
        news: LegNews | None = None
        match fact.kind:
            case "created":
                leg.created(fact.channel, at)
                self.commands.leg_named(bridge, leg)
            case "hangup_request" | "hangup":
                news = leg.hangup(fact.cause, fact.kind == "hangup")
            case "response":
                news = leg.responded(fact.success, fact.channel, at)
                if news is None and leg.failing:
                    self.clock.callLater(CAUSE_WAIT, self._leg_news, bridge, leg)
        if news is not None:
            self._leg_report(bridge, leg, news)

    def _leg_news(self, bridge: Bridge, leg: Leg) -> None:
        news = leg.timed_out()
        if news is not None:
            self._leg_report(bridge, leg, news)

    def _leg_report(self, bridge: Bridge, leg: Leg, news: LegNews) -> None:
        if self.legs.get(bridge.id) is not leg:
            return
        if isinstance(news, LegAnswered):
            self.stepper.step(bridge, AgentAnswered(self.clock.seconds(), news.channel,
                                                    news.uniqueid))
        elif isinstance(news, LegFailed):
            self.log.info("bridge.agent_leg_failed", bridge_id=bridge.id, leg=leg.uniqueid,
                          cause=news.cause, rang_for=round(news.rang_for, 3),
                          reason=news.reason)
            self.stepper.step(bridge, AgentFailed(news.at, news.reason))

