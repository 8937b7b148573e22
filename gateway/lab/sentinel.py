"""Redis with Sentinel for the lab: a master, two replicas and three sentinels, real
``redis-server`` processes on loopback ports of their own, stopped by their pids.

The sentinels watch the master as ``linkgw`` (quorum 2) and fail over one second after
it stops answering; a killed master that comes back is made a replica by them.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import cast

import redis
import redis.sentinel

from gateway.lab.ports import free_ports
from gateway.lab.process import LabError, Proc, wait_until
from gateway.lab.services import RedisServer

SERVICE = "linkgw"
#: Redis waits 5 s by default before a diskless sync, for more replicas to join.
SYNC_AT_ONCE = ("--repl-diskless-sync-delay", "0")


class RedisSentinels:
    def __init__(self, workdir: Path, log_dir: Path) -> None:
        ports = free_ports(6)
        self.workdir, self.log_dir = workdir, log_dir
        self.servers = [RedisServer(p, workdir / f"redis-{p}", log_dir) for p in ports[:3]]
        self.sentinel_ports = ports[3:]
        self.sentinels: list[Proc] = []
        self.extra_args: list[str] = []  # for every redis-server (the lab's ACL file)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    def start(self) -> None:
        master, *replicas = self.servers
        master.extra_args = [*self.extra_args, *SYNC_AT_ONCE]
        master.start()
        for replica in replicas:
            replica.extra_args = [*self.extra_args, *SYNC_AT_ONCE,
                                  "--replicaof", "127.0.0.1", str(master.port)]
            replica.start()
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n", encoding="utf-8")
            self.sentinels.append(Proc(f"sentinel-{port}", [
                "redis-server", str(conf), "--sentinel"], self.log_dir / f"sentinel-{port}.log"))
        wait_until(lambda: self._replicas_seen() >= 2, 20, "the sentinels seeing 2 replicas")
        wait_until(lambda: self._online(master) >= 2, 20, "both replicas in sync")

    @staticmethod
    def _online(master: RedisServer) -> int:
        info = master.client().info("replication")
        return sum(1 for k, v in info.items()
                   if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online")

    def _sentinel(self) -> redis.sentinel.Sentinel:
        return redis.sentinel.Sentinel([("127.0.0.1", p) for p in self.sentinel_ports],
                                       socket_timeout=1.0)

    def _replicas_seen(self) -> int:
        try:
            return len(self._sentinel().discover_slaves(SERVICE))
        except redis.RedisError:
            return 0

    def master_port(self) -> int:
        return int(self._sentinel().discover_master(SERVICE)[1])

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def client(self) -> redis.Redis:
        return cast(redis.Redis, self._sentinel().master_for(
            SERVICE, decode_responses=True, socket_timeout=2.0))

    def kill_master(self) -> RedisServer:
        """SIGKILL the master; return it once the sentinels have promoted a replica."""
        old = self.master()
        old.stop(signal.SIGKILL)

        def promoted() -> bool:
            try:
                return self.master_port() != old.port
            except redis.RedisError:
                return False

        wait_until(promoted, 30, "the sentinels' failover")
        return old

    def restart(self, server: RedisServer) -> None:
        """Start a killed server again on its port; the sentinels make it a replica."""
        # with the lab's ACL file, as at the first start: ACL users are not replicated,
        # so a server started without it would refuse the gateway once promoted
        server.extra_args = [*self.extra_args, *SYNC_AT_ONCE,
                             "--replicaof", "127.0.0.1", str(self.master_port())]
        server.start()

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.stop()
        for server in self.servers:
            try:
                server.stop()
            except LabError:
                pass
