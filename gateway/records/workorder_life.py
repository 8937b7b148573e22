"""A work order's whole life, as a table (pure: no Redis, no clock of its own).

12345 dispatches a matter to the police; 110's duty person accepts it (受理), assigns it
to a unit (交办) and answers it (反馈). Around that line:

- 110 returns it to 12345, with a reason (退单): it is not a police matter;
- the unit it was assigned to hands it back to the 110 centre, with a reason (退回):
  110 assigns it again;
- 110 reassigns it to another unit, with a reason (改派);
- 110 asks 12345 for more time (延期), in working days or hours; 12345 grants it (the
  answer deadline moves) or refuses it;
- 12345 closes it with a result (办结) once answered, imports the citizen's
  satisfaction from its follow-up call (回访满意度), or reopens it (重办): 110 must answer
  it again, on a new deadline.

:func:`plan` turns an action on the current record into the change to write (fields,
index moves, event), or None when the action is already done (a retry), or refuses it
with a clear error. Every change names who, when and why; the desk writes it guarded by
the record's ``revision``, so two writers never both move an order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.bridge.store import Index
from gateway.deadlines import Deadlines, Due, Term
from gateway.records.errors import Conflict, Malformed
from gateway.schema import (
    IDX_DUTY_DUE,
    IDX_WORKORDER_DEADLINE,
    IDX_WORKORDERS_OPEN,
    epoch,
    iso,
)

MAX_TEXT = 2000  # characters of a summary, a note, a reason
_UNIT = re.compile(r"[^\x00-\x1f\x7f\u2028\u2029\x85]{1,80}")
#: 办结 results and 回访 satisfaction, as 12345 reports them.
RESULTS = ("resolved", "partly_resolved", "unresolved", "explained")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")
#: Where an order is still 110's to answer (its deadline runs).
RUNNING = ("accepted", "assigned", "reopened")


@dataclass(frozen=True)
class Action:
    stamp: str  # its event is workorder_<stamp>; the record's <stamp>_at, _by, _via
    from_: tuple[str, ...]  # the statuses it may start from
    to: str  # the status after it ("": unchanged)
    side: str  # whose step: "110" or "12345" (the API's roles follow it)


ACTIONS: dict[str, Action] = {
    "accept": Action("accepted", ("received",), "accepted", "110"),
    "assign": Action("assigned", ("accepted",), "assigned", "110"),
    "answer": Action("answered", ("assigned", "reopened"), "answered", "110"),
    "return": Action("returned", ("received", *RUNNING), "returned", "110"),
    "unit_return": Action("unit_returned", ("assigned",), "accepted", "110"),
    "reassign": Action("reassigned", ("assigned", "reopened"), "assigned", "110"),
    "extension": Action("extension_requested", RUNNING, "", "110"),
    "extension_decision": Action("extension_decided", RUNNING, "", "12345"),
    "reopen": Action("reopened", ("answered", "closed"), "reopened", "12345"),
    "close": Action("closed", ("answered",), "closed", "12345"),
    "satisfaction": Action("satisfaction", ("closed",), "", "12345"),
}
#: The first three by the status they lead to (``POST /workorders/<t>/status``).
STEP_ACTIONS = {"accepted": "accept", "assigned": "assign", "answered": "answer"}


@dataclass(frozen=True)
class Plan:
    event: str
    stamp: str  # the prefix of the record's who and how (``<stamp>_by``)
    fields: dict[str, str]
    indexes: tuple[Index, ...]


@dataclass(frozen=True)
class Context:
    ticket: str
    now: float
    deadlines: Deadlines
    max_days: int  # the longest extension, in working days


def text(value: Any, name: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise Malformed(f"{name} is required", f"{name}_missing")
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{name} must be text", f"{name}_malformed")
    if len(value) > MAX_TEXT:
        raise Malformed(f"{name} is over {MAX_TEXT} characters", f"{name}_malformed")
    return value


def _unit(value: Any) -> str:
    unit = text(value, "unit", required=True)
    if _UNIT.fullmatch(unit) is None:
        raise Malformed("unit: 1 to 80 characters, no control characters or line "
                        "separators", "unit_malformed")
    return unit


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise Malformed(f"{name} must be one of {', '.join(choices)}", f"{name}_malformed")
    return str(value)


def _by(now: float, deadline: str) -> str:
    """"yes" when ``now`` is not past the record's ``deadline`` (none: yes), else "no"."""
    return "yes" if not deadline or now <= epoch(deadline) else "no"


def _due(due: Due) -> dict[str, str]:
    return {"due_at": iso(due.at), "due_calendar": due.calendar}


def _running(current: dict[str, str]) -> str:
    """The deadline that runs now: the accept deadline until it is accepted."""
    return current.get("due_at", "") if current.get("accepted_at") else \
        current.get("accept_due_at", "")


def plan(action: str, current: dict[str, str], given: dict[str, Any], ctx: Context
         ) -> Plan | None:
    """The change ``action`` makes to the order ``current``; None: already made."""
    rule = ACTIONS[action]
    status = current.get("status", "received")
    done = _DONE[action](current, given)
    if done:
        return None
    if status not in rule.from_:
        raise Conflict(f"work order is {status}: cannot {action.replace('_', ' ')}",
                       "loop_order")
    fields, indexes = _WORK[action](current, given, ctx)
    if rule.to:
        fields["status"] = rule.to
    fields["revision"] = str(int(current.get("revision") or 0) + 1)
    return Plan(f"workorder_{rule.stamp}", rule.stamp, fields, indexes)


# -- already done? (a retry changes nothing) ----------------------------------------------

def _status_is(status: str) -> Callable[[dict[str, str], dict[str, Any]], bool]:
    return lambda current, _: current.get("status") == status


def _assigned(current: dict[str, str], given: dict[str, Any]) -> bool:
    """Assigned to this unit already (a retry); to another: told, never silently kept."""
    if current.get("status") != "assigned":
        return False
    if given.get("unit") in (None, "", current.get("unit")):
        return True
    raise Conflict(f"work order is assigned to {current.get('unit', '')} already: "
                   "reassign it (with a reason)", "already_assigned")


def _same_unit(current: dict[str, str], given: dict[str, Any]) -> bool:
    return current.get("status") == "assigned" and current.get("unit") == given.get("unit")


def _extension_asked(current: dict[str, str], given: dict[str, Any]) -> bool:
    if current.get("extension") != "requested":
        return False
    if current.get("extension_requested_reason") == given.get("reason"):
        return True
    raise Conflict("an extension is already requested and not decided", "extension_pending")


def _decided(current: dict[str, str], given: dict[str, Any]) -> bool:
    if current.get("extension") in ("granted", "refused"):
        if current["extension"] == given.get("decision"):
            return True
        raise Conflict(f"the extension was already {current['extension']}",
                       "extension_decided")
    if current.get("extension") != "requested":
        raise Conflict("no extension is requested", "no_extension")
    return False


def _handed_back(current: dict[str, str], given: dict[str, Any]) -> bool:
    """The same hand-back again (a retry: the same unit, the same reason); a unit may
    hand back a later assignment."""
    return current.get("status") == "accepted" and bool(current.get("unit_returned_at")) \
        and not current.get("unit") and \
        current.get("unit_returned_from") == given.get("unit") and \
        current.get("unit_returned_reason") == given.get("reason")


def _set_once(field: str) -> Callable[[dict[str, str], dict[str, Any]], bool]:
    def done(current: dict[str, str], given: dict[str, Any]) -> bool:
        if not current.get(field):
            return False
        if current[field] == given.get(field):
            return True
        raise Conflict(f"the work order's {field} is already {current[field]}",
                       f"{field}_conflict")
    return done


_DONE: dict[str, Callable[[dict[str, str], dict[str, Any]], bool]] = {
    "accept": _status_is("accepted"), "assign": _assigned,
    "answer": _status_is("answered"), "return": _status_is("returned"),
    "unit_return": _handed_back,
    "reassign": _same_unit, "extension": _extension_asked,
    "extension_decision": _decided, "reopen": _status_is("reopened"),
    "close": _set_once("result"), "satisfaction": _set_once("satisfaction"),
}


# -- what each action writes --------------------------------------------------------------

Work = tuple[dict[str, str], tuple[Index, ...]]


def _accept(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    due = ctx.deadlines.response(current.get("category", ""), ctx.now)
    return ({"accepted_at": iso(ctx.now), **_due(due),
             "accepted_on_time": _by(ctx.now, current.get("accept_due_at", "")),
             **_note("accepted", given)},
            (Index(IDX_WORKORDER_DEADLINE, ctx.ticket, due.at),
             Index(IDX_DUTY_DUE, ctx.ticket, -1)))  # accepted: the duty phone stops


def _assign(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    return {"assigned_at": iso(ctx.now), "unit": _unit(given.get("unit")),
            **_note("assigned", given)}, ()


def _answer(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    fields = {"answered_at": iso(ctx.now), **_note("answered", given)}
    if "on_time" not in current:  # the first answer is the response the rate counts
        accepted = current.get("accepted_on_time", "yes")  # orders from before it
        fields["on_time"] = "yes" if accepted == "yes" and \
            _by(ctx.now, current.get("due_at", "")) == "yes" else "no"
    return fields, _closed_for_110(ctx.ticket)


def _return(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    """Back to 12345: a response too (the rate counts it, on time by the deadline that
    ran), and nothing more is 110's."""
    fields = {"returned_at": iso(ctx.now),
              "returned_reason": text(given.get("reason"), "reason", required=True)}
    if "on_time" not in current:
        fields["on_time"] = _by(ctx.now, _running(current))
    return fields, _closed_for_110(ctx.ticket)


def _unit_return(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    """The unit hands it back to the centre (only the unit it is assigned to: a late
    retry by a unit it was taken from hands back nothing); its deadline keeps running."""
    unit = _unit(given.get("unit"))
    if unit != current.get("unit"):
        raise Conflict(f"work order is assigned to {current.get('unit', '')}, not {unit}",
                       "not_its_unit")
    return {"unit_returned_at": iso(ctx.now), "unit_returned_from": unit,
            "unit_returned_reason": text(given.get("reason"), "reason", required=True),
            "unit": ""}, ()


def _reassign(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    return {"reassigned_at": iso(ctx.now), "unit": _unit(given.get("unit")),
            "reassigned_from": current.get("unit", ""),
            "reassigned_reason": text(given.get("reason"), "reason", required=True),
            "reassign_count": str(int(current.get("reassign_count") or 0) + 1)}, ()


def extension_term(given: dict[str, Any], max_days: int) -> Term:
    """``days`` (working days) or ``hours``, one of them, within the site's maximum."""
    days, hours = given.get("days"), given.get("hours")
    if (days in (None, "")) == (hours in (None, "")):
        raise Malformed("give the extension in days (working days) or hours, one of them",
                        "extension_malformed")
    try:
        if days not in (None, ""):
            number = int(str(days)) if str(days).isascii() and str(days).isdigit() else -1
            if not 1 <= number <= max_days:
                raise ValueError
            return Term(working_days=number)
        value = float(str(hours)) if isinstance(hours, int | float | str) else -1.0
        if not 0 < value <= max_days * 24:
            raise ValueError
        return Term(hours=value)
    except ValueError:
        raise Malformed(f"an extension is 1 to {max_days} working days or up to "
                        f"{max_days * 24} hours", "extension_malformed") from None


def _extension(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    asked = extension_term(given, ctx.max_days)
    return {"extension": "requested", "extension_requested_at": iso(ctx.now),
            "extension_request_count": str(int(current.get("extension_request_count") or 0)
                                           + 1),
            "extension_requested_reason": text(given.get("reason"), "reason", required=True),
            "extension_days": str(asked.working_days) if asked.working_days else "",
            "extension_hours": f"{asked.hours:g}" if not asked.working_days else ""}, ()


def _decide(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    """Granted: the answer deadline moves by what was asked, from where it stood."""
    decision = _choice(given.get("decision"), "decision", ("granted", "refused"))
    fields = {"extension": decision, "extension_decided_at": iso(ctx.now),
              **_note("extension_decided", given)}
    if decision == "refused":
        return fields, ()
    asked = Term(working_days=int(current.get("extension_days") or 0),
                 hours=float(current.get("extension_hours") or 0))
    before = current.get("due_at", "")
    start = epoch(before) if before else ctx.now
    if asked.working_days and before:
        # a deadline in working days is midnight after its last day: N more working
        # days are counted after that day, not after the day the midnight opens
        start -= 1
    due = ctx.deadlines.calendar.due(start, asked)
    granted = str(int(current.get("extension_granted_count") or 0) + 1)
    return fields | {"due_before_extension": before, "extension_granted_count": granted,
                     **_due(due)}, (Index(IDX_WORKORDER_DEADLINE, ctx.ticket, due.at),)


def _reopen(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    """110's again, on a new answer deadline from now; what it was closed with and the
    citizen's satisfaction go (a new close sets them), the history stays on the stream."""
    due = ctx.deadlines.response(current.get("category", ""), ctx.now)
    return ({"reopened_at": iso(ctx.now),
             "reopened_reason": text(given.get("reason"), "reason", required=True),
             "reopen_count": str(int(current.get("reopen_count") or 0) + 1),
             **_due(due), "result": "", "satisfaction": "", "extension": ""},
            (Index(IDX_WORKORDER_DEADLINE, ctx.ticket, due.at),
             Index(IDX_WORKORDERS_OPEN, ctx.ticket, ctx.now)))


def _close(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    return {"closed_at": iso(ctx.now), "result": _choice(given.get("result"), "result",
                                                         RESULTS),
            **_note("closed", given)}, ()


def _satisfaction(current: dict[str, str], given: dict[str, Any], ctx: Context) -> Work:
    return {"satisfaction_at": iso(ctx.now),
            "satisfaction": _choice(given.get("satisfaction"), "satisfaction", SATISFACTION),
            **_note("satisfaction", given)}, ()


def _note(step: str, given: dict[str, Any]) -> dict[str, str]:
    note = text(given.get("note"), "note")
    return {f"{step}_note": note} if note else {}


def _closed_for_110(ticket: str) -> tuple[Index, ...]:
    return (Index(IDX_WORKORDER_DEADLINE, ticket, -1), Index(IDX_WORKORDERS_OPEN, ticket, -1),
            Index(IDX_DUTY_DUE, ticket, -1))


_WORK: dict[str, Callable[[dict[str, str], dict[str, Any], Context], Work]] = {
    "accept": _accept, "assign": _assign, "answer": _answer, "return": _return,
    "unit_return": _unit_return, "reassign": _reassign, "extension": _extension,
    "extension_decision": _decide, "reopen": _reopen, "close": _close,
    "satisfaction": _satisfaction,
}
