"""A share of a whole, as every figure gives it: 4 decimals, None when there is no whole
(nothing to count is not 0 %)."""

from __future__ import annotations


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
