"""The detached process that owns a bridge opened by a process-mode AGI program.

It is built by the same composition root as the gateway service
(:func:`gateway.app.build_transfer`): it writes the program's changes first, takes the
bridge's lease, logs in to AMI and, like any gateway after a login, brings the bridge up
to what Asterisk holds (the dialplan's journal: the key's feature may have returned while
this process was starting, and then the move is due now). Then it follows the bridge to
its end, adopts any orphan it finds on the way, and exits once nothing it owns is live
and every change is written (or spooled); an ended bridge is watched until its citizen
hangs up (or the service lets it go), so that the hangup is on its record too.
"""

from __future__ import annotations

import asyncio
import os

from gateway.config import Config
from gateway.process.desk import Work
from gateway.transfer.events import AgentFailed

#: Seconds the follower stays after its last bridge ended (the citizen's hangup comes
#: just after the conference's end), and the most it lives at all.
LINGER = 2.0
LIFETIME = 4 * 3600.0


def follow(config: Config, work: Work) -> None:
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    import structlog
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from gateway import logs
    from gateway.app import build_transfer, instance_name
    from gateway.process.logfile import log_path
    from gateway.transfer.legs import Leg

    logs.configure(config.log.format, config.log.level,
                   stream=open(log_path(config), "a", encoding="utf-8"))
    log = structlog.get_logger("gateway").bind(agi="process", follower=os.getpid())
    owner = work.bridge.fields["owner"] if work.bridge else ""
    parts = build_transfer(config, reactor, log, owner.partition("/")[0]
                           or f"{instance_name(config)}-agi-{os.getpid()}", instance=owner)
    service = parts.service
    bridge = work.bridge
    assert bridge is not None
    for change in work.changes:
        parts.bridge_log.record(change)
    service.asterisk = bridge.fields.get("asterisk", "")
    # The leg rings since the program dialled it; its channel is learnt from Asterisk
    # once this process is logged in (recovery), so that a cancel can reach it.
    leg = None
    if work.dialled_at:
        leg = Leg(bridge.agent_id(0), config.transfer.ring_timeout, since=work.dialled_at)
        leg.started = work.dialled_at
    service.adopt(bridge, leg)
    parts.leases.claim(bridge.id)
    for event in work.events:
        service.step(bridge, event)

    def first_attempt_refused() -> None:
        if work.first_failure and bridge.phase.attempt == 0:
            service.step(bridge, AgentFailed(reactor.seconds(), work.first_failure))

    parts.ami.on_login.append(first_attempt_refused)
    idle_since: list[float] = []

    def watching() -> bool:
        """A bridge still live, or ended with its citizen still on the line (the
        citizen's hangup goes on its record too)."""
        return bool(service.followed())

    def check() -> None:
        if watching() or parts.bridge_log.pending:
            idle_since.clear()
        elif not idle_since:
            idle_since.append(reactor.seconds())
        elif reactor.seconds() - idle_since[0] >= LINGER:
            reactor.stop()

    parts.bridge_log.start()
    parts.ami.service.startService()
    parts.cluster.start()
    LoopingCall(check).start(0.5, now=False)
    reactor.callLater(LIFETIME, reactor.stop)
    reactor.run()
    log.info("follower.done", pending=parts.bridge_log.pending,
             adopted=parts.cluster.adopted)
