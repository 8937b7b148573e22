"""From an AMI event to (bridge, what happened): the only place that reads AMI headers.

- ``ConfbridgeJoin``/``Leave``/``End`` of ``linkgw-<id>``: who is in the conference;
- ``Newchannel``, ``HangupRequest``, ``Hangup``, ``OriginateResponse`` of a leg whose
  uniqueid is ``<id>-a<n>`` (the ChannelId the gateway gave it): the other line's leg;
- ``Hangup`` of a citizen's or key-presser's channel: that party is gone;
- ``Unhold`` of a key-presser's channel: the key's feature has returned (Asterisk
  reports it once the feature's Gosub is over; seen in the lab);
- ``UserEvent`` ``LinkgwKeyDone`` / ``LinkgwNotice`` / ``LinkgwDirect`` /
  ``LinkgwDeclineReason`` from the dialplan.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ami.codec import AmiMessage
from gateway.transfer.events import ConferenceEnded, DirectBridged, Event, Joined, Left
from gateway.transfer.model import Bridge, agent_leg
from gateway.transfer.phase import Role
from gateway.transfer.registry import Registry

EVENTS = ("ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd", "OriginateResponse",
          "Newchannel", "HangupRequest", "Hangup", "UserEvent", "Unhold")


@dataclass(frozen=True)
class LegFact:
    """News of the other line's leg of one attempt."""

    attempt: int
    kind: str  # created, hangup_request, hangup, response
    channel: str = ""
    cause: str = ""
    success: bool = False


@dataclass(frozen=True)
class KeyDoneFact:
    code: str


@dataclass(frozen=True)
class NoticeFact:
    """The citizen heard the notice that the call goes to the other line."""


@dataclass(frozen=True)
class DeclineKeyed:
    """The other line's agent in a consult conference typed why it declines (the
    decline key and a reason's code) while the three were together; its leg ends next.
    ``attempt``: whose leg (its uniqueid ``<bridge>-a<n>``), -1 when it is no leg."""

    code: str
    attempt: int = -1


@dataclass(frozen=True)
class FeatureReturned:
    """The key's feature has returned: Asterisk ends the hold it began for the feature
    (the citizen's music) only once the key-presser's Gosub is over."""


@dataclass(frozen=True)
class PartyGone:
    """A citizen's or key-presser's channel hung up."""

    role: Role


Fact = Event | LegFact | KeyDoneFact | NoticeFact | PartyGone | FeatureReturned | DeclineKeyed
Routed = tuple[Bridge, Fact]


def correlate(message: AmiMessage, registry: Registry, at: float) -> list[Routed]:
    name = message.event
    if name.startswith("Confbridge"):
        return _conference(message, registry, at)
    if name == "UserEvent":
        return _user_event(message, registry, at)
    out: list[Routed] = []
    uniqueid = message.get("Uniqueid")
    leg = registry.by_leg(uniqueid)
    if leg is not None:
        bridge, attempt = leg
        out.append((bridge, _leg_fact(message, attempt)))
    elif name == "Hangup":
        out += [(bridge, PartyGone(role)) for bridge, role in registry.all_by_party(uniqueid)]
    elif name == "Unhold":
        party = registry.by_party(uniqueid)
        if party is not None and party[1] is Role.SEAT:
            out.append((party[0], FeatureReturned()))
    return out


def _leg_fact(message: AmiMessage, attempt: int) -> LegFact:
    channel = message.get("Channel")
    match message.event:
        case "Newchannel":
            return LegFact(attempt, "created", channel)
        case "HangupRequest":
            return LegFact(attempt, "hangup_request", channel, message.get("Cause"))
        case "Hangup":
            return LegFact(attempt, "hangup", channel, message.get("Cause"))
    return LegFact(attempt, "response", channel,
                   success=message.get("Response") == "Success")


def _conference(message: AmiMessage, registry: Registry, at: float) -> list[Routed]:
    bridge = registry.by_conference(message.get("Conference"))
    if bridge is None:
        return []
    if message.event == "ConfbridgeEnd":
        return [(bridge, ConferenceEnded(at))]
    uniqueid = message.get("Uniqueid")
    role = bridge.role_of(uniqueid)
    if role is None:
        return []  # an earlier attempt's leg, or someone the gateway did not bring
    channel = message.get("Channel")
    if message.event == "ConfbridgeJoin":
        return [(bridge, Joined(at, role, channel, message.get("Linkedid")))]
    if message.event == "ConfbridgeLeave":
        return [(bridge, Left(at, role, channel))]
    return []


def _user_event(message: AmiMessage, registry: Registry, at: float) -> list[Routed]:
    bridge = registry.get(message.get("Bridge"))
    if bridge is None:
        return []
    match message.get("UserEvent"):
        case "LinkgwKeyDone":
            return [(bridge, KeyDoneFact(message.get("Code")))]
        case "LinkgwNotice":
            return [(bridge, NoticeFact())]
        case "LinkgwDirect":  # why: handoff (with the other line), failed, declined
            role = Role.AGENT if message.get("Why") == "handoff" else Role.SEAT
            return [(bridge, DirectBridged(at, role))]
        case "LinkgwDeclineReason":
            leg = agent_leg(message.get("Uniqueid"))
            return [(bridge, DeclineKeyed(message.get("Code"),
                                          leg[1] if leg and leg[0] == bridge.id else -1))]
    return []

