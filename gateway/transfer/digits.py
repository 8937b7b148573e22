"""The item code of a key press in the gateway service: the digits each channel types,
as AMI reports them (``DTMFEnd``), kept from before the key's AGI opens its window.

The rules of the window are :mod:`gateway.transfer.code`'s (pure); this is the
Twisted side: AMI events in, a Deferred code out, timers on the injected clock.
Process mode reads the same window from its digit keeper
(:mod:`gateway.process.keeper`).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from gateway.ami.client import EventBus
from gateway.ami.codec import AmiMessage
from gateway.transfer.code import CodeWindow, window_from_history

#: Digits kept per channel.
KEEP_DIGITS = 16


class CodeReader:
    def __init__(self, events: EventBus, clock: IReactorTime, digits: int,
                 timeout: float) -> None:
        self.clock, self.digits, self.timeout = clock, digits, timeout
        self._typed: dict[str, list[tuple[str, float]]] = {}  # uniqueid → (digit, when)
        self._windows: dict[str, tuple[CodeWindow, defer.Deferred[str]]] = {}
        events.subscribe(self._dtmf, ["DTMFEnd"], {"Direction": "Received"})
        events.subscribe(self._channel_gone, ["Hangup"])

    def collect(self, key: str, uniqueid: str) -> defer.Deferred[str]:
        """The code typed on ``uniqueid`` after this press of ``key`` (the window opens
        now; what was typed after the key before now counts)."""
        now = self.clock.seconds()
        window = window_from_history(key, self._typed.get(uniqueid, []), now, self.digits,
                                     self.timeout, now)
        d: defer.Deferred[str] = defer.Deferred()
        if window.closed:
            d.callback(window.code)  # typed in full before the AGI started
            return d
        self._windows[uniqueid] = (window, d)
        self.clock.callLater(window.timeout, self._window_due, uniqueid, window)
        return d

    def _dtmf(self, message: AmiMessage) -> None:
        uid, digit = message.get("Uniqueid"), message.get("Digit")
        if len(digit) != 1:
            return
        now = self.clock.seconds()
        self._typed[uid] = [*self._typed.get(uid, []), (digit, now)][-KEEP_DIGITS:]
        found = self._windows.get(uid)
        if found is None:
            return
        window, _ = found
        window.feed(digit, now)
        if window.closed:
            self._close_window(uid)
        else:
            self.clock.callLater(window.due() - now, self._window_due, uid, window)

    def _window_due(self, uid: str, window: CodeWindow) -> None:
        found = self._windows.get(uid)
        if found is not None and found[0] is window and \
                window.close_if_due(self.clock.seconds()):
            self._close_window(uid)

    def _close_window(self, uid: str) -> None:
        window, d = self._windows.pop(uid)
        d.callback(window.code)

    def _channel_gone(self, message: AmiMessage) -> None:
        uid = message.get("Uniqueid")
        self._typed.pop(uid, None)
        if uid in self._windows:
            self._close_window(uid)  # hung up while typing: what was typed counts
