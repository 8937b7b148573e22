"""One real call, one key, three parties, one Redis record."""

from __future__ import annotations

from gateway.lab.calls import one_key_call
from gateway.lab.lab import Lab
from gateway.lab.provision import asterisk_root
from tests.e2e.helpers import check_handoff


def test_one_key_three_party_then_handoff(lab: Lab) -> None:
    """Asterisk shows three in the conference, two after the call-taker leaves; Redis
    holds the bridge field by field with its times in order and one event per change."""
    check_handoff(lab, one_key_call(lab, number="13800138000", name="Zhang San"))


def test_second_run_reuses_the_cached_asterisk_root(lab: Lab) -> None:
    """The lab runs from the cached root folder (built once, keyed by its packages)."""
    assert lab.asterisk is not None
    assert lab.asterisk.root == asterisk_root()
    assert (asterisk_root() / "usr/sbin/asterisk").exists()
