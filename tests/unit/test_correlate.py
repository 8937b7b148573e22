"""Which bridge an AMI event is about (pure: a registry and one message)."""

from __future__ import annotations

from gateway.ami.codec import AmiMessage
from gateway.transfer.correlate import FeatureReturned, PartyGone, correlate
from gateway.transfer.journal import bridge_of
from gateway.transfer.phase import Role
from gateway.transfer.registry import Registry, following

FIRST, SECOND = "20261128195037abcdef", "20261128195112fedcba"


def _bridge(bridge_id: str, seat: str, **fields: str) -> dict[str, str]:
    return {"bridge_id": bridge_id, "state": "requested", "plan": "PJSIP/12345",
            "citizen_channel": "PJSIP/citizen-1", "citizen_uniqueid": "u-c",
            "seat_channel": f"PJSIP/{seat}-2", "seat_uniqueid": f"u-{seat}"} | fields


def _message(name: str, **headers: str) -> AmiMessage:
    return AmiMessage(tuple([("Event", name), *headers.items()]))


def test_a_citizen_handed_on_twice_hangs_up_in_every_bridge_still_followed() -> None:
    """110 handed the citizen to 12345 (the first bridge ended in a plain call), then
    the 12345 agent handed them back (the second bridge): the citizen's one hang-up is
    the end of both."""
    registry = Registry()
    first = bridge_of(_bridge(FIRST, "seat1", state="ended", outcome="handed_off"), 2.0)
    second = bridge_of(_bridge(SECOND, "agent7", direction="12345->110"), 2.0)
    registry.add(first)
    registry.add(second)
    assert registry.followed() == [first, second] and following(first)
    routed = correlate(_message("Hangup", Uniqueid="u-c", Channel="PJSIP/citizen-1"),
                       registry, 0.0)
    assert routed == [(first, PartyGone(Role.CITIZEN)), (second, PartyGone(Role.CITIZEN))]
    # the key-presser's Unhold is about the most recent bridge only
    assert correlate(_message("Unhold", Uniqueid="u-agent7"), registry, 0.0) == \
        [(second, FeatureReturned())]
    registry.remove(second)
    assert registry.by_party("u-c") == (first, Role.CITIZEN)
    assert registry.all_by_party("u-agent7") == []


def test_an_ended_bridge_is_followed_until_its_citizen_hung_up() -> None:
    talking = bridge_of(_bridge(FIRST, "seat1", state="ended"), 2.0)
    gone = bridge_of(_bridge(SECOND, "seat1", state="ended", citizen_hangup_at="x"), 2.0)
    registry = Registry()
    registry.add(talking)
    registry.add(gone)
    assert registry.followed() == [talking] and registry.live() == []
