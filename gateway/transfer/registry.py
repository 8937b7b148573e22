"""The live bridges this process runs, and how an AMI event finds its bridge."""

from __future__ import annotations

from gateway.transfer.model import CONFERENCE_PREFIX, Bridge, agent_leg
from gateway.transfer.phase import Role, State


def following(bridge: Bridge) -> bool:
    """Still followed: not ended, or ended with the citizen's hang-up not yet seen."""
    return bridge.state is not State.ENDED or "citizen_hangup_at" not in bridge.fields


class Registry:
    def __init__(self) -> None:
        self._bridges: dict[str, Bridge] = {}
        # citizen/seat uniqueid → its bridges, oldest first (a citizen handed on from
        # one line to the other is the citizen of each bridge in turn)
        self._parties: dict[str, list[tuple[str, Role]]] = {}

    def add(self, bridge: Bridge) -> None:
        self._bridges[bridge.id] = bridge
        for uid, role in ((bridge.citizen.uniqueid, Role.CITIZEN),
                          (bridge.seat.uniqueid, Role.SEAT)):
            held = self._parties.setdefault(uid, [])
            if (bridge.id, role) not in held:
                held.append((bridge.id, role))

    def remove(self, bridge: Bridge) -> None:
        self._bridges.pop(bridge.id, None)
        for uid in (bridge.citizen.uniqueid, bridge.seat.uniqueid):
            held = [p for p in self._parties.get(uid, []) if p[0] != bridge.id]
            if held:
                self._parties[uid] = held
            else:
                self._parties.pop(uid, None)

    def get(self, bridge_id: str) -> Bridge | None:
        return self._bridges.get(bridge_id)

    def __contains__(self, bridge_id: object) -> bool:
        return bridge_id in self._bridges

    def __len__(self) -> int:
        return len(self._bridges)

    def all(self) -> list[Bridge]:
        return list(self._bridges.values())

    def live(self) -> list[Bridge]:
        return [b for b in self._bridges.values() if b.state is not State.ENDED]

    def followed(self) -> list[Bridge]:
        """Live bridges, and ended ones whose citizen is still on the line (in a plain
        call with the other line, or back with the line they called): their citizen's
        hang-up is still to be recorded."""
        return [b for b in self._bridges.values() if following(b)]

    def by_conference(self, conference: str) -> Bridge | None:
        if not conference.startswith(CONFERENCE_PREFIX):
            return None
        return self._bridges.get(conference[len(CONFERENCE_PREFIX):])

    def by_party(self, uniqueid: str) -> tuple[Bridge, Role] | None:
        """The bridge a citizen or key-presser channel belongs to (most recent)."""
        every = self.all_by_party(uniqueid)
        return every[-1] if every else None

    def all_by_party(self, uniqueid: str) -> list[tuple[Bridge, Role]]:
        """Every bridge a citizen or key-presser channel belongs to, oldest first."""
        return [(self._bridges[i], role) for i, role in self._parties.get(uniqueid, [])
                if i in self._bridges]

    def by_leg(self, uniqueid: str) -> tuple[Bridge, int] | None:
        """The bridge and attempt of an other-line leg (``<bridge id>-a<n>``)."""
        leg = agent_leg(uniqueid)
        if leg is None or leg[0] not in self._bridges:
            return None
        return self._bridges[leg[0]], leg[1]
