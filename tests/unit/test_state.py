"""The transfer state machine: every edge of the table, and the illegal ones."""

from __future__ import annotations

import pytest

from gateway.bridge.state import (
    AgentAnswered,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    ConferenceEnded,
    Context,
    DialAgent,
    Event,
    IllegalTransition,
    Joined,
    Left,
    Mode,
    Outcome,
    RecordCallback,
    RecordWorkOrderNeeded,
    Redirected,
    RedirectFailed,
    ReturnCitizen,
    Role,
    State,
    iso,
    transition,
)

T = 1_795_895_437.25
AT = iso(T)
PLAN = ("PJSIP/12345", "PJSIP/12345", "PJSIP/liaison")
FIRST = Context(Mode.TRANSFER, PLAN, attempt=0, retry_delay=2.0)
LAST = Context(Mode.TRANSFER, PLAN, attempt=2, retry_delay=2.0)
LAST_SEAT_GONE = Context(Mode.TRANSFER, PLAN, attempt=2, seat_present=False)
CONSULT = Context(Mode.CONSULT, PLAN)
S = State
C, SEAT, AG = Role.CITIZEN, Role.SEAT, Role.AGENT
ENDS = {"ended_at": AT}


def test_iso_is_utc_with_milliseconds() -> None:
    assert AT == "2026-11-28T19:50:37.250Z"


EDGES: list[tuple[State, Event, Context, State, dict[str, str], tuple[object, ...],
                  Outcome | None]] = [
    # moving the call
    (S.REQUESTED, Redirected(T), FIRST, S.DIALING, {"conference_at": AT}, (DialAgent(0),),
     None),
    (S.REQUESTED, RedirectFailed(T, "Channel does not exist"), FIRST, S.ENDED,
     {"ended_at": AT, "error": "Channel does not exist"}, (), Outcome.FAILED),
    (S.REQUESTED, Left(T, C), FIRST, S.ENDED, {"citizen_left_at": AT} | ENDS,
     (RecordCallback(),), Outcome.ABANDONED),
    # ringing
    (S.DIALING, AgentAnswered(T, "PJSIP/12345-3", "b-a0"), FIRST, S.THREE_PARTY,
     {"agent_answered_at": AT, "agent_channel": "PJSIP/12345-3", "agent_uniqueid": "b-a0",
      "agent_target": "PJSIP/12345", "attempts": "1"}, (), None),
    (S.DIALING, AgentFailed(T, "busy"), FIRST, S.DIALING,
     {"attempt_1_failure": "busy", "attempt_1_failed_at": AT, "agent_failure": "busy"},
     (DialAgent(1, 2.0),), None),
    (S.DIALING, AgentFailed(T, "no answer"), LAST, S.RETURNED,
     {"attempt_3_failure": "no answer", "attempt_3_failed_at": AT,
      "agent_failure": "no answer", "agent_failed_at": AT},
     (RecordWorkOrderNeeded(), BridgeDirect(SEAT)), None),
    (S.DIALING, AgentFailed(T, "unreachable"), LAST_SEAT_GONE, S.RETURNED,
     {"attempt_3_failure": "unreachable", "attempt_3_failed_at": AT,
      "agent_failure": "unreachable", "agent_failed_at": AT},
     (RecordWorkOrderNeeded(), ReturnCitizen()), None),
    (S.DIALING, Left(T, C), FIRST, S.ENDED, {"citizen_left_at": AT} | ENDS,
     (CancelAgent(), RecordCallback()), Outcome.ABANDONED),
    (S.DIALING, Left(T, SEAT), FIRST, S.DIALING, {"seat_left_at": AT}, (), None),
    # three parties, one key
    (S.THREE_PARTY, Left(T, SEAT), FIRST, S.HANDED_OFF, {"seat_left_at": AT}, (), None),
    (S.THREE_PARTY, Left(T, C), FIRST, S.ENDED, {"citizen_left_at": AT} | ENDS, (),
     Outcome.THREE_PARTY_ENDED),
    (S.THREE_PARTY, Left(T, AG), FIRST, S.ENDED, {"agent_left_at": AT} | ENDS, (),
     Outcome.THREE_PARTY_ENDED),
    (S.HANDED_OFF, Left(T, C), FIRST, S.ENDED, {"citizen_left_at": AT} | ENDS, (),
     Outcome.HANDED_OFF),
    (S.HANDED_OFF, Left(T, AG), FIRST, S.ENDED, {"agent_left_at": AT} | ENDS, (),
     Outcome.HANDED_OFF),
    # three parties, consult
    (S.THREE_PARTY, Left(T, SEAT), CONSULT, S.HANDED_OFF,
     {"seat_left_at": AT, "decision": "taken_by_other_line"}, (BridgeDirect(AG),), None),
    (S.THREE_PARTY, Left(T, AG), CONSULT, S.RETURNED,
     {"agent_left_at": AT, "decision": "kept_by_first_line"}, (BridgeDirect(SEAT),), None),
    (S.THREE_PARTY, Left(T, C), CONSULT, S.ENDED, {"citizen_left_at": AT} | ENDS, (),
     Outcome.THREE_PARTY_ENDED),
    # back with the first line
    (S.RETURNED, Left(T, C), FIRST, S.ENDED, {"citizen_left_at": AT} | ENDS, (),
     Outcome.KEPT_BY_110),
    (S.RETURNED, Left(T, SEAT), FIRST, S.ENDED, {"seat_left_at": AT} | ENDS, (),
     Outcome.KEPT_BY_110),
    # joins record their time (and the other line's linkedid)
    (S.DIALING, Joined(T, AG, "PJSIP/12345-3", "L1"), FIRST, S.DIALING,
     {"agent_joined_at": AT, "agent_linkedid": "L1"}, (), None),
    (S.THREE_PARTY, Joined(T, SEAT), FIRST, S.THREE_PARTY, {"seat_joined_at": AT}, (), None),
    # the conference ends
    (S.HANDED_OFF, ConferenceEnded(T), FIRST, S.ENDED, ENDS, (), Outcome.HANDED_OFF),
    (S.THREE_PARTY, ConferenceEnded(T), FIRST, S.ENDED, ENDS, (), Outcome.THREE_PARTY_ENDED),
    (S.RETURNED, ConferenceEnded(T), FIRST, S.ENDED, ENDS, (), Outcome.KEPT_BY_110),
    (S.DIALING, ConferenceEnded(T), FIRST, S.ENDED, ENDS, (), Outcome.ABANDONED),
    (S.REQUESTED, ConferenceEnded(T), FIRST, S.ENDED, ENDS, (), Outcome.ABANDONED),
    # late news
    (S.ENDED, AgentAnswered(T, "PJSIP/12345-3"), FIRST, S.ENDED,
     {"late_agent_channel": "PJSIP/12345-3"}, (CancelAgent(),), None),
    (S.ENDED, Left(T, AG), FIRST, S.ENDED, {"agent_left_at": AT}, (), None),
    (S.ENDED, ConferenceEnded(T), FIRST, S.ENDED, {}, (), None),
    (S.ENDED, AgentFailed(T, "no answer"), FIRST, S.ENDED, {}, (), None),
    (S.ENDED, Joined(T, SEAT), FIRST, S.ENDED, {}, (), None),
    (S.ENDED, Redirected(T), FIRST, S.ENDED, {}, (), None),
    (S.ENDED, RedirectFailed(T, "gone"), FIRST, S.ENDED, {}, (), None),
]


@pytest.mark.parametrize("state,event,ctx,to,fields,commands,outcome", EDGES)
def test_edge(state: State, event: Event, ctx: Context, to: State, fields: dict[str, str],
              commands: tuple[object, ...], outcome: Outcome | None) -> None:
    """Each row: in this state, on this event, in this context → next state, the fields
    it sets, the commands it asks for, the outcome."""
    edge = transition(state, event, ctx)
    assert (edge.state, edge.fields, edge.commands, edge.outcome) == \
        (to, fields, commands, outcome)


@pytest.mark.parametrize("state,event", [
    (S.REQUESTED, AgentAnswered(T)),
    (S.REQUESTED, AgentFailed(T)),
    (S.REQUESTED, Left(T, SEAT)),
    (S.DIALING, Redirected(T)),
    (S.DIALING, RedirectFailed(T)),
    (S.THREE_PARTY, AgentAnswered(T)),
    (S.THREE_PARTY, AgentFailed(T)),
    (S.THREE_PARTY, Redirected(T)),
    (S.HANDED_OFF, AgentFailed(T)),
    (S.HANDED_OFF, Redirected(T)),
    (S.RETURNED, AgentAnswered(T)),
    (S.RETURNED, Redirected(T)),
])
def test_illegal_edge_is_rejected(state: State, event: Event) -> None:
    """An event the table has no edge for raises IllegalTransition naming both."""
    with pytest.raises(IllegalTransition) as info:
        transition(state, event, FIRST)
    assert info.value.state is state and info.value.event is event
    assert event.kind in str(info.value)


def test_every_state_and_event_kind_is_covered() -> None:
    """The table above names every state and every event kind at least once."""
    assert {row[0] for row in EDGES} == set(State)
    kinds = {type(row[1]) for row in EDGES}
    assert kinds == {Redirected, RedirectFailed, AgentAnswered, AgentFailed, Joined, Left,
                     ConferenceEnded}
