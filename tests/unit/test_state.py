"""The transfer state machine: every edge of the table, and the illegal ones."""

from __future__ import annotations

import pytest

from gateway.bridge.state import (
    AgentAnswered,
    AgentFailed,
    ConferenceEnded,
    DialAgent,
    Event,
    HangupAgent,
    IllegalTransition,
    Joined,
    Left,
    Outcome,
    Redirected,
    RedirectFailed,
    Role,
    State,
    iso,
    transition,
)

T = 1_795_895_437.25
AT = iso(T)


def test_iso_is_utc_with_milliseconds() -> None:
    assert AT == "2026-11-28T19:50:37.250Z"


@pytest.mark.parametrize("state,event,to,fields,commands,outcome", [
    (State.REQUESTED, Redirected(T), State.DIALING, {"conference_at": AT}, (DialAgent(),),
     None),
    (State.REQUESTED, RedirectFailed(T, "Channel does not exist"), State.ENDED,
     {"ended_at": AT, "error": "Channel does not exist"}, (), Outcome.FAILED),
    (State.DIALING, AgentAnswered(T, "PJSIP/12345-3", "b-agent"), State.THREE_PARTY,
     {"agent_answered_at": AT, "agent_channel": "PJSIP/12345-3", "agent_uniqueid": "b-agent"},
     (), None),
    (State.DIALING, AgentFailed(T, "busy"), State.RETURNED,
     {"agent_failed_at": AT, "agent_failure": "busy"}, (), None),
    (State.DIALING, Left(T, Role.CITIZEN), State.ENDED,
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.ABANDONED),
    (State.DIALING, Left(T, Role.SEAT), State.DIALING, {"seat_left_at": AT}, (), None),
    (State.THREE_PARTY, Left(T, Role.SEAT), State.HANDED_OFF, {"seat_left_at": AT}, (), None),
    (State.THREE_PARTY, Left(T, Role.CITIZEN), State.ENDED,
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.THREE_PARTY_ENDED),
    (State.THREE_PARTY, Left(T, Role.AGENT), State.ENDED,
     {"agent_left_at": AT, "ended_at": AT}, (), Outcome.THREE_PARTY_ENDED),
    (State.HANDED_OFF, Left(T, Role.CITIZEN), State.ENDED,
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.HANDED_OFF),
    (State.HANDED_OFF, Left(T, Role.AGENT), State.ENDED,
     {"agent_left_at": AT, "ended_at": AT}, (), Outcome.HANDED_OFF),
    (State.RETURNED, Left(T, Role.CITIZEN), State.ENDED,
     {"citizen_left_at": AT, "ended_at": AT}, (), Outcome.KEPT_BY_110),
    (State.DIALING, Joined(T, Role.AGENT, "PJSIP/12345-3", "L1"), State.DIALING,
     {"agent_joined_at": AT, "agent_linkedid": "L1"}, (), None),
    (State.THREE_PARTY, Joined(T, Role.SEAT), State.THREE_PARTY, {"seat_joined_at": AT}, (),
     None),
    (State.ENDED, AgentAnswered(T, "PJSIP/12345-3"), State.ENDED, {"agent_answered_at": AT},
     (HangupAgent(),), None),
    (State.ENDED, Left(T, Role.AGENT), State.ENDED, {"agent_left_at": AT}, (), None),
    (State.ENDED, ConferenceEnded(T), State.ENDED, {}, (), None),
    (State.ENDED, AgentFailed(T, "no answer"), State.ENDED, {}, (), None),
    (State.HANDED_OFF, ConferenceEnded(T), State.ENDED, {"ended_at": AT}, (),
     Outcome.HANDED_OFF),
    (State.THREE_PARTY, ConferenceEnded(T), State.ENDED, {"ended_at": AT}, (),
     Outcome.THREE_PARTY_ENDED),
    (State.RETURNED, ConferenceEnded(T), State.ENDED, {"ended_at": AT}, (),
     Outcome.KEPT_BY_110),
    (State.DIALING, ConferenceEnded(T), State.ENDED, {"ended_at": AT}, (), Outcome.ABANDONED),
])
def test_edge(state: State, event: Event, to: State, fields: dict[str, str],
              commands: tuple[object, ...], outcome: Outcome | None) -> None:
    """Each row: in this state, on this event → next state, fields, commands, outcome."""
    edge = transition(state, event)
    assert (edge.state, edge.fields, edge.commands, edge.outcome) == \
        (to, fields, commands, outcome)


@pytest.mark.parametrize("state,event", [
    (State.REQUESTED, AgentAnswered(T)),
    (State.REQUESTED, AgentFailed(T)),
    (State.REQUESTED, Left(T, Role.SEAT)),
    (State.DIALING, Redirected(T)),
    (State.THREE_PARTY, AgentAnswered(T)),
    (State.THREE_PARTY, Redirected(T)),
    (State.HANDED_OFF, AgentFailed(T)),
    (State.ENDED, Redirected(T)),
    (State.ENDED, RedirectFailed(T)),
])
def test_illegal_edge_is_rejected(state: State, event: Event) -> None:
    """An event the table has no edge for raises IllegalTransition naming both."""
    with pytest.raises(IllegalTransition) as info:
        transition(state, event)
    assert info.value.state is state and info.value.event is event
    assert event.kind in str(info.value)
