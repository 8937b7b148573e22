"""The record desks (tickets, work orders) write as durably as the transfer changes: on a
site that asks for replicas (``redis.min_replicas``), an attach counts as done only once
a replica has it, so that a failover right after cannot lose it; before that, the asker
is told to try again (503), never "done". A real master and a real replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bridge.change import Change
from gateway.bridge.redis_store import apply_sync
from gateway.catalogue import Catalogue
from gateway.config import RedisConfig, TicketConfig
from gateway.lab.ports import free_ports
from gateway.lab.process import wait_until
from gateway.lab.services import RedisServer
from gateway.records.actor import Actor
from gateway.records.desk import durability
from gateway.records.errors import Unavailable
from gateway.records.tickets import TicketDesk
from gateway.schema import Keys, bridge_record

P = "durable"
BID = "20261203120000abcdef"
T0 = 1_796_300_000.0


#: who acts in these tests: a police number, through the API
API = Actor("api", "J4201")


@pytest.fixture
def master(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_ports(1)[0], tmp_path / "master", tmp_path, appendonly=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def desk(server: RedisServer, replica_timeout: float = 0.3) -> TicketDesk:
    """``replica_timeout``: short where no replica can answer, long where one will (WAIT
    returns as soon as it has)."""
    return TicketDesk(server.client(), P, TicketConfig(pattern=r"^\d{8,20}$"),
                      Catalogue(()), lambda: T0 + 60,
                      **durability(RedisConfig(min_replicas=1,
                                               replica_timeout=replica_timeout)))


def test_an_attach_no_replica_confirmed_is_not_done_and_one_confirmed_is_on_the_replica(
        master: RedisServer, tmp_path: Path) -> None:
    apply_sync(master.client(), P, Change(
        bridge_record(BID), "transfer_requested", T0,
        {"bridge_id": BID, "direction": "110->12345", "dialing_target": "PJSIP/12345"}))
    with pytest.raises(Unavailable, match="reached 0 of 1 replicas"):
        desk(master).attach(BID, "20261203000001", API)
    # on the master all the same: the asker's retry finds it, and is not told done
    # before a replica has it either
    with pytest.raises(Unavailable, match="reached 0 of 1 replicas"):
        desk(master).attach(BID, "20261203000001", API)

    replica = RedisServer(free_ports(1)[0], tmp_path / "replica", tmp_path, appendonly=False)
    replica.extra_args = ["--replicaof", "127.0.0.1", str(master.port)]
    replica.start()
    try:
        # in sync as the master counts it for WAIT: the replica's own "link up" comes
        # before the master has marked it online (its first acknowledgement)
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up"
                   and master.client().info("replication").get("slave0", {}).get("state")
                   == "online", 10, "the replica in sync")
        done = desk(master, replica_timeout=10.0).attach(BID, "20261203000001", API)
        assert done["ticket"] == "20261203000001"
        # done means the replica has it: a master lost now loses nothing said done
        on_replica = replica.client().hgetall(Keys(P).ticket(BID))
        assert on_replica["ticket"] == "20261203000001"
    finally:
        replica.stop()


def test_the_desks_write_as_the_bridge_log_does() -> None:
    config = RedisConfig(min_replicas=2, replica_timeout=1.5, events_maxlen=5000)
    assert durability(config) == {"min_replicas": 2, "replica_timeout_ms": 1500,
                                  "events_maxlen": 5000}
