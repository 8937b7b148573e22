"""What the transfer feature asks of Asterisk, as AMI actions. No decisions here: the
service says what to do, this module says how Asterisk is told (and asked).

Every action returns its Deferred; the service turns a failure into an event of the
bridge (a refused Originate is a failed attempt, a refused move a failed bridge).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

from gateway.ami.client import AmiResult, EventBus
from gateway.ami.codec import AmiMessage, HeaderItems
from gateway.ami.errors import AmiActionError
from gateway.config import TransferConfig
from gateway.transfer.actions import JOIN_CONTEXT, JOURNAL, LATE, originate_headers
from gateway.transfer.model import Bridge
from gateway.transfer.phase import Role


class Ami(Protocol):
    events: EventBus

    @property
    def connected(self) -> bool: ...

    def action(self, action: str, headers: HeaderItems = (), timeout: float = 5.0
               ) -> defer.Deferred[AmiResult]: ...


class Effects:
    def __init__(self, ami: Ami, config: TransferConfig) -> None:
        self.ami = ami
        self.config = config

    def originate(self, bridge: Bridge, attempt: int) -> defer.Deferred[AmiResult]:
        return self.ami.action("Originate", originate_headers(bridge, attempt, self.config),
                               timeout=self.config.originate_timeout)

    def move(self, bridge: Bridge) -> defer.Deferred[AmiResult]:
        """Citizen and key-presser into the conference, in one dual Redirect (moving one
        leg of a two-party call alone would hang up the other)."""
        context = JOIN_CONTEXT[bridge.mode]
        return self.ami.action("Redirect", [
            ("Channel", bridge.citizen.channel),
            ("ExtraChannel", bridge.seat.channel),
            ("Context", context.format(role=Role.CITIZEN)),
            ("Exten", bridge.id), ("Priority", "1"),
            ("ExtraContext", context.format(role=Role.SEAT)),
            ("ExtraExten", bridge.id), ("ExtraPriority", "1"),
        ])

    def hangup(self, channel: str) -> defer.Deferred[AmiResult]:
        return self.ami.action("Hangup", [("Channel", channel)])

    def direct(self, bridge: Bridge, other: str, why: str) -> defer.Deferred[None]:
        """Citizen + ``other`` into a plain two-party call (the dialplan's
        [linkgw-direct]): tell the citizen's channel who its peer is, why (which prompt
        each hears) and which line to ring if that fails, then one dual Redirect. The AMI
        Bridge action cannot do it: ConfBridge will not let its channels be moved."""
        return defer.ensureDeferred(self._direct(bridge, other, why))

    async def _direct(self, bridge: Bridge, other: str, why: str) -> None:
        await self.ami.action("Setvar", [
            ("Channel", bridge.citizen.channel), ("Variable", "LINKGW_DIRECT"),
            ("Value", f"{other}|{bridge.side}|{why}")])
        await self.ami.action("Redirect", [
            ("Channel", bridge.citizen.channel), ("ExtraChannel", other),
            ("Context", "linkgw-direct"), ("Exten", bridge.id), ("Priority", "1"),
            ("ExtraContext", "linkgw-direct-failed" if why == "failed"
             else "linkgw-direct-wait"), ("ExtraExten", bridge.id),
            ("ExtraPriority", "1")])

    def clear_active(self, bridge: Bridge) -> defer.Deferred[AmiResult]:
        """The bridge is over: the citizen's channel no longer names it, so that the
        dialplan does not send the citizen into its conference when their call ends."""
        return self.ami.action("Setvar", [("Channel", bridge.citizen.channel),
                                          ("Variable", "SHARED(LINKGW_ACTIVE)"),
                                          ("Value", "")])

    def return_citizen(self, bridge: Bridge) -> defer.Deferred[AmiResult]:
        """Ring the line the citizen called again (after a notice)."""
        return self.ami.action("Redirect", [
            ("Channel", bridge.citizen.channel), ("Context", "linkgw-return"),
            ("Exten", bridge.side), ("Priority", "1")])

    # -- what Asterisk holds (recovery) ------------------------------------------------
    def journal(self, bridge_id: str) -> defer.Deferred[dict[str, str]]:
        """The dialplan's journal of a bridge: fact → value (AstDB)."""
        prefix = f"/{JOURNAL}/{bridge_id}/"
        d = self.ami.action("DBGetTree", [("Family", JOURNAL), ("Key", bridge_id)]).addCallback(
            lambda r: {e.get("Key")[len(prefix):]: e.get("Val") for e in r.events
                       if e.get("Key").startswith(prefix)})
        return _or_empty(d, {})  # "Database entry not found": nothing journalled yet

    def forget_journal(self, bridge_id: str) -> defer.Deferred[AmiResult]:
        return self.ami.action("DBDelTree", [("Family", JOURNAL), ("Key", bridge_id)])

    def late(self) -> defer.Deferred[dict[str, str]]:
        """What the dialplan kept of calls no gateway answered: AstDB key → value."""
        d = self.ami.action("DBGetTree", [("Family", LATE)]).addCallback(
            lambda r: {e.get("Key"): e.get("Val") for e in r.events})
        return _or_empty(d, {})

    def forget_late(self, key: str) -> defer.Deferred[AmiResult]:
        """One entry, by its exact key (``<uniqueid>/<what>``)."""
        return self.ami.action("DBDel", [("Family", LATE), ("Key", key)])

    def members(self, conference: str) -> defer.Deferred[list[AmiMessage]]:
        """Who Asterisk has in a conference now (none when it does not exist)."""
        d = self.ami.action("ConfbridgeList", [("Conference", conference)]).addCallback(
            lambda r: list(r.events))
        return _or_empty(d, [])

    def channels(self) -> defer.Deferred[list[AmiMessage]]:
        return self.ami.action("CoreShowChannels").addCallback(lambda r: list(r.events))

    def system_name(self) -> defer.Deferred[str]:
        """Asterisk's system name (``CoreSettings``): the name a bridge records as its
        Asterisk, so that only gateways on that Asterisk adopt it."""
        return self.ami.action("CoreSettings").addCallback(
            lambda r: r.response.get("SystemName"))


_NOTHING_THERE = ("not found", "no active conferences", "no conference")
T = TypeVar("T")


def _or_empty(d: defer.Deferred[T], empty: T) -> defer.Deferred[T]:
    """Asterisk's "nothing there" answers become ``empty``; other failures pass."""

    def errback(failure: Failure) -> T | Failure:
        if isinstance(failure.value, AmiActionError):
            message = failure.value.response.get("Message").lower()
            if any(words in message for words in _NOTHING_THERE):
                return empty
        return failure

    d.addErrback(errback)
    return d
