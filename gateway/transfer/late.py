"""Calls and hand-overs that no gateway answered, registered once one is back.

With every gateway down the dialplan still rings (a citizen is never lost) and keeps
what a gateway would have registered in AstDB, ``linkgw-late/<citizen uniqueid>/<what>``:

- ``incoming`` = ``<epoch.ms>|<dialled>|<channel>|<the citizen's values>`` (a call to 110
  or 12345, ``[linkgw-late-call]``);
- ``handed`` = the same, with a hand-over's headers after the values (``[linkgw-late-handed]``);
- ``taken`` = ``<epoch.ms>|<bridge id or "">|<citizen's channel>|<the seat's endpoint>``;
- ``ended`` = ``<epoch.ms>|<bridge id or "">|<citizen's channel>|<DIALSTATUS>``.

The values are ``BASE64_ENCODE(=…)`` of :data:`gateway.transfer.channel.PARTY` (then of
:data:`gateway.transfer.arrival.HEADERS`), ``:`` between them. :func:`late_entries` reads
them, pure; :class:`LateCalls` registers each with the time the dialplan noted (a call's
record says ``registered_late``), by the changes the live path writes, whose fixed ids
make two gateways doing it at once, or a second pass, write once. An entry is deleted
(by its exact key) only on a later pass, once the bridge log has nothing left to write
(the change is in Redis), so a gateway that dies in between leaves it for the next. A
hand-over that no seat has taken and whose caller has not hung up stays until one of
those is known (or :data:`KEEP_RINGING` has passed). What cannot be read (a damaged or
hostile database) is logged and deleted, entry by entry.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.transfer.actions import LATE
from gateway.transfer.arrival import HEADERS, Arrivals, arrival_id
from gateway.transfer.channel import PARTY, channel_name, decoded, party_of
from gateway.transfer.model import dialplan_time
from gateway.transfer.persist import Persistor

WHATS = ("incoming", "handed", "taken", "ended")  # in the order they are registered
KEEP_RINGING = 6 * 3600.0  # a hand-over with no outcome is dropped after this
OLDEST = 30 * 86400.0  # an entry older than this (or from the future) is not believed
PER_PASS = 200  # calls read in one pass (a backlog after a long outage takes several)
_UID = r"[0-9A-Za-z._-]{1,64}"
_KEY = re.compile(r"/" + re.escape(LATE) + rf"/({_UID})/(" + "|".join(WHATS) + r")")
_BRIDGE = re.compile(r"[0-9]{14}[0-9a-f]{6}")
_DIALED = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Late:
    key: str  # its AstDB key under the family: <uniqueid>/<what>
    uniqueid: str
    what: str
    at: float
    parts: tuple[str, ...]  # the value after its time, split on "|"


def late_entries(tree: Mapping[str, str], now: float) -> tuple[list[Late], list[str]]:
    """The entries as read, in the order to register them, and the keys of those that
    cannot be (a key or time the dialplan does not write), to delete."""
    out: list[Late] = []
    broken: list[str] = []
    prefix = f"/{LATE}/"
    for key, value in tree.items():
        match = _KEY.fullmatch(key)
        stamp, _, rest = value.partition("|")
        at = dialplan_time(stamp)
        if match is None or at is None or not now - OLDEST < at <= now + 60:
            if key.startswith(prefix) and len(key) > len(prefix):
                broken.append(key[len(prefix):])
            continue
        out.append(Late(key[len(prefix):], match.group(1), match.group(2), at,
                        tuple(rest.split("|"))))
    return sorted(out, key=lambda e: (e.uniqueid, WHATS.index(e.what), e.at)), broken


class Kept(Protocol):
    """Where the dialplan keeps them (Asterisk's AstDB, through AMI)."""

    def late(self) -> Awaitable[dict[str, str]]: ...

    def forget_late(self, key: str) -> Awaitable[object]: ...


class LateCalls:
    """Registers what the dialplan kept (at an AMI login and then now and then).
    ``unwritten``: how many changes the bridge log has not yet written to Redis."""

    def __init__(self, kept: Kept, persist: Persistor, arrivals: Arrivals,
                 unwritten: Callable[[], int], log: Any) -> None:
        self.kept, self.persist, self.arrivals, self.log = kept, persist, arrivals, log
        self.unwritten = unwritten
        self._registered: set[str] = set()  # keys this process registered (not deleted)

    async def register(self, now: float) -> int:
        """One pass; how many calls were registered or concluded."""
        entries, broken = late_entries(await self.kept.late(), now)
        written = self.unwritten() == 0  # what earlier passes recorded is in Redis
        by_call: dict[str, list[Late]] = defaultdict(list)
        for entry in entries:
            by_call[entry.uniqueid].append(entry)
        done = 0
        for uniqueid, kept in list(by_call.items())[:PER_PASS]:
            fresh = [e for e in kept if e.key not in self._registered]
            try:
                finished = self._one(uniqueid, fresh, kept, now)
            except Exception as exc:  # a hostile or damaged entry: this call only
                self.log.warning("late.unreadable", uniqueid=uniqueid,
                                 error=f"{type(exc).__name__}: {exc}"[:200])
                broken += [e.key for e in kept]
                continue
            self._registered |= {e.key for e in fresh}
            done += bool(fresh)
            if finished and written and not fresh:
                for entry in kept:
                    await self._forget(entry.key)
        for key in broken:
            self.log.warning("late.unreadable", key=key[:100], error="not what the "
                             "dialplan writes")
            await self._forget(key)
        return done

    async def _forget(self, key: str) -> None:
        try:
            await self.kept.forget_late(key)
        except Exception as exc:  # gone already (another gateway), or AMI went
            self.log.info("late.forget_failed", key=key[:100], error=str(exc)[:200])
        self._registered.discard(key)

    def _one(self, uniqueid: str, fresh: list[Late], kept: list[Late], now: float) -> bool:
        """Register ``fresh``; True when nothing more is to come for the call."""
        for entry in fresh:
            match entry.what:
                case "incoming" | "handed":
                    self._arrived(uniqueid, entry)
                case "taken" | "ended":
                    given, channel, detail = _three(entry)
                    bridge_id = arrival_id(uniqueid, channel)
                    if given and given != bridge_id:
                        raise ValueError("a bridge id that is not this call's")
                    if entry.what == "taken":
                        self.arrivals.taken(bridge_id, detail[:80], entry.at)
                    else:
                        self.arrivals.ended(bridge_id, detail[:20], entry.at)
        whats = {e.what for e in kept}
        return "handed" not in whats or bool(whats & {"taken", "ended"}) or \
            now - min(e.at for e in kept) > KEEP_RINGING

    def _arrived(self, uniqueid: str, entry: Late) -> None:
        dialed, channel, values = _three(entry)
        if _DIALED.fullmatch(dialed) is None:
            raise ValueError("the number dialled is not digits")
        both = decoded(values.split(":"))
        extra = len(HEADERS) if entry.what == "handed" else 0
        if len(both) != len(PARTY) + extra or both[0] != uniqueid:
            raise ValueError(f"{len(both)} values, or another call's")
        citizen = party_of(both[:len(PARTY)], channel)
        if entry.what == "incoming":
            self.persist.call_registered(citizen, dialed, entry.at, late=True)
            self.log.info("late.call_registered", uniqueid=uniqueid, dialed=dialed)
        else:
            bridge_id, _ = self.arrivals.arrived(citizen, both[len(PARTY):], dialed, entry.at)
            self.log.info("late.handover_registered", bridge_id=bridge_id)


def _three(entry: Late) -> tuple[str, str, str]:
    """The three fields after the time; the channel checked as Asterisk makes them."""
    if len(entry.parts) != 3:
        raise ValueError(f"{len(entry.parts)} fields after the time")
    first, channel, last = entry.parts
    if channel_name(channel) is None:
        raise ValueError("not a channel name")
    return first, channel, last
