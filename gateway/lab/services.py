"""The lab's Redis server, gateway process, push process and 12345 receiver."""

from __future__ import annotations

import json
import os
import signal
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
    """``python -m gateway run`` with a lab config; its secrets in its environment."""

    def __init__(self, config_path: Path, secrets: dict[str, str], log_dir: Path,
                 log_name: str = "gateway.log") -> None:
        self.config_path = config_path
        self._secrets = secrets
        self.log_path = log_dir / log_name
        self.proc: Proc | None = None

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = dict(os.environ, PYTHONUNBUFFERED="1") | self._secrets
        self.proc = Proc("gateway", [sys.executable, "-m", "gateway", "run", "--config",
                                     str(self.config_path)], self.log_path, env=env)

        def ready() -> bool:
            if not self.proc or not self.proc.alive():
                raise LabError(f"gateway exited:\n{self.proc.tail() if self.proc else ''}")
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            return '"gateway.started"' in text and '"ami.connected"' in text

        wait_until(ready, 20, "the gateway (FastAGI listening, AMI logged in)")

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
    """``python -m gateway push`` with a config; its secrets in its environment."""

    def __init__(self, config_path: Path, secrets: dict[str, str], log_path: Path) -> None:
        self.config_path, self._secrets, self.log_path = config_path, secrets, log_path
        self.proc: Proc | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1") | self._secrets
        self.proc = Proc("push", [sys.executable, "-m", "gateway", "push", "--config",
                                  str(self.config_path)], self.log_path, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
