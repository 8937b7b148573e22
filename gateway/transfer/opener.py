"""The opener: what a key press opens, one implementation for every AGI mode.

The FastAGI service (:class:`gateway.transfer.services.TransferService`) and a
process-mode program (:class:`gateway.process.desk.ProcessDesk`) talk to Asterisk
differently (Twisted's AMI client, a blocking one), but a key press goes the same way
through both: :func:`decide` says whether it is a second key (nothing opened), a
refusal (on record, never live) or a bridge to dial; :class:`Opener` writes what was
decided. Only the dialling itself is theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import TransferConfig
from gateway.transfer import decide as rules
from gateway.transfer.model import Bridge, KeyPress, Party, Refused
from gateway.transfer.persist import Persistor


@dataclass(frozen=True)
class Opening:
    """A bridge the key opens: to dial (``refusal`` None) or to record as refused."""

    bridge: Bridge
    refusal: Refused | None


def decide(press: KeyPress, config: TransferConfig, ami_up: bool, now: float,
           bridge_id: str, asterisk: str, owner: str) -> Refused | Opening:
    """A second key for the same citizen opens nothing (the refusal names the bridge
    running); any other key opens a bridge, refused or to be dialled."""
    refusal = rules.refusal_at_key(press, config, ami_up)
    if refusal is not None and refusal.reason == "already":
        return refusal
    bridge = rules.new_bridge(press, bridge_id, now, config, asterisk, owner)
    return Opening(bridge, refusal)


class Opener:
    """Writes what :func:`decide` decided: the refusal on record (with the citizen's
    emergency flag, when that was why), or the bridge requested."""

    def __init__(self, persist: Persistor, flag: Callable[[Party, str], None]) -> None:
        self.persist, self.flag = persist, flag

    def refuse(self, press: KeyPress, bridge: Bridge, refusal: Refused, now: float
               ) -> Refused:
        """Over as it opens: on record for the figures and the joint meetings."""
        self.persist.opened(rules.refused(bridge, refusal, now), "transfer_refused", now)
        if press.emergency:
            self.flag(press.citizen, press.emergency)
        return Refused(refusal.reason, refusal.detail, refusal.prompt, bridge.id)

    def requested(self, bridge: Bridge, now: float) -> None:
        self.persist.opened(bridge, "transfer_requested", now)
