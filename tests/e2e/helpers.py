"""Helpers of the end-to-end tests: start phones, follow a conference, read Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import cast

from gateway.ami.codec import AmiMessage
from gateway.lab.calls import Observed, read_bridge
from gateway.lab.lab import Lab
from gateway.lab.process import LabError, wait_until
from gateway.lab.sipp import SippPhone, answer_scenario, citizen_scenario
from gateway.schema import Keys, idx_seat, known_field

TIMEOUT = 30.0


def citizen(lab: Lab, hold_ms: int, dial: str = "110", number: str = "13800138000",
            name: str = "Zhang San", released_ok: bool = False,
            voice_hz: float = 0, keys: str = "") -> SippPhone:
    """A citizen; by default it must hang up itself (a BYE to it fails its scenario)."""
    phone = lab.phone("citizen")
    phone.start(citizen_scenario("citizen", number, dial, hold_ms=hold_ms, caller_name=name,
                                 released_ok=released_ok, voice_hz=voice_hz, keys=keys))
    return phone


def answering(lab: Lab, endpoint: str, hold_ms: int, key: str = "", key_after_ms: int = 800,
              ring_ms: int = 200, calls: int = 1) -> SippPhone:
    phone = lab.phone(endpoint)
    phone.start(answer_scenario(endpoint, ring_ms=ring_ms, hold_ms=hold_ms, key=key,
                                key_after_ms=key_after_ms), calls=calls)
    return phone


def keeper_running(lab: Lab) -> None:
    """Process mode: a site that has taken calls before has a digit keeper (an earlier
    program's detached part started it); a lab whose first call this is starts one with
    a short call first, so that a code typed in one go with the key is kept (without a
    keeper the key's program may lose it: docs/not-built-yet.md)."""
    if lab.agi != "process" or lab.keeper_listening():
        return
    warm_up = citizen(lab, hold_ms=1500, released_ok=True)
    warm_up.wait(TIMEOUT)
    wait_until(lab.keeper_listening, TIMEOUT, "the digit keeper listening")


def mark(lab: Lab) -> int:
    """Index of the next AMI event: later waits only look at what happens from now on."""
    assert lab.probe is not None
    return lab.probe.mark()


def wait_event(lab: Lab, since: int, what: str, **headers: str) -> AmiMessage:
    """An AMI event seen from index ``since`` whose headers start with the given values
    (``Event`` is matched exactly)."""
    assert lab.probe is not None
    name = headers.pop("Event", "")

    def match(e: AmiMessage) -> bool:
        return (not name or e.event == name) and \
            all(e.get(k).startswith(v) for k, v in headers.items())

    return lab.probe.wait_event(match, TIMEOUT, what, since)


def events(lab: Lab, since: int, name: str, **headers: str) -> list[AmiMessage]:
    """The AMI events seen so far from index ``since`` that match."""
    assert lab.probe is not None
    return [e for e in lab.probe.events[since:] if e.event == name and
            all(e.get(k).startswith(v) for k, v in headers.items())]


def logged(lab: Lab, bridge_id: str, event: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Wait until the bridge's stream holds ``event``; return the record and events."""
    got: list[tuple[dict[str, str], list[dict[str, str]]]] = []

    def seen() -> bool:
        record, events = read_bridge(lab, bridge_id)
        got[:] = [(record, events)]
        return any(e["event"] == event for e in events)

    wait_until(seen, TIMEOUT, f"{event} logged for bridge {bridge_id}")
    return got[0]


def settled(lab: Lab, bridge_id: str, *events: str
            ) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Wait until the bridge has ended and its stream holds ``events``; return the
    record and its events."""
    got: list[tuple[dict[str, str], list[dict[str, str]]]] = []

    def done() -> bool:
        record, stream = read_bridge(lab, bridge_id)
        got[:] = [(record, stream)]
        kinds = {e["event"] for e in stream}
        return record.get("state") == "ended" and set(events) <= kinds

    try:
        wait_until(done, TIMEOUT, f"bridge {bridge_id} ended with {events}")
    except LabError as exc:
        raise LabError(f"{exc}; record: {got[0][0] if got else None}") from exc
    unknown = sorted(k for k in got[0][0] if not known_field(k))
    assert not unknown, f"fields not in gateway.schema.BRIDGE_FIELDS: {unknown}"
    return got[0]


def played(lab: Lab, since: int, channel: str, sound: str) -> AmiMessage:
    """Asterisk ran Playback(``sound``) on ``channel`` (its Newexten event)."""
    return wait_event(lab, since, f"{sound} played to {channel}", Event="Newexten",
                      Channel=channel, Application="Playback", AppData=sound)


def channels(members: list[AmiMessage]) -> list[str]:
    """``PJSIP/seat1-00000001`` → ``PJSIP/seat1``, sorted."""
    return sorted(m.get("Channel").rsplit("-", 1)[0] for m in members)


def finish(*phones: SippPhone) -> dict[str, int]:
    return {p.name.rsplit("-", 1)[0]: p.wait(TIMEOUT) for p in phones}


def bridges_of_seat(lab: Lab, seat: str) -> list[str]:
    """Bridge ids opened by a key-presser, oldest first (Redis index)."""
    r = lab.redis_client()
    return [str(m) for m in r.zrange(redis_keys(lab).index(idx_seat(seat)), 0, -1)]


def redis_keys(lab: Lab) -> Keys:
    """The lab's Redis keys: gateway.schema's, under the configured prefix."""
    return Keys(lab.config.redis.prefix)


def redis_hash(lab: Lab, key: str) -> dict[str, str]:
    """A Redis hash as text (the lab's client decodes responses)."""
    return cast(dict[str, str], lab.redis_client().hgetall(key))


def new_bridge(lab: Lab, seat: str, before: list[str]) -> str:
    """Wait for a bridge opened by ``seat`` that was not in ``before``."""
    found: list[str] = []

    def appeared() -> bool:
        found[:] = [b for b in bridges_of_seat(lab, seat) if b not in before]
        return bool(found)

    wait_until(appeared, TIMEOUT, f"a new bridge opened by {seat}")
    assert len(found) == 1, found
    return found[0]


def bridged_together(lab: Lab, a: str, b: str) -> bool:
    """Asterisk's CoreShowChannels: are channels ``a`` and ``b`` in one bridge, and is it
    a plain two-party bridge (BridgeList: not ConfBridge's softmix)?"""
    assert lab.probe is not None
    _, rows = lab.probe.action("CoreShowChannels")
    ids = {r.get("Channel"): r.get("BridgeId") for r in rows}
    if not ids.get(a) or ids.get(a) != ids.get(b):
        return False
    _, bridges = lab.probe.action("BridgeList")
    tech = {br.get("BridgeUniqueid"): br.get("BridgeTechnology") for br in bridges}
    return tech.get(ids[a]) not in (None, "softmix")


def live_channels(lab: Lab) -> list[str]:
    assert lab.probe is not None
    _, rows = lab.probe.action("CoreShowChannels")
    return [r.get("Channel") for r in rows]


def wait_bridged(lab: Lab, a: str, b: str) -> None:
    """Wait until Asterisk shows ``a`` and ``b`` in one bridge that is not a conference."""
    wait_until(lambda: bridged_together(lab, a, b), TIMEOUT, f"{a} and {b} in one bridge")


def check_handoff(lab: Lab, seen: Observed) -> None:
    """Asterisk showed three in the conference, then citizen and 12345 in one plain
    call once the call-taker left; Redis holds the bridge field by field, its times in
    the order they happened, one event per change."""

    assert channels(seen.three_party) == ["PJSIP/12345", "PJSIP/citizen", "PJSIP/seat1"]
    assert channels(seen.plain_call) == ["PJSIP/12345", "PJSIP/citizen"]
    assert seen.plain_technology not in ("", "softmix")
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
    assert r["asterisk"] == f"linkgw-{lab.name}"
    assert (r["code"], r["code_given"]) == ("", "no")
    assert (r["state"], r["outcome"], r["direct_with"]) == ("ended", "handed_off", "agent")
    # 12345 is dialled at the key: it may answer before the key's feature returns, or
    # (a process-mode program that started late) after the parties were moved in
    assert r["requested_at"] < r["agent_answered_at"] < r["ended_at"]
    # the citizen hears the notice from the key on; the key is done once it is over
    times = [r["requested_at"], r["notice_played_at"], r["key_done_at"],
             r["conference_at"], r["seat_left_at"], r["ended_at"], r["citizen_hangup_at"]]
    assert times == sorted(times), times
    assert r["seq"] == str(len(seen.events))

    kinds = [e["event"] for e in seen.events]
    assert kinds[:2] == ["transfer_requested", "agent_dialing"]
    # the answer is seen live (OriginateResponse) or, by a process-mode follower that
    # logged in after it, from the conference (joined:agent)
    answered = min(kinds.index(k) for k in ("agent_answered", "joined:agent") if k in kinds)
    assert answered < kinds.index("left:seat")  # three parties before the call-taker left
    assert kinds.index("key_done") < kinds.index("redirected") < kinds.index("joined:citizen")
    assert kinds.index("notice_played") < kinds.index("joined:citizen")
    assert kinds.index("joined:citizen") < kinds.index("left:seat") < \
        kinds.index("bridged_direct") < kinds.index("citizen_hangup")
    assert set(kinds) >= {"joined:seat", "joined:agent", "left:citizen"}
    assert [int(e["seq"]) for e in seen.events] == list(range(1, len(seen.events) + 1))

    call = redis_hash(lab, redis_keys(lab).call(r["citizen_uniqueid"]))
    assert call["number"] == "13800138000"
    assert call["channel"] == r["citizen_channel"]
    assert call["registered_at"] < r["requested_at"]


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """``linkgw <args>`` on the lab's config, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "gateway", *args, "--config",
                           str(lab.config_path)], capture_output=True, text=True,
                          timeout=60, check=False, env=dict(os.environ) | lab.secrets_env)
