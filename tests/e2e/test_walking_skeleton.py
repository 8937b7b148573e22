"""One real call, one key, three parties, one Redis record."""

from __future__ import annotations

from typing import cast

from gateway.ami.codec import AmiMessage
from gateway.lab.calls import one_key_call
from gateway.lab.lab import Lab
from gateway.lab.provision import asterisk_root


def _channels(members: list[AmiMessage]) -> list[str]:
    return sorted(m.get("Channel").split("-")[0] for m in members)


def test_one_key_three_party_then_handoff(lab: Lab) -> None:
    """Asterisk shows three in the conference, two after the call-taker leaves; Redis
    holds the bridge field by field with its times in order and one event per change."""
    seen = one_key_call(lab, number="13800138000", name="Zhang San")

    assert _channels(seen.three_party) == ["PJSIP/12345", "PJSIP/citizen", "PJSIP/seat1"]
    assert _channels(seen.after_seat_left) == ["PJSIP/12345", "PJSIP/citizen"]
    assert seen.exits == {"citizen": 0, "seat1": 0, "12345": 0}

    r = seen.record
    citizen = next(m for m in seen.three_party if m.get("Channel").startswith("PJSIP/citizen"))
    seat = next(m for m in seen.three_party if m.get("Channel").startswith("PJSIP/seat1"))
    agent = next(m for m in seen.three_party if m.get("Channel").startswith("PJSIP/12345"))
    assert r["bridge_id"] == seen.bridge_id
    assert r["conference"] == seen.conference == f"linkgw-{seen.bridge_id}"
    assert r["direction"] == "110->12345"
    assert r["citizen_number"] == "13800138000"
    assert r["citizen_name"] == "Zhang San"
    assert r["citizen_channel"] == citizen.get("Channel")
    assert r["citizen_uniqueid"] == citizen.get("Uniqueid")
    assert r["citizen_linkedid"] == citizen.get("Linkedid")
    assert r["seat"] == "seat1"
    assert r["seat_channel"] == seat.get("Channel")
    assert r["seat_uniqueid"] == seat.get("Uniqueid")
    assert r["seat_linkedid"] == seat.get("Linkedid")
    assert r["target"] == "PJSIP/12345"
    assert r["agent_channel"] == agent.get("Channel")
    assert r["agent_uniqueid"] == agent.get("Uniqueid") == f"{seen.bridge_id}-a0"
    assert r["agent_linkedid"] == agent.get("Linkedid")
    assert r["state"] == "ended"
    assert r["outcome"] == "handed_off"
    times = [r["requested_at"], r["conference_at"], r["agent_answered_at"],
             r["seat_left_at"], r["ended_at"]]
    assert times == sorted(times), times
    assert r["seq"] == str(len(seen.events))

    kinds = [e["event"] for e in seen.events]
    assert kinds[:2] == ["transfer_requested", "redirected"]
    assert kinds.index("agent_answered") < kinds.index("left:seat") < kinds.index("left:citizen")
    assert kinds.index("left:citizen") < kinds.index("conference_ended")
    assert kinds.index("left:citizen") < kinds.index("citizen_hangup")
    assert set(kinds) >= {"joined:citizen", "joined:seat", "joined:agent", "left:agent"}
    assert [int(e["seq"]) for e in seen.events] == list(range(1, len(seen.events) + 1))

    call = cast(dict[str, str],
                lab.redis_client().hgetall(f"linkgw:call:{r['citizen_uniqueid']}"))
    assert call["number"] == "13800138000"
    assert call["channel"] == r["citizen_channel"]
    assert call["registered_at"] < r["requested_at"]


def test_second_run_reuses_the_cached_asterisk_root(lab: Lab) -> None:
    """The lab runs from the cached root folder (built once, keyed by its packages)."""
    assert lab.asterisk is not None
    assert lab.asterisk.root == asterisk_root()
    assert (asterisk_root() / "usr/sbin/asterisk").exists()
