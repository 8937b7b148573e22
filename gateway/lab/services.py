"""The lab's Redis server, gateway process, push process and 12345 receiver."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import redis

from gateway.lab.process import LabError, Proc, wait_until


class RedisServer:
    def __init__(self, port: int, workdir: Path, log_dir: Path, appendonly: bool = True):
        self.port = port
        self.workdir = workdir
        self.log_dir = log_dir
        self.appendonly = appendonly
        self.extra_args: list[str] = []
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--dir", str(self.workdir), "--daemonize", "no", *self.extra_args,
        ], self.log_dir / f"redis-{self.port}.log")

        def ready() -> bool:
            if not self.proc or not self.proc.alive():
                raise LabError(f"redis-server exited:\n{self.proc.tail() if self.proc else ''}")
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                return False

        wait_until(ready, 10, f"redis-server on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.stop(sig=sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would: what survives is what the AOF holds."""
        self.stop(signal.SIGKILL)


class GatewayProcess:
    """``python -m gateway run`` with a lab config; its secrets in its environment.

    It is started as systemd starts ``Type=notify``: with ``$NOTIFY_SOCKET`` naming a
    datagram socket of the lab's, and it counts as started when it says ``READY=1``
    there (AMI logged in, Redis read, the listeners up). ``notices`` keeps every
    message it sent, in order."""

    def __init__(self, config_path: Path, secrets: dict[str, str], log_dir: Path,
                 log_name: str = "gateway.log") -> None:
        self.config_path = config_path
        self._secrets = secrets
        self.log_path = log_dir / log_name
        self.notify_path = log_dir / (log_name.removesuffix(".log") + ".notify")
        self.proc: Proc | None = None
        self._notify: socket.socket | None = None
        self.notices: list[str] = []

    def start(self, wait: bool = True) -> None:
        self._listen()
        env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(self.notify_path)) \
            | self._secrets
        self.proc = Proc("gateway", [sys.executable, "-m", "gateway", "run", "--config",
                                     str(self.config_path)], self.log_path, env=env)
        if wait:
            self.wait_for_notice("READY=1", 20, "the gateway ready (AMI, Redis, listeners)")

    def _listen(self) -> None:
        """A fresh socket per start: what an earlier run said is not read as this one's."""
        if self._notify is not None:
            self._notify.close()
        self.notify_path.unlink(missing_ok=True)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))
        self._notify.setblocking(False)
        self.notices = []

    def read_notices(self) -> list[str]:
        """What the gateway has said so far (each datagram's lines, decoded)."""
        while self._notify is not None:
            try:
                data = self._notify.recv(4096)
            except BlockingIOError:
                break
            self.notices += data.decode("utf-8", errors="replace").splitlines()
        return self.notices

    def wait_for_notice(self, line: str, timeout: float, what: str) -> None:
        def said() -> bool:
            if not self.proc or not self.proc.alive():
                raise LabError(f"gateway exited:\n{self.proc.tail() if self.proc else ''}")
            return line in self.read_notices()

        wait_until(said, timeout, what)

    def reload(self, timeout: float = 10.0) -> str:
        """SIGHUP, as ``systemctl reload`` sends it; the status it says afterwards."""
        assert self.proc is not None
        said = len(self.read_notices())
        os.kill(self.proc.pid, signal.SIGHUP)

        def reloaded() -> bool:
            after = self.read_notices()[said:]
            return "RELOADING=1" in after and "READY=1" in after

        wait_until(reloaded, timeout, "the gateway's reload")
        after = self.notices[said:]
        return after[after.index("READY=1") + 1].removeprefix("STATUS=")

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is flushed, nothing is said."""
        if self.proc is not None:
            self.proc.stop(sig=signal.SIGKILL)


class ReceiverProcess:
    """The example 12345 receiver (:mod:`gateway.lab.receiver`) as a real process on a
    loopback port, HTTPS with ``cert``/``key`` (none: plain http)."""

    def __init__(self, port: int, out: Path, secret: str, log_dir: Path,
                 cert: Path | None = None, key: Path | None = None) -> None:
        self.port, self.out, self._secret, self.log_dir = port, out, secret, log_dir
        self.cert, self.key = cert, key
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}/linkgw"

    def start(self, mode: str = "ok") -> None:
        tls = ["--cert", str(self.cert), "--key", str(self.key)] if self.cert else []
        env = dict(os.environ, PYTHONUNBUFFERED="1", LINKGW_PUSH_SECRET=self._secret)
        self.proc = Proc("receiver", [sys.executable, "-m", "gateway.lab.receiver",
                                      "--port", str(self.port), "--out", str(self.out),
                                      "--mode", mode, *tls],
                         self.log_dir / f"receiver-{self.port}.log", env=env)

        def listening() -> bool:
            if not self.proc or not self.proc.alive():
                raise LabError(f"receiver exited:\n{self.proc.tail() if self.proc else ''}")
            return "listening" in self.proc.tail()

        wait_until(listening, 10, "the receiver listening")

    def events(self) -> list[dict[str, Any]]:
        """What it kept, in the order it kept them (torn last line skipped)."""
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8").split("\n"):  # not at U+2028
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.stop(sig=signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class PushProcess:
    """``python -m gateway push`` (or another job that runs alone in process mode:
    ``command="duty"``) with a config; its secrets in its environment."""

    def __init__(self, config_path: Path, secrets: dict[str, str], log_path: Path,
                 command: str = "push") -> None:
        self.config_path, self._secrets, self.log_path = config_path, secrets, log_path
        self.command = command
        self.proc: Proc | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1") | self._secrets
        self.proc = Proc(self.command, [sys.executable, "-m", "gateway", self.command,
                                        "--config", str(self.config_path)],
                         self.log_path, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
