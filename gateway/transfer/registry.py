"""The live bridges this process runs, and how an AMI event finds its bridge."""

from __future__ import annotations

from gateway.bridge.state import Role, State
from gateway.transfer.model import CONFERENCE_PREFIX, Bridge, agent_leg


class Registry:
    def __init__(self) -> None:
        self._bridges: dict[str, Bridge] = {}
        self._parties: dict[str, tuple[str, Role]] = {}  # citizen/seat uniqueid → bridge

    def add(self, bridge: Bridge) -> None:
        self._bridges[bridge.id] = bridge
        self._parties[bridge.citizen.uniqueid] = (bridge.id, Role.CITIZEN)
        self._parties[bridge.seat.uniqueid] = (bridge.id, Role.SEAT)

    def remove(self, bridge: Bridge) -> None:
        self._bridges.pop(bridge.id, None)
        for uid in (bridge.citizen.uniqueid, bridge.seat.uniqueid):
            if self._parties.get(uid, ("",))[0] == bridge.id:
                del self._parties[uid]

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

    def by_conference(self, conference: str) -> Bridge | None:
        if not conference.startswith(CONFERENCE_PREFIX):
            return None
        return self._bridges.get(conference[len(CONFERENCE_PREFIX):])

    def by_party(self, uniqueid: str) -> tuple[Bridge, Role] | None:
        """The bridge a citizen or key-presser channel belongs to (most recent)."""
        found = self._parties.get(uniqueid)
        if found is None or found[0] not in self._bridges:
            return None
        return self._bridges[found[0]], found[1]

    def by_leg(self, uniqueid: str) -> tuple[Bridge, int] | None:
        """The bridge and attempt of an other-line leg (``<bridge id>-a<n>``)."""
        leg = agent_leg(uniqueid)
        if leg is None or leg[0] not in self._bridges:
            return None
        return self._bridges[leg[0]], leg[1]
