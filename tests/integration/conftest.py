"""Integration fixtures: a real redis-server of the test's own, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lab.ports import free_ports
from gateway.lab.services import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    workdir: Path = tmp_path_factory.mktemp("redis")
    server = RedisServer(free_ports(1)[0], workdir, workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
