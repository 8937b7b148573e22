"""The desk of a process-mode AGI program: the same decisions as the gateway service
(:mod:`gateway.transfer.decide`), the same records (:mod:`gateway.transfer.persist`),
collected in memory for the process that is detached once the dialplan has its answer.

The key dials the other line at once with a short blocking AMI session
(:class:`gateway.ami.sync.SyncAmi`), so the INVITE does not wait for the follower to
start, and the dialplan learns at the key whether AMI is there at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.ami.errors import NO_SUCH_CHANNEL, AmiActionError, AmiError
from gateway.ami.sync import SyncAmi, endpoint_address
from gateway.bridge.change import Change
from gateway.catalogue import Catalogue
from gateway.config import Config, TransferConfig
from gateway.process.keeper_client import KeeperFeed
from gateway.schema import iso
from gateway.transfer import decide, opener
from gateway.transfer.actions import originate_headers
from gateway.transfer.arrival import Arrivals
from gateway.transfer.code import CodeWindow, window_from_history
from gateway.transfer.events import Event, Left, RedirectFailed
from gateway.transfer.ids import new_bridge_id
from gateway.transfer.model import Bridge, CodeWait, KeyPress, Opened, Party, Refused
from gateway.transfer.persist import Persistor
from gateway.transfer.phase import Role

#: A key time the dialplan gave is believed when the program started at most this long
#: after it (else it is not this key's: the program's own start counts).
KEY_TRUSTED = 30.0


@dataclass
class Work:
    """What the detached process has to do."""

    changes: list[Change] = field(default_factory=list)
    bridge: Bridge | None = None  # a bridge to follow to its end
    events: list[Event] = field(default_factory=list)  # to apply to it first
    first_failure: str = ""  # why the first attempt was refused by Asterisk
    dialled_at: float = 0.0  # when the first attempt was dialled (0: nobody was)


class ProcessDesk:
    def __init__(self, config: Config, catalogue: Catalogue, owner: str,
                 clock: Callable[[], float] = time.time, started: float | None = None
                 ) -> None:
        self.started = clock() if started is None else started  # the program's start
        self.full = config
        self.config: TransferConfig = config.transfer
        self.catalogue = catalogue
        self.owner = owner
        self.clock = clock
        self.work = Work()
        self.persist = Persistor(self, config.transfer.response_deadline)
        self.opener = opener.Opener(self.persist, self.flag_emergency)
        self.arrivals = Arrivals(self.record, clock, config.transfer.response_deadline,
                                 config.tickets.pattern,
                                 lambda code: self.classify(code, "12345")[0], owner)
        self._session: SyncAmi | None = None

    def record(self, change: Change) -> None:
        self.work.changes.append(change)

    def register_call(self, citizen: Party, dialed: str, unreadable: str = "") -> None:
        self.persist.call_registered(citizen, dialed, self.clock(), unreadable)

    def flag_emergency(self, citizen: Party, flag: str) -> None:
        self.persist.emergency(citizen, flag, self.clock())

    def classify(self, typed: str, side: str, to: str = ""
                 ) -> tuple[dict[str, str], Refused | None]:
        return decide.classify(typed, self.catalogue, side, self.config, to)

    def _ami(self) -> SyncAmi:
        host, port = endpoint_address(self.full.ami.endpoint)
        return SyncAmi(host, port, self.full.ami.username, self.full.ami.secret,
                       self.full.ami.auth, timeout=self.config.originate_timeout,
                       events="dtmf")  # the item code comes as DTMFEnd events

    def collect_code(self, press: KeyPress) -> CodeWait:
        """The window opens now. The digit keeper (:mod:`gateway.process.keeper`) has
        every digit of the channel, also those typed while this program started; without
        a keeper, the DTMF events this program's AMI session received count (digits
        reported before it logged in are lost then)."""
        key = decide.key_of(press, self.config)
        if self._session is not None and self.config.code_digits > 0:
            feed = KeeperFeed.ask(self.full.redis.spool_dir, press.seat.uniqueid)
            if feed is not None:
                window = window_from_history(
                    key, feed.history, self._key_at(press), self.config.code_digits,
                    self.config.code_timeout, time.monotonic())
                return CodeWait(window.closed, self._read_from_keeper(window, feed))
        window = CodeWindow(self.config.code_digits, self.config.code_timeout,
                            time.monotonic())
        return CodeWait(False, self._read_code(window, press.seat.uniqueid))

    def _key_at(self, press: KeyPress) -> float:
        """When the key was pressed: the dialplan's own time of it, which a loaded
        machine does not delay (a program may start seconds after the key, and its
        digits were typed before); this program's start when the dialplan gave none."""
        if 0 < self.started - press.key_at < KEY_TRUSTED:
            return press.key_at
        return self.started

    async def _read_from_keeper(self, window: CodeWindow, feed: KeeperFeed) -> str:
        ami, self._session = self._session, None
        if ami is not None:
            ami.close()  # the Originate is done; the keeper reports the digits
        to_monotonic = time.monotonic() - time.time()
        try:
            while not window.closed:
                try:
                    item = feed.next(window.due())
                except OSError:
                    break  # the keeper went: what was typed so far counts
                if item is None:
                    window.close_if_due(time.monotonic())
                    continue
                # a digit counts by when it was typed, not when it was read (the code
                # prompt may have played meanwhile)
                at = item[1] + to_monotonic
                if at > window.due():
                    break  # typed after the window had closed
                window.feed(item[0], at)
        finally:
            feed.close()
        return window.code

    async def _read_code(self, window: CodeWindow, seat: str) -> str:
        ami, self._session = self._session, None
        if ami is None:
            return ""
        with ami:
            while not window.closed:
                try:
                    event = ami.event(window.due())
                except AmiError:
                    break
                if event is None:
                    window.close_if_due(time.monotonic())
                elif event.event == "DTMFEnd" and event.get("Uniqueid") == seat and \
                        event.get("Direction") == "Received":
                    window.feed(event.get("Digit"), time.monotonic())
        return window.code

    async def open(self, press: KeyPress) -> Opened | Refused:
        now = self.clock()
        again = decide.refusal_at_key(press, self.config, ami_up=True)
        if again is not None and again.reason == "already":
            return again  # a second key: Asterisk need not be asked
        ami: SyncAmi | None = None
        asterisk, down = "", "AMI unreachable"
        try:
            ami = self._ami()
            asterisk = ami.action("CoreSettings").get("SystemName")
        except (AmiError, OSError) as exc:
            if ami is not None:
                ami.close()
                ami = None
            down = f"AMI: {exc}"
        opening = opener.decide(press, self.config, ami is not None, now,
                                new_bridge_id(now), asterisk, self.owner)
        if isinstance(opening, Refused):
            if ami is not None:
                ami.close()
            return opening
        bridge, refusal = opening.bridge, opening.refusal
        if refusal is not None or ami is None:
            if refusal is None or refusal.reason == "ami_down":
                refusal = Refused("ami_down", down)
            if ami is not None:
                ami.close()
            return self.opener.refuse(press, bridge, refusal, now)
        try:
            self.opener.requested(bridge, now)
            self.work.bridge = bridge
            if not _on_the_line(ami, press.citizen):
                # the program started after the citizen hung up (a loaded machine):
                # nobody is dialled for them; the follower ends the bridge abandoned
                self.work.events.append(Left(now, Role.CITIZEN, press.citizen.channel))
                self._session = ami
                return Opened(bridge.id)
            self.persist.note(bridge, "agent_dialing", now, {
                "attempt": "1", "dialing_target": bridge.phase.plan[0],
                "dialing_at": iso(now)})
            self.work.dialled_at = now
            try:
                ami.action("Originate", originate_headers(bridge, 0, self.config))
            except AmiActionError as exc:
                self.work.first_failure = f"originate refused: {exc}"
            except (AmiError, OSError) as exc:
                self.work.events.append(RedirectFailed(self.clock(), f"AMI: {exc}"))
                ami.close()
                return Refused("ami_down", str(exc), bridge_id=bridge.id)
        except BaseException:
            ami.close()
            raise
        self._session = ami  # kept for the item code
        return Opened(bridge.id)


def _on_the_line(ami: SyncAmi, citizen: Party) -> bool:
    """Is the citizen's channel still in Asterisk? Asked by its uniqueid, which Asterisk
    takes where a channel name goes (seen on Asterisk 22) and which no rename changes;
    unknown counts as yes: the follower sees the hangup anyway."""
    which = citizen.uniqueid or citizen.channel
    if not which:
        return True
    try:
        ami.action("Getvar", {"Channel": which, "Variable": "UNIQUEID"})
    except AmiActionError as exc:
        return exc.response.get("Message") != NO_SUCH_CHANNEL  # any other error: unknown
    except (AmiError, OSError):
        return True  # no answer in time, or AMI gone: the Originate says what it can
    return True
