"""Process-mode AGI (no FastAGI, no gateway service) passes the same end-to-end
transfer test as FastAGI."""

from __future__ import annotations

from gateway.lab.calls import one_key_call
from gateway.lab.lab import Lab
from gateway.lab.process import wait_until
from tests.e2e.helpers import TIMEOUT, check_handoff


def test_process_mode_one_key_three_party_then_handoff(process_lab: Lab) -> None:
    assert not process_lab.gateway.proc  # the gateway service is not running here
    check_handoff(process_lab, one_key_call(process_lab, number="13800138000",
                                            name="Zhang San"))
    wait_until(lambda: '"follower.done"' in process_lab.process_log.read_text(), TIMEOUT,
               "the follower finishing once the bridge was written")
    assert '"agi": "process"' in process_lab.process_log.read_text()
