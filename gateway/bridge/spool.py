"""The local spool: changes that could not reach Redis, on disk, in order.

JSON lines, appended and fsynced before :meth:`Spool.append` returns, so a change the
gateway has accepted survives a crash of the gateway during a Redis outage. Replaying
is safe twice over: the store skips a change whose ``seq`` it already has.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.bridge.store import Change


class Spool:
    def __init__(self, path: Path, log: Any) -> None:
        self.path = path
        self.log = log

    def append(self, changes: Iterable[Change]) -> None:
        lines = "".join(change.to_json() + "\n" for change in changes)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def load(self) -> list[Change]:
        """Every whole line; a torn last line (a crash mid-write) is logged and dropped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        changes = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                changes.append(Change.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                self.log.error("spool.bad_line", path=str(self.path), line=number,
                               error=str(exc))
        return changes

    def clear(self) -> None:
        with open(self.path, "w", encoding="utf-8") as f:
            f.flush()
            os.fsync(f.fileno())
