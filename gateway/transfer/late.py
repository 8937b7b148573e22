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
make two gateways doing it at once, or a second pass, write once; then deletes what is
done. A hand-over that no seat has taken and whose caller has not hung up stays until
one of those is known (or :data:`KEEP_RINGING` has passed).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.transfer.actions import LATE
from gateway.transfer.arrival import HEADERS, Arrivals, arrival_id
from gateway.transfer.channel import PARTY, ChannelReadError, channel_name, decoded, party_of
from gateway.transfer.persist import Persistor

WHATS = ("incoming", "handed", "taken", "ended")  # in the order they are registered
KEEP_RINGING = 6 * 3600.0  # a hand-over with no outcome is dropped after this
_STAMP = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_BRIDGE = re.compile(r"[0-9]{14}[0-9a-f]{6}")
_KEY = re.compile(r"/" + re.escape(LATE) + r"/([^/]{1,150})/(" + "|".join(WHATS) + r")")


@dataclass(frozen=True)
class Late:
    uniqueid: str
    what: str
    at: float
    parts: tuple[str, ...]  # the value after its time, split on "|"


def late_entries(tree: Mapping[str, str]) -> tuple[list[Late], list[str]]:
    """The entries as read, in the order to register them, and the uniqueids of the
    broken ones (a hostile or damaged AstDB is skipped entry by entry, then deleted)."""
    out: list[Late] = []
    broken: list[str] = []
    for key, value in tree.items():
        match = _KEY.fullmatch(key)
        stamp, _, rest = value.partition("|")
        if match is None or _STAMP.fullmatch(stamp) is None:
            broken.append(key.split("/")[2] if key.count("/") >= 3 else key)
            continue
        out.append(Late(match.group(1), match.group(2), float(stamp), tuple(rest.split("|"))))
    return sorted(out, key=lambda e: (e.uniqueid, WHATS.index(e.what), e.at)), broken


class Kept(Protocol):
    """Where the dialplan keeps them (Asterisk's AstDB, through AMI)."""

    def late(self) -> Awaitable[dict[str, str]]: ...

    def forget_late(self, uniqueid: str) -> Awaitable[object]: ...


class LateCalls:
    """Registers what the dialplan kept (at an AMI login and then now and then)."""

    def __init__(self, effects: Kept, persist: Persistor, arrivals: Arrivals,
                 log: Any) -> None:
        self.effects, self.persist, self.arrivals, self.log = effects, persist, arrivals, log

    async def register(self, now: float) -> int:
        """Everything kept so far; how many calls were registered or concluded."""
        entries, broken = late_entries(await self.effects.late())
        by_call: dict[str, list[Late]] = defaultdict(list)
        for entry in entries:
            by_call[entry.uniqueid].append(entry)
        done = 0
        for uniqueid, kept in by_call.items():
            try:
                finished = self._one(uniqueid, kept, now)
            except (ChannelReadError, ValueError) as exc:
                self.log.warning("late.unreadable", uniqueid=uniqueid[:80], error=str(exc))
                finished = True
            if finished:
                await self.effects.forget_late(uniqueid)
                done += 1
        for uniqueid in set(broken) - set(by_call):
            self.log.warning("late.unreadable", uniqueid=uniqueid[:80], error="broken key")
            await self.effects.forget_late(uniqueid)
        return done

    def _one(self, uniqueid: str, kept: list[Late], now: float) -> bool:
        """One call's entries; True when nothing more is to come for it."""
        over = False
        for entry in kept:
            match entry.what:
                case "incoming":
                    dialed, channel, values = _three(entry)
                    self.persist.call_registered(
                        party_of(decoded(values.split(":")), channel), dialed[:20], entry.at,
                        late=True)
                    self.log.info("late.call_registered", uniqueid=uniqueid, dialed=dialed)
                    over = True
                case "handed":
                    dialed, channel, values = _three(entry)
                    both = decoded(values.split(":"))
                    if len(both) != len(PARTY) + len(HEADERS):
                        raise ValueError(f"{len(both)} values")
                    bridge_id, _ = self.arrivals.arrived(
                        party_of(both[:len(PARTY)], channel), both[len(PARTY):], dialed[:20],
                        entry.at)
                    self.log.info("late.handover_registered", bridge_id=bridge_id)
                    over = over or now - entry.at > KEEP_RINGING
                case "taken" | "ended":
                    given, channel, detail = _three(entry)
                    if given and _BRIDGE.fullmatch(given) is None:
                        raise ValueError("not a bridge id")
                    bridge_id = given or arrival_id(uniqueid, channel)
                    if entry.what == "taken":
                        self.arrivals.taken(bridge_id, detail[:80], entry.at)
                    else:
                        self.arrivals.ended(bridge_id, detail[:20], entry.at)
                    over = True
        return over


def _three(entry: Late) -> tuple[str, str, str]:
    """The three fields after the time; the channel checked as Asterisk makes them."""
    if len(entry.parts) != 3:
        raise ValueError(f"{len(entry.parts)} fields after the time")
    first, channel, last = entry.parts
    if channel_name(channel) is None:
        raise ValueError("not a channel name")
    return first, channel, last
