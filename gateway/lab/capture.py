"""Packet captures of the lab's loopback traffic (tcpdump), for what is measured on the
wire: the audio a phone received, the time from a key to an INVITE.

tcpdump runs as a process of its own, writes packets as they come (``-U``), and is
stopped by its pid; the capture is read with dpkt (:mod:`gateway.lab.rtp`,
:mod:`bench.wire`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import TracebackType

from gateway.lab.process import LabError, Proc


class Capture:
    """``with Capture(path, "udp and portrange 20000-21000"):`` … the packets are in
    ``path`` once the block is left."""

    def __init__(self, path: Path, bpf: str, interface: str = "lo") -> None:
        self.path, self.bpf, self.interface = path, bpf, interface
        self.proc: Proc | None = None

    def start(self) -> None:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise LabError("tcpdump is not installed (make installs it: apt-get install "
                           "tcpdump)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        log = self.path.with_suffix(".log")
        self.proc = Proc("tcpdump", [tcpdump, "-i", self.interface, "-U", "-s", "0", "-n",
                                     "-w", str(self.path), self.bpf], log)
        deadline = time.monotonic() + 5
        while "listening on" not in (log.read_text() if log.exists() else ""):
            if time.monotonic() > deadline:
                raise LabError(f"tcpdump did not start: {log.read_text()[-300:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=3)
            self.proc = None

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
