"""Hostile caller IDs through the real lab: the call is handled, the value is stored
exactly as Asterisk holds it, and no extra AGI command ever reaches Asterisk."""

from __future__ import annotations

import re

from gateway.lab.lab import ONEKEY, Lab
from tests.e2e.helpers import answering, citizen, finish, logged, mark, redis_hash, wait_event


def transfer(lab: Lab, number: str, name: str) -> tuple[dict[str, str], dict[str, str]]:
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=3500, key=ONEKEY)
    caller = citizen(lab, hold_ms=8000, number=number, name=name)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = logged(lab, conference.removeprefix("linkgw-"), "conference_ended")
    return record, redis_hash(lab, f"linkgw:call:{record['citizen_uniqueid']}")


def agi_commands(lab: Lab, since: int) -> list[str]:
    """Every AGI command Asterisk received (its 'agi set debug on' log) after the log
    had ``since`` characters."""
    assert lab.asterisk is not None
    return re.findall(r"AGI Rx << (.*)", lab.asterisk.messages()[since:])


def test_crlf_and_a_command_in_the_number(lab: Lab) -> None:
    """PJSIP turns %0D%0A in the asserted identity into a real CR LF in CALLERID(num):
    the transfer still completes and both records hold the exact value."""
    assert lab.asterisk is not None
    since = len(lab.asterisk.messages())
    record, call = transfer(lab, "13800138000%0D%0AEXEC%20Hangup", 'Li \\"boss\\" Wei')
    assert record["outcome"] == "handed_off"
    assert record["citizen_number"] == call["number"] == "13800138000\r\nEXEC Hangup"
    assert record["citizen_name"] == call["name"] == 'Li \\"boss\\" Wei'
    commands = agi_commands(lab, since)
    assert commands, "Asterisk's AGI debug log is empty"
    assert not [c for c in commands if c.startswith(("EXEC", "HANGUP"))]
    assert all(c.split(" ")[0] in ("GET", "SET") for c in commands), set(commands)


def test_four_kilobytes_of_name(lab: Lab) -> None:
    """A 4 KB display name: Asterisk keeps what it keeps; the record holds that,
    exactly, and the call goes through."""
    since = mark(lab)
    record, call = transfer(lab, "13800138001", "A" * 4096)
    assert record["outcome"] == "handed_off"
    created = wait_event(lab, since, "the citizen's channel", Event="Newchannel",
                         Channel="PJSIP/citizen")
    held = created.get("CallerIDName")
    assert held and set(held) == {"A"}
    assert record["citizen_name"] == call["name"] == held
