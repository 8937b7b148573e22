"""The overdue counts behind /metrics: counted on the clock in a thread, -1 until known
and while Redis cannot be read, never two counts at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.lab.fakes import null_log
from gateway.records.errors import Unavailable
from gateway.records.overdue import EVERY, RETRY, OverdueCount


class Thread:
    """The reactor's pool, by hand: each call waits until the test finishes it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, tuple[Any, ...], defer.Deferred[Any]]] = []

    def __call__(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.calls.append((fn, args, d))
        return d

    def finish(self) -> None:
        fn, args, d = self.calls.pop(0)
        try:
            d.callback(fn(*args))
        except Exception as exc:  # handed to the Deferred, as the pool does
            d.errback(exc)


def test_counted_every_interval_and_unknown_until_then() -> None:
    clock, thread, asked = Clock(), Thread(), []
    clock.advance(1000)

    def count(now: float) -> tuple[int, int]:
        asked.append(now)
        return 3, 2

    overdue = OverdueCount(count, clock, thread, null_log())
    overdue.startService()
    assert (overdue.bridges, overdue.workorders) == (-1, -1)
    thread.finish()
    assert (overdue.bridges, overdue.workorders, asked) == (3, 2, [1000.0])
    clock.advance(EVERY)
    thread.finish()
    assert asked == [1000.0, 1000.0 + EVERY]
    overdue.stopService()
    assert clock.getDelayedCalls() == []


def counting(answers: list[Any], asked: list[float] | None = None
             ) -> Callable[[float], tuple[int, int]]:
    """A count that gives these answers in turn (an exception is raised), noting when
    it was asked."""
    def count(now: float) -> tuple[int, int]:
        if asked is not None:
            asked.append(now)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer[0], answer[1]

    return count


def test_redis_down_makes_the_counts_unknown_again() -> None:
    clock, thread = Clock(), Thread()
    count = counting([(1, 4), Unavailable("Redis: connection refused")])
    overdue = OverdueCount(count, clock, thread, null_log())
    overdue.startService()
    thread.finish()
    assert overdue.workorders == 4
    clock.advance(EVERY)
    thread.finish()
    assert (overdue.bridges, overdue.workorders) == (-1, -1)
    overdue.stopService()
    assert clock.getDelayedCalls() == []


def test_a_failed_count_is_tried_again_soon_and_redis_back_shows() -> None:
    clock, thread, asked = Clock(), Thread(), cast(list[float], [])
    count = counting([Unavailable("Redis: connection refused"), (2, 5), (2, 6)], asked)
    overdue = OverdueCount(count, clock, thread, null_log())
    overdue.startService()
    thread.finish()
    assert (overdue.bridges, overdue.workorders) == (-1, -1)
    clock.advance(RETRY - 0.001)
    assert thread.calls == []
    clock.advance(0.001)
    thread.finish()
    assert (overdue.bridges, overdue.workorders) == (2, 5)
    clock.advance(EVERY - RETRY)  # the round keeps its own beat
    thread.finish()
    assert asked == [0.0, RETRY, EVERY]
    assert overdue.workorders == 6
    overdue.stopService()
    assert clock.getDelayedCalls() == []


def test_a_slow_count_is_not_doubled() -> None:
    clock, thread = Clock(), Thread()
    overdue = OverdueCount(lambda now: (0, 0), clock, thread, null_log())
    overdue.startService()
    clock.advance(EVERY)
    clock.advance(EVERY)
    assert len(thread.calls) == 1  # the first has not come back: no second one
    thread.finish()
    clock.advance(EVERY)
    assert len(thread.calls) == 1
    overdue.stopService()
