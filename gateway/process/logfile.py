"""Process mode's own log file: one JSON line per event, standard library only (the lean
program and the digit keeper write it; the detached processes' structlog goes there
too)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gateway.config import Config


def log_path(config: Config) -> Path:
    return Path(config.log.file) if config.log.file else \
        Path(config.redis.spool_dir).parent / "linkgw-agi.log"


def log_line(path: Path, event: str, **fields: object) -> None:
    """One JSON line, standard library only (structlog is for the detached process)."""
    record = {"event": event, "level": "error", "agi": "process",
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | fields
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    except OSError:
        pass
