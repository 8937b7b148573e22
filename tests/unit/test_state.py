"""The transfer state machine: every edge of the table, and what holds for any order of
events Asterisk may report."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outcome import Outcome
from gateway.schema import iso
from gateway.transfer.events import (
    Abandon,
    AgentAnswered,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    ConferenceEnded,
    DialAgent,
    DirectBridged,
    Event,
    IllegalTransition,
    Joined,
    KeyDone,
    Left,
    Move,
    RecordCallback,
    RecordWorkOrderNeeded,
    Redirected,
    RedirectFailed,
    RefusedAtKey,
    ReturnCitizen,
)
from gateway.transfer.phase import Mode, Phase, Role, State
from gateway.transfer.table import transition

T = 1_795_895_437.25
AT = iso(T)
PLAN = ("PJSIP/12345", "PJSIP/12345", "PJSIP/liaison")
S = State
C, SEAT, AG = Role.CITIZEN, Role.SEAT, Role.AGENT
START = Phase(plan=PLAN, retry_delay=2.0)
CODE = (("code", "101"), ("code_given", "yes"), ("category", "vehicle"))
LIAISON_CODE = (("code", "206"), ("item", "daily_help.lost_id_card"), ("route", "liaison"),
                ("route_target", "PJSIP/duty-liaison"))
TRAFFIC_CODE = (("code", "103"), ("route", "122"), ("route_target", "PJSIP/122"),
                ("direction", "110->122"))


def at(state: State, **changes: object) -> Phase:
    return replace(START, state=state, **changes)  # type: ignore[arg-type]


def test_iso_is_utc_with_milliseconds() -> None:
    assert AT == "2026-11-28T19:50:37.250Z"


ANSWER = {"agent_answered_at": AT, "agent_channel": "PJSIP/12345-3",
          "agent_uniqueid": "b-a0", "agent_target": "PJSIP/12345", "attempts": "1"}
EDGES: list[tuple[Phase, Event, Phase, dict[str, str], tuple[object, ...],
                  Outcome | None]] = [
    # -- at the key: the other line rings, the code is being typed
    (START, AgentAnswered(T, "PJSIP/12345-3", "b-a0"), at(S.ANSWERED), ANSWER, (), None),
    (START, KeyDone(T, CODE), at(S.REQUESTED, key_done=True),
     dict(CODE) | {"key_done_at": AT}, (Move(),), None),
    (START, KeyDone(T, CODE, "never_transfer", "vehicle.fire_lane stays with 110"),
     at(S.ENDED, key_done=True),
     dict(CODE) | {"key_done_at": AT, "ended_at": AT, "refusal": "never_transfer",
                   "refusal_detail": "vehicle.fire_lane stays with 110"},
     (CancelAgent(),), Outcome.REFUSED),
    # a liaison item while 12345's queue rings: that leg is cancelled, the liaison is
    # the next (and last) attempt; its failure dials it
    (START, KeyDone(T, LIAISON_CODE),
     at(S.REQUESTED, key_done=True, plan=("PJSIP/12345", "PJSIP/duty-liaison")),
     dict(LIAISON_CODE) | {"key_done_at": AT, "plan": "PJSIP/12345,PJSIP/duty-liaison",
                           "rerouted_at": AT}, (CancelAgent(), Move()), None),
    (at(S.REQUESTED, key_done=True, plan=("PJSIP/12345", "PJSIP/duty-liaison")),
     AgentFailed(T, "cancelled"),
     at(S.REQUESTED, key_done=True, attempt=1, plan=("PJSIP/12345", "PJSIP/duty-liaison")),
     {"attempt_1_failure": "cancelled", "attempt_1_failed_at": AT,
      "agent_failure": "cancelled"}, (DialAgent(1, 2.0),), None),
    # … but 12345 answered before the code: the agent is on, nobody is cancelled
    (at(S.ANSWERED), KeyDone(T, LIAISON_CODE), at(S.ANSWERED, key_done=True),
     dict(LIAISON_CODE) | {"key_done_at": AT}, (Move(),), None),
    # … and a liaison already ringing (its own attempt) is not rung again
    (at(S.REQUESTED, attempt=2), KeyDone(T, (("route_target", "PJSIP/liaison"),)),
     at(S.REQUESTED, attempt=2, key_done=True),
     {"route_target": "PJSIP/liaison", "key_done_at": AT}, (Move(),), None),
    # a further line's item while 12345's queue rings: rerouted there, and the bridge's
    # direction becomes that line's
    (START, KeyDone(T, TRAFFIC_CODE),
     at(S.REQUESTED, key_done=True, plan=("PJSIP/12345", "PJSIP/122")),
     dict(TRAFFIC_CODE) | {"key_done_at": AT, "plan": "PJSIP/12345,PJSIP/122",
                           "rerouted_at": AT}, (CancelAgent(), Move()), None),
    # … but 12345 answered before the code: 12345 keeps it, its direction, no route
    (at(S.ANSWERED), KeyDone(T, TRAFFIC_CODE), at(S.ANSWERED, key_done=True),
     {"code": "103", "key_done_at": AT}, (Move(),), None),
    (START, Redirected(T), START, {"redirected_at": AT}, (), None),
    (START, RedirectFailed(T, "boom"), at(S.ENDED), {"ended_at": AT, "error": "boom"},
     (CancelAgent(),), Outcome.FAILED),
    (START, Joined(T, C, "PJSIP/citizen-1"), at(S.DIALING, joined=frozenset({C})),
     {"citizen_joined_at": AT, "conference_at": AT}, (), None),
    (START, Joined(T, SEAT), at(S.REQUESTED, joined=frozenset({SEAT})),
     {"seat_joined_at": AT}, (), None),
    (START, Left(T, C), at(S.ENDED, gone=frozenset({C})),
     {"citizen_left_at": AT, "ended_at": AT}, (CancelAgent(), RecordCallback()),
     Outcome.ABANDONED),
    (START, Left(T, SEAT), at(S.REQUESTED, gone=frozenset({SEAT})),
     {"seat_left_at": AT}, (), None),
    (START, AgentFailed(T, "busy"), at(S.REQUESTED, attempt=1),
     {"attempt_1_failure": "busy", "attempt_1_failed_at": AT, "agent_failure": "busy"},
     (DialAgent(1, 2.0),), None),
    (START, ConferenceEnded(T), START, {}, (), None),
    # the last attempt fails before the key's feature returned: wait for it
    (at(S.REQUESTED, attempt=2), AgentFailed(T, "busy"), at(S.RETURNED, attempt=2),
     {"attempt_3_failure": "busy", "attempt_3_failed_at": AT, "agent_failure": "busy",
      "agent_failed_at": AT}, (RecordWorkOrderNeeded(),), None),
    # … then the key returns: back into a plain call, with the tone
    (at(S.RETURNED, attempt=2), KeyDone(T), at(S.RETURNED, attempt=2, key_done=True,
                                               directed=True),
     {"key_done_at": AT}, (BridgeDirect(SEAT),), None),
    (at(S.REQUESTED, attempt=2, key_done=True), AgentFailed(T, "busy"),
     at(S.RETURNED, attempt=2, key_done=True, directed=True),
     {"attempt_3_failure": "busy", "attempt_3_failed_at": AT, "agent_failure": "busy",
      "agent_failed_at": AT}, (RecordWorkOrderNeeded(), BridgeDirect(SEAT)), None),
    # the key-presser hung up at the key and nobody answers: the citizen rings 110 again
    (at(S.REQUESTED, attempt=2, gone=frozenset({SEAT})), AgentFailed(T, "busy"),
     at(S.ENDED, attempt=2, gone=frozenset({SEAT}), directed=True),
     {"attempt_3_failure": "busy", "attempt_3_failed_at": AT, "agent_failure": "busy",
      "agent_failed_at": AT, "ended_at": AT},
     (RecordWorkOrderNeeded(), ReturnCitizen()), Outcome.KEPT_BY_FIRST_LINE),
    (at(S.RETURNED, attempt=2), Left(T, SEAT),
     at(S.ENDED, attempt=2, gone=frozenset({SEAT}), directed=True),
     {"seat_left_at": AT, "ended_at": AT}, (ReturnCitizen(),), Outcome.KEPT_BY_FIRST_LINE),
    # -- the other line answered before the citizen was moved in
    (at(S.ANSWERED), Joined(T, C), at(S.THREE_PARTY, joined=frozenset({C})),
     {"citizen_joined_at": AT, "conference_at": AT}, (), None),
    # the key-presser left before the citizen was in: the citizen and the other line go
    # on in a plain call, where the keys work (the other line may hand them back)
    (at(S.ANSWERED, gone=frozenset({SEAT})), Joined(T, C),
     at(S.HANDED_OFF, joined=frozenset({C}), gone=frozenset({SEAT}), directed=True),
     {"citizen_joined_at": AT, "conference_at": AT}, (BridgeDirect(AG),), None),
    (at(S.ANSWERED, mode=Mode.CONSULT, gone=frozenset({SEAT})), Joined(T, C),
     at(S.HANDED_OFF, mode=Mode.CONSULT, joined=frozenset({C}), gone=frozenset({SEAT}),
        directed=True),
     {"citizen_joined_at": AT, "conference_at": AT, "decision": "taken_by_other_line"},
     (BridgeDirect(AG),), None),
    (at(S.ANSWERED), KeyDone(T), at(S.ANSWERED, key_done=True), {"key_done_at": AT},
     (Move(),), None),
    (at(S.ANSWERED), Left(T, AG), at(S.REQUESTED, attempt=1),
     {"attempt_1_failure": "declined", "attempt_1_failed_at": AT,
      "agent_failure": "declined"}, (DialAgent(1, 2.0),), None),
    (at(S.ANSWERED), Left(T, C), at(S.ENDED, gone=frozenset({C})),
     {"citizen_left_at": AT, "ended_at": AT}, (CancelAgent(), RecordCallback()),
     Outcome.ABANDONED),
    # -- the citizen is in, the other line rings
    (at(S.DIALING), AgentAnswered(T, "PJSIP/12345-3", "b-a0"), at(S.THREE_PARTY),
     ANSWER, (), None),
    (at(S.DIALING, gone=frozenset({SEAT})), AgentAnswered(T, "PJSIP/12345-3", "b-a0"),
     at(S.HANDED_OFF, gone=frozenset({SEAT}), directed=True), ANSWER, (BridgeDirect(AG),),
     None),
    (at(S.DIALING, gone=frozenset({SEAT})), Joined(T, AG, "PJSIP/12345-3", "l-9"),
     at(S.HANDED_OFF, joined=frozenset({AG}), gone=frozenset({SEAT}), directed=True),
     {"agent_joined_at": AT, "agent_linkedid": "l-9", "agent_answered_at": AT,
      "agent_channel": "PJSIP/12345-3", "agent_target": "PJSIP/12345", "attempts": "1"},
     (BridgeDirect(AG),), None),
    (at(S.DIALING), Joined(T, AG, "PJSIP/12345-3", "l-9"),
     at(S.THREE_PARTY, joined=frozenset({AG})),
     {"agent_joined_at": AT, "agent_linkedid": "l-9", "agent_answered_at": AT,
      "agent_channel": "PJSIP/12345-3", "agent_target": "PJSIP/12345", "attempts": "1"},
     (), None),
    (at(S.DIALING, attempt=2, key_done=True), AgentFailed(T, "no answer"),
     at(S.RETURNED, attempt=2, key_done=True, directed=True),
     {"attempt_3_failure": "no answer", "attempt_3_failed_at": AT,
      "agent_failure": "no answer", "agent_failed_at": AT},
     (RecordWorkOrderNeeded(), BridgeDirect(SEAT)), None),
    (at(S.DIALING), Left(T, C), at(S.ENDED, gone=frozenset({C})),
     {"citizen_left_at": AT, "ended_at": AT}, (CancelAgent(), RecordCallback()),
     Outcome.ABANDONED),
    (at(S.DIALING), Left(T, SEAT), at(S.DIALING, gone=frozenset({SEAT})),
     {"seat_left_at": AT}, (), None),
    # -- three parties
    (at(S.THREE_PARTY), Left(T, SEAT),
     at(S.HANDED_OFF, gone=frozenset({SEAT}), directed=True), {"seat_left_at": AT},
     (BridgeDirect(AG),), None),
    (at(S.THREE_PARTY, mode=Mode.CONSULT), Left(T, SEAT),
     at(S.HANDED_OFF, mode=Mode.CONSULT, gone=frozenset({SEAT}), directed=True),
     {"seat_left_at": AT, "decision": "taken_by_other_line"}, (BridgeDirect(AG),), None),
    (at(S.THREE_PARTY, mode=Mode.CONSULT), Left(T, AG),
     at(S.RETURNED, mode=Mode.CONSULT, gone=frozenset({AG}), directed=True),
     {"agent_left_at": AT, "decision": "kept_by_first_line"}, (BridgeDirect(SEAT),), None),
    (at(S.THREE_PARTY), Left(T, AG), at(S.ENDED, gone=frozenset({AG})),
     {"agent_left_at": AT, "ended_at": AT}, (), Outcome.THREE_PARTY_ENDED),
    (at(S.THREE_PARTY), Left(T, C), at(S.ENDED, gone=frozenset({C})),
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.THREE_PARTY_ENDED),
    (at(S.THREE_PARTY), ConferenceEnded(T), at(S.ENDED), {"ended_at": AT}, (),
     Outcome.THREE_PARTY_ENDED),
    # -- handed off, returned: the first to leave ends it; so does the plain call
    (at(S.HANDED_OFF), Left(T, C), at(S.ENDED, gone=frozenset({C})),
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.HANDED_OFF),
    (at(S.HANDED_OFF), DirectBridged(T, AG), at(S.ENDED), {"ended_at": AT}, (),
     Outcome.HANDED_OFF),
    (at(S.RETURNED, directed=True), Left(T, SEAT),
     at(S.ENDED, directed=True, gone=frozenset({SEAT})),
     {"seat_left_at": AT, "ended_at": AT}, (), Outcome.KEPT_BY_FIRST_LINE),
    (at(S.RETURNED, directed=True), DirectBridged(T, SEAT), at(S.ENDED, directed=True),
     {"ended_at": AT}, (), Outcome.KEPT_BY_FIRST_LINE),
    # -- a leave is counted once (the conference, then the channel)
    (at(S.DIALING, gone=frozenset({SEAT})), Left(T, SEAT),
     at(S.DIALING, gone=frozenset({SEAT})), {}, (), None),
    # -- nobody can tell how it ended
    (at(S.THREE_PARTY), Abandon(T, "no trace"), at(S.ENDED),
     {"ended_at": AT, "outcome_reason": "no trace"}, (CancelAgent(),), Outcome.UNKNOWN),
    # -- late news about an ended bridge
    (at(S.ENDED), AgentAnswered(T, "PJSIP/12345-4", "b-a1"), at(S.ENDED),
     {"late_agent_channel": "PJSIP/12345-4"}, (CancelAgent(),), None),
    (at(S.ENDED), Left(T, SEAT), at(S.ENDED, gone=frozenset({SEAT})),
     {"seat_left_at": AT}, (), None),
    (at(S.ENDED), ConferenceEnded(T), at(S.ENDED), {}, (), None),
    (at(S.ENDED), KeyDone(T, CODE, "never_transfer"), at(S.ENDED), {}, (), None),
]


@pytest.mark.parametrize(("phase", "event", "to", "fields", "commands", "outcome"), EDGES,
                         ids=[f"{p.state}-{e.kind}-{i}" for i, (p, e, *_) in enumerate(EDGES)])
def test_edge(phase: Phase, event: Event, to: Phase, fields: dict[str, str],
              commands: tuple[object, ...], outcome: Outcome | None) -> None:
    """Each row: in this phase, on this event: the next phase, fields, commands, outcome."""
    edge = transition(phase, event)
    assert (edge.phase, edge.fields, edge.commands, edge.outcome) == \
        (to, fields, commands, outcome)


@pytest.mark.parametrize(("reason", "outcome"), [
    ("never_transfer", Outcome.REFUSED), ("emergency", Outcome.REFUSED),
    ("ami_down", Outcome.FAILED)])
def test_a_refusal_at_the_key_is_an_edge_that_ends_the_bridge_as_it_opens(
        reason: str, outcome: Outcome) -> None:
    edge = transition(START, RefusedAtKey(T, reason, "why"))
    assert (edge.phase, edge.fields, edge.commands, edge.outcome) == (
        at(S.ENDED), {"ended_at": AT, "refusal": reason, "refusal_detail": "why"}, (),
        outcome)


def test_a_refusal_at_the_key_comes_before_anyone_joined_or_not_at_all() -> None:
    with pytest.raises(IllegalTransition, match="from requested on refused_at_key"):
        transition(at(S.REQUESTED, joined=frozenset({SEAT})), RefusedAtKey(T, "x"))
    with pytest.raises(IllegalTransition, match="from dialing on refused_at_key"):
        transition(at(S.DIALING), RefusedAtKey(T, "x"))
    assert transition(at(S.ENDED), RefusedAtKey(T, "x")) == transition(at(S.ENDED), Event(T))


def test_an_event_the_table_does_not_know_is_illegal() -> None:
    with pytest.raises(IllegalTransition, match="no transition from requested on event"):
        transition(START, Event(T))


EVENTS = st.one_of(
    st.builds(AgentAnswered, st.just(T), st.just("PJSIP/12345-1"), st.just("b-a0")),
    st.builds(AgentFailed, st.just(T), st.sampled_from(["busy", "no answer"])),
    st.builds(KeyDone, st.just(T), st.just(CODE),
              st.sampled_from(["", "", "never_transfer"])),
    st.builds(Joined, st.just(T), st.sampled_from(list(Role))),
    st.builds(Left, st.just(T), st.sampled_from(list(Role))),
    st.builds(DirectBridged, st.just(T), st.sampled_from([SEAT, AG])),
    st.builds(Redirected, st.just(T)),
    st.builds(RedirectFailed, st.just(T), st.just("x")),
    st.builds(ConferenceEnded, st.just(T)),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([Mode.TRANSFER, Mode.CONSULT]), st.lists(EVENTS, max_size=25))
def test_any_order_of_news_ends_well(mode: Mode, events: list[Event]) -> None:
    """Whatever Asterisk reports in whatever order: no error, an ended bridge never
    lives again, an outcome is given exactly once (when it ends), the attempt never
    runs past the plan, and a dial is only asked for while the bridge lives."""
    phase = replace(START, mode=mode)
    outcomes = 0
    for event in events:
        edge = transition(phase, event)
        if phase.state is S.ENDED:
            assert edge.state is S.ENDED and edge.outcome is None
        if edge.outcome is not None:
            outcomes += 1
            assert edge.state is S.ENDED and phase.state is not S.ENDED
        assert edge.phase.attempt < len(PLAN)
        if any(isinstance(c, DialAgent) for c in edge.commands):
            assert edge.state is not S.ENDED
        phase = edge.phase
    assert outcomes == (1 if phase.state is S.ENDED else 0)
