"""The bridge log never blocks the caller, keeps order, and loses nothing while down."""

from __future__ import annotations

from pathlib import Path

import structlog
from structlog.testing import capture_logs
from twisted.internet.task import Clock

from gateway.bridge.change import Change
from gateway.bridge.log import BridgeLog
from gateway.bridge.spool import Spool
from gateway.lab.fakes import FlakyStore, null_log
from gateway.schema import bridge_record


def change(n: int, name: str = "") -> Change:
    return Change(bridge_record("b1"), f"e{n}", float(n), {"n": str(n), "name": name}, id=f"c{n}")


def test_changes_reach_the_store_in_order() -> None:
    store, clock = FlakyStore(), Clock()
    log = BridgeLog(store, clock=clock, log=null_log())
    for n in (1, 2, 3):
        log.record(change(n))
    assert [e["id"] for e in store.events] == ["c1", "c2", "c3"]
    assert [e["seq"] for e in store.events] == ["1", "2", "3"]  # counted by the store
    assert log.pending == 0 and log.healthy


def test_store_down_keeps_everything_and_retries_in_order() -> None:
    """While the store fails, record() still returns at once; the queue holds the
    changes; after the store is back, the next retry writes them all, in order."""
    store, clock = FlakyStore(), Clock()
    store.down = True
    blog = BridgeLog(store, clock=clock, log=structlog.get_logger(), retry_delay=1.0)
    with capture_logs() as logs:
        for n in (1, 2, 3):
            blog.record(change(n))
        assert blog.pending == 3 and not blog.healthy
        clock.advance(1.0)
        assert blog.pending == 3
        store.down = False
        clock.advance(1.0)
    assert blog.pending == 0 and blog.healthy
    assert [e["id"] for e in store.events] == ["c1", "c2", "c3"]
    kinds = [e["event"] for e in logs]
    assert kinds == ["bridge_log.store_unavailable", "bridge_log.store_back"]
    assert "Error 111" in logs[0]["error"]


def test_outage_spools_to_disk_and_a_restart_replays_once(tmp_path: Path) -> None:
    """Redis down: changes land in this process's fsynced spool file. The process dies
    (its lock goes with it); a new one takes the file over and replays it in order; a
    replay of changes the store already has adds nothing (their ids)."""
    store, clock = FlakyStore(), Clock()
    store.down = True
    first_spool = Spool(tmp_path, "gw-a/1", null_log())
    first = BridgeLog(store, clock=clock, log=null_log(), spool=first_spool)
    for n in (1, 2, 3):
        first.record(change(n, "张三\u2028李\u0085四"))
    assert [c.id for c in first_spool.load()] == ["c1", "c2", "c3"]
    assert first.status() == {"redis": "down", "pending": 3, "spooled": 3}
    first_spool.close()  # the gateway dies here: its lock is released
    store.down = False
    second_spool = Spool(tmp_path, "gw-a/2", null_log())
    second = BridgeLog(store, clock=clock, log=null_log(), spool=second_spool)
    second.start()
    assert [e["id"] for e in store.events] == ["c1", "c2", "c3"]
    assert store.records[bridge_record("b1")]["name"] == "张三\u2028李\u0085四"
    assert second.status()["spooled"] == 0 and second_spool.load() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gw-a_2.jsonl"]
    # the same changes spooled again (say the file was copied back): nothing new
    second_spool.append([change(n) for n in (1, 2, 3)])
    third = BridgeLog(store, clock=clock, log=null_log(), spool=second_spool)
    third.start()
    assert [e["id"] for e in store.events] == ["c1", "c2", "c3"]


def test_orphans_of_dead_processes_are_adopted_while_running(tmp_path: Path) -> None:
    """A process-mode writer spooled and exited: the running gateway's sweep takes its
    file over and replays it; a live process's file is left alone."""
    store, clock = FlakyStore(), Clock()
    gateway = BridgeLog(store, clock=clock, log=null_log(),
                        spool=Spool(tmp_path, "gw", null_log()))
    dead = Spool(tmp_path, "agi-1", null_log())
    dead.append([change(7)])
    dead.close()
    alive = Spool(tmp_path, "agi-2", null_log())
    alive.append([change(8)])  # holds its lock
    assert gateway.adopt_orphans() == 1
    assert [e["id"] for e in store.events] == ["c7"]
    assert not (tmp_path / "agi-1.jsonl").exists() and (tmp_path / "agi-2.jsonl").exists()


def test_a_backlog_goes_in_batches_one_round_trip_each_in_order() -> None:
    """While one batch is on its way, new changes queue; the next batch takes up to
    BATCH of them, oldest first."""
    from twisted.internet import defer

    from gateway.bridge.log import BATCH
    from gateway.bridge.store import MemoryStore

    class Slow(MemoryStore):
        """Takes each batch at once, answers only when the test says so."""

        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[str]] = []
            self.waiting: list[defer.Deferred[list[int]]] = []

        def apply_many(self, changes: list[Change]) -> defer.Deferred[list[int]]:
            self.batches.append([c.id for c in changes])
            later: defer.Deferred[list[int]] = defer.Deferred()
            self.waiting.append(later)
            return later

    store = Slow()
    log = BridgeLog(store, clock=Clock(), log=null_log())
    changes = [change(n) for n in range(BATCH + 10)]
    for c in changes:
        log.record(c)
    assert [len(b) for b in store.batches] == [1]  # the first went alone, at once
    first = store.waiting.pop(0)
    first.callback([1])
    assert [len(b) for b in store.batches] == [1, BATCH]
    store.waiting.pop(0).callback([1] * BATCH)
    assert [len(b) for b in store.batches] == [1, BATCH, 9]
    store.waiting.pop(0).callback([1] * 9)
    assert [i for b in store.batches for i in b] == [c.id for c in changes]
    assert log.pending == 0
