"""Who may do what over the HTTP API, and what each role sees (pure, no I/O).

Four roles, each with its own bearer token:

- ``admin``: the 110 centre's own systems; everything.
- ``12345``: the 12345 ticket system; the bridges handed to it or by it (a transfer
  refused at the key never reached it), attaching work orders and moving the loop,
  the figures; the fields it sees are :func:`gateway.schema.feed_fields`, as in its feed.
- ``supervisor``: read only (live bridges, look-ups, overdue, figures); citizens'
  numbers and names masked unless the site turns that off.
- ``liaison``: the police liaison seat at 12345 (公安驻12345联络员): work orders only;
  it reads them and accepts, assigns and answers them as 110's duty person does.

And one role per further line that has a token (``transfer.lines[].token_env``): its
system reads the bridges handed to it (``110-><line>``), as its feed shows them, and
runs their loop (its work-order number, accepted → assigned → feedback); nothing else
(:class:`LineRole`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gateway.records.errors import Forbidden, NotFound, Unauthorized
from gateway.records.workorder_life import ACTIONS
from gateway.schema import feed_fields


class ApiRole(StrEnum):
    ADMIN = "admin"
    LINE_12345 = "12345"
    SUPERVISOR = "supervisor"
    LIAISON = "liaison"


@dataclass(frozen=True)
class LineRole:
    """A further line's system (122's, 119's, …): the bridges handed to its line."""

    name: str

    @property
    def value(self) -> str:
        return f"line {self.name}"


Role = ApiRole | LineRole
#: What a further line's system may do: read its own bridges, one or looked up, and run
#: their loop (its work-order number attached; accepted → assigned → feedback), as 12345
#: does on the bridges handed to it.
LINE_ROUTES = frozenset({"GET /bridges/<id>", "GET /bridges", "PUT /bridges/<id>/ticket",
                         "POST /bridges/<id>/status", "GET /health", "GET /metrics"})

_ALL = frozenset(ApiRole) - {ApiRole.LIAISON}  # the liaison sees work orders only
_ANYONE = frozenset(ApiRole)
#: Work orders: everyone reads them; the police liaison seat at 12345 takes 110's steps
#: of accepting, assigning and answering them, as the admin does.
_ORDERS = frozenset({ApiRole.ADMIN, ApiRole.LIAISON})
#: A work order's life: its URL's last part → the action
#: (:data:`gateway.records.workorder_life.ACTIONS`). 110's steps are the admin's; 12345's,
#: the 12345 system's (and the admin's).
LIFE_ROUTES = {"return": "return", "unit-return": "unit_return", "reassign": "reassign",
               "extension": "extension", "extension-decision": "extension_decision",
               "reopen": "reopen", "close": "close", "satisfaction": "satisfaction"}
_SIDES = {"110": frozenset({ApiRole.ADMIN}),
          "12345": frozenset({ApiRole.ADMIN, ApiRole.LINE_12345})}
_READERS = frozenset({ApiRole.ADMIN, ApiRole.SUPERVISOR})
#: Each route (method and path shape) and the roles that may use it.
ALLOWED: dict[str, frozenset[ApiRole]] = {
    "GET /live": _READERS,
    "GET /bridges/<id>": _ALL,
    "GET /bridges": _ALL,
    "PUT /bridges/<id>/ticket": frozenset({ApiRole.ADMIN, ApiRole.LINE_12345}),
    "POST /bridges/<id>/status": frozenset({ApiRole.ADMIN, ApiRole.LINE_12345}),
    "PUT /bridges/<id>/incident": frozenset({ApiRole.ADMIN}),
    "PUT /bridges/<id>/decline-reason": frozenset({ApiRole.ADMIN, ApiRole.LINE_12345}),
    "GET /overdue": _READERS,
    "POST /workorders": frozenset({ApiRole.ADMIN, ApiRole.LINE_12345}),
    "GET /workorders": _ANYONE,
    "GET /workorders/<ticket>": _ANYONE,
    "POST /workorders/<ticket>/status": _ORDERS,
    **{f"POST /workorders/<ticket>/{segment}": _SIDES[ACTIONS[action].side]
       for segment, action in LIFE_ROUTES.items()},
    "GET /callbacks": _READERS,
    "POST /callbacks/<id>/done": frozenset({ApiRole.ADMIN}),
    "GET /push-needed": _READERS,
    "GET /handover": _READERS,
    "POST /push-needed/<id>/done": frozenset({ApiRole.ADMIN}),
    "GET /stats": _ALL,
    "GET /health": _ANYONE,  # without a token from loopback
    "GET /metrics": _ANYONE,  # without a token from loopback
}


def identify(header: str, tokens: Mapping[Role, str]) -> Role:
    """The role whose token ``Authorization: Bearer <token>`` carries. Every configured
    token is compared, in constant time, whatever matches first."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("send Authorization: Bearer <token>")
    found: Role | None = None
    for role, token in tokens.items():
        if token and hmac.compare_digest(given.encode(), token.encode()) and found is None:
            found = role
    if found is None:
        raise Forbidden("wrong token")
    return found


def check_allowed(route: str, role: Role) -> None:
    allowed = route in LINE_ROUTES if isinstance(role, LineRole) else \
        role in ALLOWED.get(route, frozenset({ApiRole.ADMIN}))
    if not allowed:
        raise Forbidden(f"the {role.value} role may not use {route}", "role_forbidden")


# -- what the 12345 role sees -------------------------------------------------------------


def visible_to_12345(bridge: Mapping[str, str]) -> bool:
    """Handed to 12345 (its phone rang: dialled at the key) or handed by it; never a
    bridge of a further line (110->122)."""
    if bridge.get("direction") == "12345->110":
        return True
    return bridge.get("direction", "110->12345") == "110->12345" and "dialing_target" in bridge


def visible_to_line(line: str, bridge: Mapping[str, str]) -> bool:
    """Handed to that further line (its key, or an item of its)."""
    return bridge.get("direction") == f"110->{line}"


def sees(role: Role, bridge: Mapping[str, str]) -> bool:
    """Whether ``role`` may see this bridge at all."""
    if isinstance(role, LineRole):
        return visible_to_line(role.name, bridge)
    return role is not ApiRole.LINE_12345 or visible_to_12345(bridge)


def check_visible(role: Role, bridge: Mapping[str, str], bridge_id: str) -> None:
    """A bridge the role may not see does not exist for it (404, never 403: its
    existence is not told either)."""
    if not sees(role, bridge):
        raise NotFound(f"no bridge {bridge_id}", "bridge_not_found")


def _as_fed(role: Role) -> bool:
    """The role sees what its line's feed shows (12345, a further line)."""
    return role is ApiRole.LINE_12345 or isinstance(role, LineRole)


def _events_as_fed(events: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for event in events:
        fields = json.loads(event.get("fields", "{}"))
        shown = {k: event[k] for k in ("id", "record", "event", "at") if k in event}
        out.append(shown | {"fields": json.dumps(feed_fields(fields), ensure_ascii=False,
                                                 sort_keys=True)})
    return out


# -- masking for the supervisor -----------------------------------------------------------

#: Fields that hold who the citizen is (a bridge, its summary, a callback task).
_PERSONAL = ("citizen_number", "citizen_name", "number", "name")


def mask_number(number: str) -> str:
    """Enough to tell calls apart on a wall screen, not enough to call back: a mobile
    number keeps its first three and last four digits (``138****8000``); anything
    shorter, its last two."""
    if len(number) >= 11:
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * max(len(number) - 2, 1) + number[-2:] if number else ""


def mask_name(name: str) -> str:
    return name[:1] + "*" * min(len(name) - 1, 3) if name else ""


def mask_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in _PERSONAL:
        value = out.get(key)
        if isinstance(value, str) and value:
            out[key] = mask_name(value) if key.endswith("name") else mask_number(value)
    return out


def _mask_events(events: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for event in events:
        fields = json.loads(event.get("fields", "{}"))
        out.append(dict(event) | {"fields": json.dumps(mask_row(fields), ensure_ascii=False,
                                                       sort_keys=True)})
    return out


# -- one answer, as a role sees it --------------------------------------------------------


def shown_bridge(role: Role, result: dict[str, Any], mask: bool) -> dict[str, Any]:
    """``GET /bridges/<id>``: {"bridge", "ticket", "events"} as ``role`` sees it."""
    bridge = result["bridge"]
    check_visible(role, bridge, bridge.get("bridge_id", ""))
    complete = result.get("events_complete", True)
    if _as_fed(role):
        return {"bridge": feed_fields(bridge), "ticket": result["ticket"],
                "events": _events_as_fed(result["events"]), "events_complete": complete}
    if role is ApiRole.SUPERVISOR and mask:
        return {"bridge": mask_row(bridge), "ticket": result["ticket"],
                "events": _mask_events(result["events"]), "events_complete": complete}
    return result


def shown_rows(role: Role, rows: list[dict[str, str]], mask: bool, own: bool = False
               ) -> list[dict[str, str]]:
    """A list of bridge summaries (look-ups, overdue, live) as ``role`` sees it.
    ``own``: rows that are 12345's own (its work orders), shown to it whole."""
    if _as_fed(role):
        if own and role is ApiRole.LINE_12345:
            return rows
        return [feed_fields(row) for row in rows if sees(role, row)]
    if role is ApiRole.SUPERVISOR and mask:
        return [mask_row(row) for row in rows]
    return rows


#: The lists of ``GET /handover`` (the shift and its counts are no one's data).
HANDOVER_LISTS = ("open_workorders", "overdue_workorders", "overdue_bridges", "callbacks",
                  "push_needed")


def shown_handover(role: Role, handover: dict[str, Any], mask: bool) -> dict[str, Any]:
    """``GET /handover`` as a reader sees it: each list as its own route shows it."""
    out = dict(handover)
    for name in HANDOVER_LISTS:
        out[name] = shown_rows(role, handover[name], mask)
    return out
