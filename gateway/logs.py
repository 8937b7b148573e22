"""structlog set-up: JSON lines in production, pretty on a terminal. Logs are events."""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def watch_gc(log: Any, threshold: float = 0.02) -> Callable[[str, dict[str, int]], None]:
    """Log every garbage collection that held the process for ``threshold`` seconds or
    more (``gc.pause``, with its generation): a stall of the reactor has a name. Returns
    the callback (``gc.callbacks.remove`` stops it)."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            took = time.perf_counter() - started[0]
            if took >= threshold:
                log.warning("gc.pause", seconds=round(took, 4),
                            generation=info.get("generation"),
                            collected=info.get("collected"))

    gc.callbacks.append(callback)
    return callback


def settle_heap() -> None:
    """What start-up built lives as long as the process: collect once, then freeze it so
    that later full collections do not walk it again (shorter pauses)."""
    gc.collect()
    gc.freeze()
