"""The AMI link cut mid-run: the gateway says so, reconnects, and the next transfer
works."""

from __future__ import annotations

from gateway.lab.calls import one_key_call
from gateway.lab.lab import Lab
from gateway.lab.process import wait_until
from tests.e2e.helpers import TIMEOUT


def test_ami_cut_logged_reconnected_next_transfer_works(lab: Lab) -> None:
    assert lab.ami_relay is not None
    before = lab.gateway.log_path.read_text().count('"ami.connected"')
    assert lab.ami_relay.cut() == 1  # the gateway's one AMI connection
    wait_until(lambda: lab.gateway.log_path.read_text().count('"ami.connected"') > before,
               TIMEOUT, "the gateway logged in to AMI again")
    log = lab.gateway.log_path.read_text()
    assert '"ami.disconnected"' in log
    seen = one_key_call(lab)
    assert seen.record["outcome"] == "handed_off"
    assert len(seen.three_party) == 3
