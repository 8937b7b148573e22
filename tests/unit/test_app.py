"""The composition root: every record desk it builds writes as the transfer changes do."""

from __future__ import annotations

from dataclasses import replace

from gateway.app import build_records
from gateway.catalogue import Catalogue
from gateway.config import Config, RedisConfig


def test_the_record_desks_are_built_with_the_durability_of_transfer_changes() -> None:
    config = replace(Config(), redis=RedisConfig(min_replicas=2, replica_timeout=1.5,
                                                 events_maxlen=5000))
    parts = build_records(config, lambda: 0.0, Catalogue(()))
    for desk in (parts.desk, parts.workorders):
        assert (desk.min_replicas, desk.replica_timeout_ms, desk.events_maxlen) == \
            (2, 1500, 5000)
        assert desk.client is parts.client is parts.records.client  # one client
