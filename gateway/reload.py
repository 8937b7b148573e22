"""Reload without dropping a call (SIGHUP, ``systemctl reload linkgw``).

The gateway re-reads its config file, the category list and so the prompts' names.
What it built its connections and listeners from (the ``fastagi``, ``ami``, ``redis``,
``cluster``, ``http``, ``push``, ``log``, ``retention`` and ``tickets`` sections) cannot
change while it runs: a reload that changes any of them is refused as a whole, the log
names what would need a restart, and the old config stays. ``transfer`` and the
categories change live: the next key uses them; a bridge already open keeps its plan.

Values that ``linkgw dialplan`` writes into Asterisk's files (keys, prompts played by
the dialplan, the notice's length, the AGI address) only reach Asterisk after
``linkgw dialplan`` and a dialplan reload; the reload says so when one of them changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.app import load_catalogue
from gateway.catalogue import Catalogue, CategoryError
from gateway.config import Config, ConfigError, load_config_file
from gateway.dialplan import render_features, render_globals, render_moh

LIVE_SECTIONS = ("transfer",)


def changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ (dataclasses, walked)."""
    if not (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)):
        return [prefix] if old != new else []
    out: list[str] = []
    for field in dataclasses.fields(old):
        name = f"{prefix}.{field.name}" if prefix else field.name
        out += changed(getattr(old, field.name), getattr(new, field.name), name)
    return out


def _dialplan(config: Config) -> tuple[str, ...]:
    return render_globals(config), render_features(config), render_moh(config)


@dataclass(frozen=True)
class Plan:
    live: tuple[str, ...]  # applied now
    fixed: tuple[str, ...]  # need a restart: when any, nothing is applied
    dialplan_stale: bool  # Asterisk's linkgw files no longer match the config

    @property
    def refused(self) -> bool:
        return bool(self.fixed)


def _line_roles(config: Config) -> dict[str, str]:
    """The further lines and their API tokens: the API's roles, made at start."""
    return {line.name: line.token for line in config.transfer.lines}


def plan(old: Config, new: Config) -> Plan:
    paths = changed(old, new)
    live = tuple(p for p in paths if p.split(".")[0] in LIVE_SECTIONS)
    fixed = tuple(p for p in paths if p.split(".")[0] not in LIVE_SECTIONS)
    if _line_roles(old) != _line_roles(new):  # a line or its token added, gone, changed
        fixed += ("transfer.lines (a line or its API token)",)
    return Plan(live, fixed, _dialplan(old) != _dialplan(new))


class Reloader:
    """Reads the files, plans, applies through ``apply`` and says what happened."""

    def __init__(self, path: Path, current: Callable[[], Config],
                 apply: Callable[[Config, Catalogue], None], log: Any,
                 environ: Mapping[str, str] | None = None) -> None:
        self.path, self.current, self.apply, self.log = path, current, apply, log
        self.environ = environ  # None: the process's own (where the secrets are)

    def reload(self) -> str:
        """One reload; returns the outcome in a few words (for systemd's status)."""
        try:
            config = load_config_file(self.path, self.environ)
            catalogue = load_catalogue(config)
        except (ConfigError, CategoryError, OSError) as exc:
            self.log.error("reload.refused", reason="unreadable", error=str(exc))
            return "reload refused: the config or categories are broken (old config kept)"
        what = plan(self.current(), config)
        if what.refused:
            self.log.error("reload.refused", reason="needs a restart", changed=list(what.fixed),
                           hint="these take effect at the next start (systemctl restart)")
            return f"reload refused: {', '.join(what.fixed)} need a restart (old config kept)"
        self.apply(config, catalogue)
        self.log.info("reload.applied", changed=list(what.live),
                      categories=len(catalogue.categories), items=len(catalogue.items),
                      police_matters=len(catalogue.police))
        if what.dialplan_stale:
            self.log.warning("reload.dialplan_stale",
                             hint="run linkgw dialplan, then 'dialplan reload' and "
                                  "'module reload res_musiconhold.so' in Asterisk")
        return f"config reloaded ({len(what.live)} values changed)"
