"""The bridge log never blocks the caller, keeps order, and loses nothing while down."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs
from twisted.internet.task import Clock

from gateway.bridge.log import BridgeLog
from gateway.bridge.spool import Spool
from gateway.bridge.store import Change
from gateway.testing import FlakyStore, NullLog


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


def test_outage_spools_to_disk_and_a_restart_replays_once(tmp_path: Path) -> None:
    """Redis down: changes land in the fsynced spool. The gateway dies; a new one
    replays the spool in order; a second replay adds nothing (seq rule)."""
    store, clock = FlakyStore(), Clock()
    store.down = True
    path = tmp_path / "spool.jsonl"
    first = BridgeLog(store, clock=clock, log=NullLog(), spool=Spool(path, NullLog()))
    for seq in (1, 2):
        first.record(change(seq))
    first.record(change(3))
    assert [Change.from_json(x).seq for x in path.read_text().splitlines()] == [1, 2, 3]
    assert first.status() == {"redis": "down", "pending": 3, "spooled": 3}
    # the gateway dies here; Redis comes back; a new gateway starts
    store.down = False
    second = BridgeLog(store, clock=clock, log=NullLog(), spool=Spool(path, NullLog()))
    second.start()
    assert [e["seq"] for e in store.events] == ["1", "2", "3"]
    assert path.read_text() == "" and second.status()["spooled"] == 0
    # replaying the same spool again (say it was copied back) changes nothing
    path.write_text("".join(change(s).to_json() + "\n" for s in (1, 2, 3)))
    third = BridgeLog(store, clock=clock, log=NullLog(), spool=Spool(path, NullLog()))
    third.start()
    assert [e["seq"] for e in store.events] == ["1", "2", "3"]


def test_torn_last_line_is_dropped_and_logged(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_text(change(1).to_json() + "\n" + '{"record": "bri')
    with capture_logs() as logs:
        import structlog

        changes = Spool(path, structlog.get_logger()).load()
    assert [c.seq for c in changes] == [1]
    assert logs[0]["event"] == "spool.bad_line" and logs[0]["line"] == 2
