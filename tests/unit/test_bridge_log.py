"""The bridge log never blocks the caller, keeps order, and loses nothing while down."""

from __future__ import annotations

from structlog.testing import capture_logs
from twisted.internet.task import Clock

from gateway.bridge.log import BridgeLog
from gateway.bridge.store import Change
from tests.unit.fakes import FlakyStore, NullLog


def change(seq: int) -> Change:
    return Change("bridge:b1", seq, f"e{seq}", float(seq), {"n": str(seq)})


def test_changes_reach_the_store_in_order() -> None:
    store, clock = FlakyStore(), Clock()
    log = BridgeLog(store, clock=clock, log=NullLog())
    for seq in (1, 2, 3):
        log.record(change(seq))
    assert [e["seq"] for e in store.events] == ["1", "2", "3"]
    assert log.pending == 0 and log.healthy


def test_store_down_keeps_everything_and_retries_in_order() -> None:
    """While the store fails, record() still returns at once; the queue holds the
    changes; after the store is back, the next retry writes them all, in order."""
    store, clock = FlakyStore(), Clock()
    store.down = True
    import structlog

    blog = BridgeLog(store, clock=clock, log=structlog.get_logger(), retry_delay=1.0)
    with capture_logs() as logs:
        for seq in (1, 2, 3):
            blog.record(change(seq))
        assert blog.pending == 3 and not blog.healthy
        clock.advance(1.0)
        assert blog.pending == 3
        store.down = False
        clock.advance(1.0)
    assert blog.pending == 0 and blog.healthy
    assert [e["seq"] for e in store.events] == ["1", "2", "3"]
    kinds = [e["event"] for e in logs]
    assert kinds == ["bridge_log.store_unavailable", "bridge_log.store_back"]
    assert "Error 111" in logs[0]["error"]
