"""Bridge ids: time-sortable, dialplan-safe (digits and a-f only, usable as an extension)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_bridge_id(at: float) -> str:
    """``20261128194512`` + 6 hex digits, e.g. ``20261128194512a1b2c3``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)
