"""The other line's leg of one attempt, as AMI reports it: a small explicit machine.

Asterisk 22 answers an async Originate that failed with ``Reason: 0`` whether the line was
busy or refused it (3 when it was cut at the ring timeout), so the reason comes from the
leg's hangup cause, which arrives in ``HangupRequest``/``Hangup`` just before or just after
the ``OriginateResponse``. A failure therefore waits up to :data:`CAUSE_WAIT` for its
cause. States: ``ringing`` → ``answered`` | ``failing`` (cause pending) → ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Q.850 hangup causes of the other line's leg, in the words of the record.
FAILURE_CAUSES = {"17": "busy", "18": "no answer", "19": "no answer", "21": "rejected"}
CAUSE_WAIT = 1.0  # seconds a failure waits for the leg's hangup cause


def failure_reason(cause: str, rang_for: float, ring_timeout: float) -> str:
    """Busy / no answer / rejected / unreachable from a hangup cause and the ring time."""
    if cause in FAILURE_CAUSES:
        return FAILURE_CAUSES[cause]
    if cause in ("", "0", "16") and rang_for >= ring_timeout - 0.5:
        return "no answer"  # Asterisk gave up at the ring timeout
    return "unreachable"


class LegState(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    FAILING = "failing"  # the Originate failed; its hangup cause may still come
    FAILED = "failed"


@dataclass(frozen=True)
class LegAnswered:
    channel: str
    uniqueid: str


@dataclass(frozen=True)
class LegFailed:
    at: float  # when the Originate's failure was reported
    reason: str
    cause: str
    rang_for: float


LegNews = LegAnswered | LegFailed


@dataclass
class Leg:
    """One attempt's leg. Each method returns the news it makes, at most once."""

    uniqueid: str
    ring_timeout: float
    state: LegState = LegState.RINGING
    channel: str = ""
    started: float | None = None
    cause: str = ""
    gone: bool = False  # its Hangup came: the cause is final
    failed_at: float = 0.0
    cancelled: bool = False  # to be hung up as soon as Asterisk names it
    since: float = 0.0  # when the attempt was dialled

    @property
    def failing(self) -> bool:
        return self.state is LegState.FAILING

    def created(self, channel: str, at: float) -> None:
        """Newchannel: the leg exists and rings."""
        self.channel, self.started = channel, at

    def hangup(self, cause: str, final: bool) -> LegNews | None:
        """HangupRequest (``final`` False) or Hangup (True)."""
        if cause not in ("", "0") or not self.cause:
            self.cause = cause  # a real cause beats an early 0
        self.gone = self.gone or final
        if self.state is LegState.FAILING and self._cause_known():
            return self._fail()
        return None

    def responded(self, success: bool, channel: str, at: float) -> LegNews | None:
        """OriginateResponse."""
        if self.state is not LegState.RINGING:
            return None
        if success:
            self.state = LegState.ANSWERED
            self.channel = channel or self.channel
            return LegAnswered(self.channel, self.uniqueid)
        self.state, self.failed_at = LegState.FAILING, at
        return self._fail() if self._cause_known() else None

    def timed_out(self) -> LegNews | None:
        """The wait for the cause is over: fail with what is known."""
        return self._fail() if self.state is LegState.FAILING else None

    def _cause_known(self) -> bool:
        """No leg was made, the leg is gone (Hangup has the last word), or a
        HangupRequest already gave a real (non-zero) cause."""
        return self.started is None or self.gone or self.cause not in ("", "0")

    def _fail(self) -> LegFailed:
        self.state = LegState.FAILED
        rang_for = self.failed_at - (self.started if self.started is not None
                                     else self.failed_at)
        return LegFailed(self.failed_at, failure_reason(self.cause, rang_for,
                                                        self.ring_timeout),
                         self.cause, rang_for)
