"""What each person hears when things go wrong, and the 12345 agent's own key, on the
real lab in both AGI modes: checked by what Asterisk reports playing to whom (music on
hold, prompts, which phones ring) and by the records.

The lab's policy (gateway/lab/lab.py): 12345 is tried twice (ring timeout 4 s), then the
liaison seat; 12345 → 110 goes to seat2."""

from __future__ import annotations

from gateway.lab.lab import ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, noanswer_scenario
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    events,
    finish,
    mark,
    played,
    settled,
    wait_event,
)


def _conference(lab: Lab, since: int) -> str:
    return wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                      Channel="PJSIP/seat1").get("Conference")


def test_a_citizen_left_alone_while_12345_rings_hears_music(any_lab: Lab) -> None:
    """The call-taker leaves while 12345 still rings (out, twice): the citizen, alone in
    the conference, hears music on hold until the liaison seat answers."""
    lab = any_lab
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"), calls=2)
    liaison = answering(lab, "liaison", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=6500, key=ONEKEY)
    caller = citizen(lab, hold_ms=22000)
    conference = _conference(lab, since)
    left = wait_event(lab, since, "the call-taker leaving", Event="ConfbridgeLeave",
                      Conference=conference, Channel="PJSIP/seat1")
    # the liaison answers: citizen and liaison go on in a plain call; the liaison's leg
    # joins the conference first, or (its answer's news came first) is moved straight
    # into the plain call: the citizen is alone until whichever came first
    direct = wait_event(lab, since, "citizen and liaison in a plain call", Event="UserEvent",
                        UserEvent="LinkgwDirect", Bridge=conference.removeprefix("linkgw-"))
    joins = events(lab, since, "ConfbridgeJoin", Conference=conference,
                   Channel="PJSIP/liaison")
    came = float((joins[0] if joins else direct).get("Timestamp"))
    # Asterisk may start the music a hair before it publishes the leave (same moment,
    # another thread); the hold at the key is seconds earlier
    starts = [float(e.get("Timestamp")) for e in
              events(lab, since, "MusicOnHoldStart", Channel="PJSIP/citizen")]
    alone = (float(left.get("Timestamp")) - 0.25, came)
    assert any(alone[0] <= at <= alone[1] for at in starts), \
        f"no music on hold for the citizen while alone {alone}: music started at {starts}"
    assert finish(caller, seat, agent, liaison) == {
        "citizen": 0, "seat1": 0, "12345": 0, "liaison": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"))
    assert (record["outcome"], record["agent_target"]) == ("handed_off", "PJSIP/liaison")
    # the call-taker had gone before the liaison came: citizen and liaison go on in a
    # plain call (where the keys work), not left in the conference
    assert record["direct_with"] == "agent"


def test_nobody_reached_after_the_call_taker_left_the_citizen_hears_a_notice_and_110_rings(
        any_lab: Lab) -> None:
    """Nobody answers (12345 twice, then the liaison seat), and the call-taker has already
    gone: the citizen hears the return notice, then the 110 seats ring again and seat2
    takes the call."""
    lab = any_lab
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(noanswer_scenario("12345"), calls=2)
    liaison = lab.phone("liaison")
    liaison.start(noanswer_scenario("liaison"))
    # the citizen's call rings both seats; seat1 answers first and seat2 is cancelled;
    # seat2 answers when the seats ring again
    police = answering(lab, "seat2", hold_ms=3000, ring_ms=1000, calls=2)
    seat = answering(lab, "seat1", hold_ms=6500, key=ONEKEY)
    caller = citizen(lab, hold_ms=30000, released_ok=True)
    conference = _conference(lab, since)
    wait_event(lab, since, "the call-taker leaving", Event="ConfbridgeLeave",
               Conference=conference, Channel="PJSIP/seat1")
    notice = played(lab, since, "PJSIP/citizen", lab.transfer.return_prompt)
    wait_until(lambda: any(float(e.get("Timestamp")) > float(notice.get("Timestamp"))
                           for e in events(lab, since, "Newchannel", Channel="PJSIP/seat2")),
               TIMEOUT, "110 ringing again after the notice")
    assert finish(caller, seat, agent, liaison, police) == {
        "citizen": 0, "seat1": 0, "12345": 0, "liaison": 0, "seat2": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"), "citizen_returned")
    assert record["outcome"] == "kept_by_first_line"
    assert record["work_order_push_needed"] == "yes"


def test_the_12345_agent_hands_the_citizen_back_with_one_key(any_lab: Lab) -> None:
    """110 hands the citizen to 12345; the call-taker leaves; the 12345 agent, in the
    plain call with the citizen, presses the same key: a 12345 → 110 bridge to seat2,
    linked to the first one."""
    lab = any_lab
    since = mark(lab)
    agent = lab.phone("12345")
    agent.start(answer_scenario("12345", ring_ms=300, hold_ms=5000,
                                presses=[(11000, ONEKEY)]))
    # the citizen's call rings seat2 too (cancelled: seat1 answers first); then 12345
    # hands the citizen to seat2
    police = answering(lab, "seat2", hold_ms=30000, ring_ms=1000, calls=2)
    seat = answering(lab, "seat1", hold_ms=6500, key=ONEKEY)
    caller = citizen(lab, hold_ms=32000)
    first = _conference(lab, since).removeprefix("linkgw-")
    back = wait_event(lab, since, "the 12345 agent in a conference", Event="ConfbridgeJoin",
                      Channel="PJSIP/12345")
    second = wait_event(lab, since, "the second bridge", Event="ConfbridgeJoin",
                        Channel="PJSIP/seat2").get("Conference").removeprefix("linkgw-")
    assert second != first and back is not None
    assert finish(caller, seat, agent, police) == {
        "citizen": 0, "seat1": 0, "12345": 0, "seat2": 0}
    record, _ = settled(lab, second)
    assert (record["direction"], record["parent_bridge"], record["seat"]) == \
        ("12345->110", first, "12345")
    assert record["agent_target"] == "PJSIP/seat2"
    earlier, _ = settled(lab, first)
    assert earlier["outcome"] == "handed_off"
