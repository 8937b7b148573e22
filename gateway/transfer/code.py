"""The item code typed after the key, from the digits Asterisk reports (AMI ``DTMFEnd``).

Why not ``Read()`` in the key's Gosub: with RFC 4733 events (what real phones send)
Asterisk 22 holds the feature's Gosub for about half a second after the key, and digits
typed in that time never reach an application on the channel, while AMI still reports
each one (seen in the lab). A process-mode AGI program that starts meanwhile loses them
too. AMI's ``DTMFEnd`` events lose nothing, whatever carries the digits (RFC 4733 or SIP
INFO), so the window below is fed from them.

A :class:`CodeWindow` opens when the key's AGI starts, fed first with what the channel
typed after this press of the key and before that (:func:`window_from_history`: the
gateway's AMI session, or process mode's digit keeper, has those). Digits of the key
itself that AMI reports only after that (``pending``) are skipped; then 0-9 form the
code, which is
complete with ``digits`` digits; ``#`` ends it early, ``*`` (the key pressed again) ends
it as it is; otherwise it closes ``timeout`` seconds after the last digit (or after the
window opened, when none came).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def pending_key(key: str, history: str) -> str:
    """The part of ``key`` AMI has not reported yet: the key's digits at the end of
    ``history`` (the channel's digits so far) are already there."""
    for n in range(len(key), 0, -1):
        if history.endswith(key[:n]):
            return key[n:]
    return key


@dataclass
class CodeWindow:
    digits: int  # how many digits make a code
    timeout: float  # seconds after the last digit
    opened_at: float
    pending: str = ""  # the key's own digits still to come (skipped)
    code: str = ""
    closed: bool = False
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.opened_at
        if self.digits <= 0:
            self.closed = True

    def feed(self, digit: str, at: float) -> None:
        if self.closed:
            return
        if self.pending and digit == self.pending[0]:
            self.pending = self.pending[1:]
            self.last = max(self.last, at)  # a key digit reported late never shortens it
            return
        self.pending = ""
        if digit.isascii() and digit.isdigit():
            self.code += digit
            self.last = max(self.last, at)
            self.closed = len(self.code) >= self.digits
        else:  # '#' ends the code, '*' is the key again: no more digits
            self.closed = True

    def due(self) -> float:
        """When the window closes if no digit comes."""
        return self.last + self.timeout

    def close_if_due(self, now: float) -> bool:
        if not self.closed and now >= self.due():
            self.closed = True
        return self.closed


#: Seconds before a program started in which the key's own digits may have been
#: reported (with RFC 4733 Asterisk holds the feature's Gosub for about half a second
#: after the key); digits older than that belong to an earlier press.
KEY_LAG = 1.5


def window_from_history(key: str, history: list[tuple[str, float]], started: float,
                        digits: int, timeout: float, now: float) -> CodeWindow:
    """A window opened at ``now`` for a key whose program ``started`` then, fed with what
    the channel typed before (``history``: (digit, epoch) oldest first, as the process-mode
    digit keeper reports it): the digits after the key count, the key's digits not yet
    reported are skipped when they come."""
    recent = "".join(d for d, at in history if at >= started - KEY_LAG)
    found = recent.rfind(key) if key else -1
    pending, typed = ("", recent[found + len(key):]) if found >= 0 else \
        (pending_key(key, recent), "")
    window = CodeWindow(digits, timeout, now, pending)
    for digit in typed:
        window.feed(digit, now)
    return window
