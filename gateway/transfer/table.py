"""The transfer state machine: pure, no I/O, the one writer of a bridge's state.

``transition(bridge, event)`` takes a :class:`Phase` (everything the table decides on:
the state, the mode, the dial plan, which attempt rings, who is present, whether the
key's feature has returned) and returns a :class:`Transition`: the next phase, the
record fields the edge sets, the commands the caller must carry out, and the outcome
when the bridge ends. An edge that is not in the table raises
:class:`IllegalTransition`. Nothing outside this module changes a phase.

The flow (one key, ``*1``)::

    key ──▶ requested ──agent answered──▶ answered
              │  (the other line rings; citizen and key-presser are still in their own
              │   call, the citizen hears music while the key-presser may type a code)
              │ citizen joined                 │ citizen joined
              ▼                                ▼
           dialing ──agent answered──▶ three_party ──seat left──▶ handed_off
              │ ▲ agent failed,              │ (consult) agent left, or  │
              │ │                             │ declined with a reason     │
              └─┘ attempts left              ▼                            │
              │ agent failed, none left ─▶ returned_to_first_line         │
              ▼                                 │                         │
            ended ◀── citizen left / conference ended / direct call ──────┘

The key's feature (the dialplan's ``[linkgw-onekey]``) returns after the code was read:
:class:`KeyDone` carries the code and whether it is refused. Only then are citizen and
key-presser moved into the conference (:class:`Move`), or, when the other line was not
reached, into a plain call again with a tone (:class:`BridgeDirect`).

Roles: ``citizen``; ``seat`` is whoever pressed the key (a 110 call-taker, or a 12345
agent in the reverse direction); ``agent`` is the line being dialled in.
"""

from __future__ import annotations

from dataclasses import replace

from gateway.outcome import Outcome
from gateway.schema import attempt_failed_at, attempt_failure, iso, joined_at, left_at
from gateway.transfer.events import (
    Abandon,
    AgentAnswered,
    AgentFailed,
    BridgeDirect,
    CancelAgent,
    Command,
    ConferenceEnded,
    Declined,
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
    Release,
    ReturnCitizen,
    Transition,
)
from gateway.transfer.phase import LIVE, Mode, Phase, Role, State

_BEFORE_CONFERENCE = (State.REQUESTED, State.ANSWERED)


def _ended_outcome(state: State) -> Outcome:
    if state is State.HANDED_OFF:
        return Outcome.HANDED_OFF
    if state is State.THREE_PARTY:
        return Outcome.THREE_PARTY_ENDED
    if state is State.RETURNED:
        return Outcome.KEPT_BY_FIRST_LINE
    return Outcome.ABANDONED


def _end(p: Phase, at: str, outcome: Outcome, fields: dict[str, str] | None = None,
         commands: tuple[Command, ...] = ()) -> Transition:
    return Transition(replace(p, state=State.ENDED), {"ended_at": at} | (fields or {}),
                      commands, outcome)


def _abandoned(p: Phase, at: str) -> Transition:
    """The citizen left before the other line took the call. A key-presser already in
    the conference the citizen never reached is released (nobody else will come)."""
    release = (Release(Role.SEAT),) if Role.SEAT in p.joined and Role.CITIZEN not in \
        p.joined and Role.SEAT not in p.gone else ()
    return _end(replace(p, gone=p.gone | {Role.CITIZEN}), at, Outcome.ABANDONED,
                {left_at(Role.CITIZEN): at}, (CancelAgent(), RecordCallback(), *release))


def _back_to_first_line(p: Phase, fields: dict[str, str]) -> Transition:
    """Nobody on the other line: the key-presser gets the citizen back in a plain call
    (once the key's feature has returned), or the citizen rings the first line again."""
    returned = replace(p, state=State.RETURNED)
    if not p.seat_present:  # the matter is back with the first line: the bridge is over
        return _end(replace(p, directed=True), fields["agent_failed_at"],
                    Outcome.KEPT_BY_FIRST_LINE, fields, (RecordWorkOrderNeeded(), ReturnCitizen()))
    if not p.key_done:
        return Transition(returned, fields, (RecordWorkOrderNeeded(),))
    return Transition(replace(returned, directed=True), fields,
                      (RecordWorkOrderNeeded(), BridgeDirect(Role.SEAT)))


def _agent_failed(p: Phase, reason: str, at: str) -> Transition:
    n = p.attempt + 1
    fields = {attempt_failure(n): reason, attempt_failed_at(n): at, "agent_failure": reason}
    if n < len(p.plan):  # the next attempt's leg has not joined or left anything yet
        nxt = replace(p, attempt=n, joined=p.joined - {Role.AGENT},
                      gone=p.gone - {Role.AGENT})
        return Transition(nxt, fields, (DialAgent(n, p.retry_delay),))
    return _back_to_first_line(p, fields | {"agent_failed_at": at})


def _answered(p: Phase, state: State, at: str, channel: str, uniqueid: str) -> Transition:
    return Transition(replace(p, state=state), {
        "agent_answered_at": at, "agent_channel": channel, "agent_uniqueid": uniqueid,
        "agent_target": p.plan[p.attempt], "attempts": str(p.attempt + 1)})


def _met(q: Phase, fields: dict[str, str]) -> Transition:
    """The citizen and the other line are both in the conference now. With the
    key-presser still there: three parties. Already gone (they left while the other
    line rang, or before the citizen was in): handed off, and the two go on in a plain
    call, as when the key-presser leaves a three-party call, so that the keys work
    again (the other line can hand the citizen on in turn)."""
    if q.seat_present:
        return Transition(replace(q, state=State.THREE_PARTY), fields)
    if q.mode is Mode.CONSULT:
        fields = fields | {"decision": "taken_by_other_line"}
    return Transition(replace(q, state=State.HANDED_OFF, directed=True), fields,
                      (BridgeDirect(Role.AGENT),))


def _key_done(p: Phase, event: KeyDone, at: str) -> Transition:
    fields = dict(event.fields) | {"key_done_at": at}
    done = replace(p, key_done=True)
    if event.refusal and p.state in LIVE:
        return _end(done, at, Outcome.REFUSED, fields | {
            "refusal": event.refusal, "refusal_detail": event.detail}, (CancelAgent(),))
    target = fields.get("route_target", "")
    if target and p.state is State.REQUESTED and p.plan[p.attempt] != target:
        # the item is the liaison seat's or a further line's: the leg ringing now is
        # cancelled, and its failure dials the next attempt, which is theirs (then no
        # further one)
        plan = (*p.plan[:p.attempt + 1], target)
        return Transition(replace(done, plan=plan), fields | {
            "plan": ",".join(plan), "rerouted_at": at}, (CancelAgent(), Move()))
    if fields.get("route", "liaison") != "liaison":  # a further line's item, not rerouted:
        for name in ("route", "route_target", "direction"):  # the line that has it keeps it
            fields.pop(name, None)
    if p.state in _BEFORE_CONFERENCE:
        return Transition(done, fields, (Move(),))
    if p.state is State.RETURNED and not p.directed and p.seat_present:
        return Transition(replace(done, directed=True), fields, (BridgeDirect(Role.SEAT),))
    return Transition(done, fields)


def _joined(p: Phase, event: Joined, at: str) -> Transition:
    role = event.role
    fields = {joined_at(role): at}
    if role is Role.AGENT and event.linkedid:
        fields["agent_linkedid"] = event.linkedid  # OriginateResponse does not carry it
    q = replace(p, joined=p.joined | {role})
    match p.state, role:
        case State.REQUESTED, Role.CITIZEN:
            return Transition(replace(q, state=State.DIALING), fields | {"conference_at": at})
        case State.ANSWERED, Role.CITIZEN:
            return _met(q, fields | {"conference_at": at})
        case State.REQUESTED, Role.AGENT:  # the join came before the answer's news
            t = _answered(q, State.ANSWERED, at, event.channel, "")
            return replace(t, fields=fields | {k: v for k, v in t.fields.items() if v})
        case State.DIALING, Role.AGENT:
            t = _answered(q, State.DIALING, at, event.channel, "")
            return _met(t.phase, fields | {k: v for k, v in t.fields.items() if v})
    return Transition(q, fields)


def _left(p: Phase, event: Left, at: str) -> Transition:
    role, consult = event.role, p.mode is Mode.CONSULT
    if role in p.gone:
        return Transition(p)  # the conference, then the channel: counted once
    q = replace(p, gone=p.gone | {role})
    fields = {left_at(role): at}
    match p.state, role:
        case (State.REQUESTED | State.ANSWERED | State.DIALING), Role.CITIZEN:
            return _abandoned(p, at)
        case State.ANSWERED, Role.AGENT:  # it hung up before the citizen arrived
            return _agent_failed(replace(q, state=State.REQUESTED), "declined", at)
        case State.RETURNED, Role.SEAT if not p.directed:  # gone while typing the code
            return _end(replace(q, directed=True), at, Outcome.KEPT_BY_FIRST_LINE, fields,
                        (ReturnCitizen(),))
        case State.THREE_PARTY, Role.SEAT if consult:
            return Transition(replace(q, state=State.HANDED_OFF, directed=True),
                              fields | {"decision": "taken_by_other_line"},
                              (BridgeDirect(Role.AGENT),))
        case State.THREE_PARTY, Role.SEAT:
            return Transition(replace(q, state=State.HANDED_OFF, directed=True), fields,
                              (BridgeDirect(Role.AGENT),))
        case State.THREE_PARTY, Role.AGENT if consult:
            return Transition(replace(q, state=State.RETURNED, directed=True),
                              fields | {"decision": "kept_by_first_line"},
                              (BridgeDirect(Role.SEAT),))
        case State.THREE_PARTY, _:
            return _end(q, at, Outcome.THREE_PARTY_ENDED, fields)
        case (State.HANDED_OFF | State.RETURNED), _:
            return _end(q, at, _ended_outcome(p.state), fields)
    return Transition(q, fields)


def transition(p: Phase, event: Event) -> Transition:
    """The whole table. Reads top to bottom as: in this state, on this event, do this."""
    at = iso(event.at)
    match p.state, event:
        # -- late news about a bridge that has ended: recorded, never acted on, except
        # a leg that answered into it, which is hung up
        case State.ENDED, AgentAnswered(channel=ch):
            return Transition(p, {"late_agent_channel": ch}, (CancelAgent(),))
        case State.ENDED, Left(role=role) if role not in p.gone:
            return Transition(replace(p, gone=p.gone | {role}), {left_at(role): at})
        case State.ENDED, Joined(role=Role.SEAT) if Role.CITIZEN in p.gone \
                and Role.CITIZEN not in p.joined:  # moved in after the citizen had gone
            return Transition(replace(p, joined=p.joined | {Role.SEAT}),
                              {joined_at(Role.SEAT): at}, (Release(Role.SEAT),))
        case State.ENDED, _:
            return Transition(p)
        # -- refused at the key: over as it opens (AMI down: it could not be tried)
        case State.REQUESTED, RefusedAtKey(reason=reason, detail=detail) if not p.joined:
            outcome = Outcome.FAILED if reason == "ami_down" else Outcome.REFUSED
            return _end(p, at, outcome, {"refusal": reason, "refusal_detail": detail})
        # -- the key's feature returned
        case _, KeyDone() as done:
            return _key_done(p, done, at)
        # -- moving citizen and key-presser into the conference
        case (State.REQUESTED | State.ANSWERED), Redirected():
            return Transition(p, {"redirected_at": at})
        case _, Redirected():
            return Transition(p)
        case (State.REQUESTED | State.ANSWERED), RedirectFailed(reason=reason):
            return _end(p, at, Outcome.FAILED, {"error": reason}, (CancelAgent(),))
        case _, RedirectFailed():
            return Transition(p)  # citizen already in: someone joined it on their own
        # -- the other line
        case State.REQUESTED, AgentAnswered(channel=ch, uniqueid=uid):
            return _answered(p, State.ANSWERED, at, ch, uid)
        case State.DIALING, AgentAnswered(channel=ch, uniqueid=uid):
            t = _answered(p, State.DIALING, at, ch, uid)
            return _met(t.phase, t.fields)
        case _, AgentAnswered(uniqueid=uid):
            return Transition(p, {"agent_uniqueid": uid} if uid else {})  # join was first
        case (State.REQUESTED | State.DIALING), AgentFailed(reason=reason):
            return _agent_failed(p, reason, at)
        case _, AgentFailed():
            return Transition(p)  # an earlier attempt's late news
        # -- who is where
        case _, Joined() as joined:
            return _joined(p, joined, at)
        case _, Left() as left:
            return _left(p, left, at)
        # -- consult: the other line declines with a reason; the first line keeps it
        case State.THREE_PARTY, Declined(code=code, reason=reason) if p.mode is Mode.CONSULT:
            return Transition(replace(p, state=State.RETURNED, directed=True), {
                "decision": "kept_by_first_line", "decline_reason": reason,
                "decline_reason_code": code, "decline_reason_at": at,
                "decline_reason_via": "key"}, (BridgeDirect(Role.SEAT),))
        case _, Declined():
            return Transition(p)  # not the three together (the dialplan refuses it too)
        case (State.HANDED_OFF | State.RETURNED), DirectBridged():
            return _end(p, at, _ended_outcome(p.state))
        case _, DirectBridged():
            return Transition(p)
        case State.REQUESTED | State.ANSWERED, ConferenceEnded():
            return Transition(p)  # an attempt's leg came and went before the citizen
        case _, ConferenceEnded():
            return _end(p, at, _ended_outcome(p.state))
        case _, Abandon(reason=reason):
            return _end(p, at, Outcome.UNKNOWN, {"outcome_reason": reason},
                        (CancelAgent(),))
    raise IllegalTransition(p.state, event)
