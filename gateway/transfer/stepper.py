"""The stepper: the one place an edge of the state table is applied.

:meth:`Stepper.step` asks the table (:mod:`gateway.transfer.table`) for the next phase,
the fields and the commands; it keeps the phase, hands the change to the persistor
(:mod:`gateway.transfer.persist`), logs the edge, counts it for the metrics and gives
the commands to the runner (:mod:`gateway.transfer.commands`). It also keeps what an
ended bridge leaves: its lease, its place in memory and its journal in Asterisk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from gateway.bridge.store import Index
from gateway.outcome import HANDED, Outcome
from gateway.schema import epoch, iso
from gateway.transfer.effects import Effects
from gateway.transfer.events import AgentAnswered, Command, Event, IllegalTransition, Joined, Left
from gateway.transfer.legs import Leg
from gateway.transfer.model import Bridge
from gateway.transfer.persist import Persistor
from gateway.transfer.phase import Role, State
from gateway.transfer.registry import Registry
from gateway.transfer.table import transition


class Ownership:
    """Who runs which live bridge when several gateways share an Asterisk: a no-op here;
    :class:`gateway.transfer.cluster.Leases` keeps leases in Redis."""

    instance = "gateway"

    def claim(self, bridge_id: str) -> None:
        """This process opened the bridge: it owns it."""

    def release(self, bridge_id: str) -> None:
        """The bridge ended: nobody needs to own it any more."""


class Meter(Protocol):
    """What the service counts for the metrics (the gateway service's is
    :class:`gateway.metrics.TransferMeter`; process mode counts nothing)."""

    def ended(self, direction: str, outcome: str, recovered: bool) -> None:
        """A bridge ended."""

    def answered(self, direction: str, seconds: float) -> None:
        """The other line answered, ``seconds`` after the key."""


class NoMeter:
    def ended(self, direction: str, outcome: str, recovered: bool) -> None:
        pass

    def answered(self, direction: str, seconds: float) -> None:
        pass


class Runner(Protocol):
    """The command runner, as the stepper uses it."""

    @property
    def holding(self) -> bool: ...

    def run(self, bridge: Bridge, command: Command, at_once: bool = False) -> None: ...


class Stepper:
    #: Seconds an ended bridge stays in memory for late events, and the journal of a
    #: bridge stays in Asterisk after the bridge ended (then it is deleted).
    KEEP_ENDED = 60.0
    KEEP_JOURNAL = 30.0

    def __init__(self, persist: Persistor, effects: Effects, registry: Registry,
                 legs: dict[str, Leg], ownership: Ownership, *, clock: IReactorTime,
                 log: Any, runner: Callable[[], Runner],
                 feedback_due: Callable[[str, float, str], float] =
                 lambda _, at, __: at + 72 * 3600) -> None:
        """``feedback_due``: when the feedback on a bridge of a category handed over at
        a moment to a line is due (:class:`gateway.deadlines.Deadlines`)."""
        self.persist = persist
        self.feedback_due = feedback_due
        self.effects = effects
        self.registry = registry
        self.legs = legs
        self.ownership = ownership
        self.clock = clock
        self.log = log
        self.meter: Meter = NoMeter()
        self._runner = runner  # the runner hands its events back here: known once built

    def step(self, bridge: Bridge, event: Event, data: dict[str, str] | None = None) -> None:
        """One event: the table's edge applied (``data``: recovered from the journal)."""
        try:
            edge = transition(bridge.phase, event)
        except IllegalTransition as exc:
            self.log.error("bridge.illegal_transition", bridge_id=bridge.id,
                           state=bridge.state.value, bridge_event=event.kind, error_id=exc.code)
            return
        before = bridge.state
        if edge.phase == bridge.phase and not edge.fields and not edge.commands:
            return  # nothing new (a leave counted once, late news of an earlier attempt)
        fields = bridge.take(edge)
        name = f"{event.kind}:{event.role}" if isinstance(event, Joined | Left) else event.kind
        ended = edge.state is State.ENDED and before is not State.ENDED
        if ended and bridge.side == "110" and edge.outcome in HANDED:
            fields |= self._feedback(bridge, event.at)
        self.persist.edge(bridge, name, event.at, fields, ended, data)
        self.log.info("bridge.transition", bridge_id=bridge.id, bridge_event=name,
                      from_state=before.value, to_state=edge.state.value,
                      outcome=edge.outcome.value if edge.outcome else None,
                      recovered=bool(data))
        self._count(bridge, event, ended, bool(data))
        if ended:
            self._ended(bridge)
        runner = self._runner()
        for command in edge.commands:
            runner.run(bridge, command)

    def _feedback(self, bridge: Bridge, at: float) -> dict[str, str]:
        """The line that took the matter owes its feedback from now, ticket or not."""
        due = self.feedback_due(bridge.fields.get("category", ""), at, bridge.handed_to)
        bridge.fields["feedback_due_at"] = iso(due)
        return {"feedback_due_at": iso(due)}

    def note(self, bridge: Bridge, event: str, fields: dict[str, str],
             indexes: tuple[Index, ...] = (), at: float | None = None,
             data: dict[str, str] | None = None) -> None:
        """Fields that are no edge (who dialled when, the notice played…), on record."""
        bridge.fields.update(fields)
        self.persist.note(bridge, event, self.clock.seconds() if at is None else at, fields,
                          indexes, data)

    def citizen_gone(self, bridge: Bridge, at: float,
                     data: dict[str, str] | None = None) -> None:
        """The citizen hung up (once per bridge). A bridge that had ended with the
        citizen still on the line is followed no further from here."""
        if "citizen_hangup_at" in bridge.fields:
            return
        bridge.fields["citizen_hangup_at"] = iso(at)
        self.persist.citizen_hangup(bridge, at, data)
        if bridge.state is State.ENDED:
            self._followed(bridge)

    def _count(self, bridge: Bridge, event: Event, ended: bool, recovered: bool) -> None:
        direction = bridge.fields.get("direction", "")
        if isinstance(event, AgentAnswered) and not recovered:
            try:
                requested = epoch(bridge.fields.get("requested_at", ""))
            except ValueError:
                return
            self.meter.answered(direction, event.at - requested)
        if ended:
            self.meter.ended(direction, bridge.fields.get("outcome", Outcome.UNKNOWN), recovered)

    def _ended(self, bridge: Bridge) -> None:
        if Role.CITIZEN not in bridge.phase.gone and not self._runner().holding:
            self.effects.clear_active(bridge).addErrback(lambda _: None)  # may be gone
        if "citizen_hangup_at" in bridge.fields:
            self._followed(bridge)
        # else: the citizen is still on the line (a plain call with the other line, or
        # back with the line they called); the bridge stays followed, leased and live
        # in Redis until their hang-up is on record, whoever watches then

    def _followed(self, bridge: Bridge) -> None:
        """Nothing more to follow: the lease goes, memory and journal soon after."""
        self.ownership.release(bridge.id)
        self.clock.callLater(self.KEEP_JOURNAL, self._forget_journal, bridge.id)
        self.clock.callLater(self.KEEP_ENDED, self._forget, bridge)

    def _forget(self, bridge: Bridge) -> None:
        if self.registry.get(bridge.id) is bridge and bridge.state is State.ENDED:
            self.registry.remove(bridge)
            self.legs.pop(bridge.id, None)

    def _forget_journal(self, bridge_id: str) -> None:
        self.effects.forget_journal(bridge_id).addErrback(
            lambda f: self.log.info("bridge.journal_kept", bridge_id=bridge_id,
                                    error=f.getErrorMessage()))
