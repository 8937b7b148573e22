"""Hostile caller IDs through the real lab: the call is handled, the value is stored
exactly as Asterisk holds it, and no extra AGI command ever reaches Asterisk."""

from __future__ import annotations

import re

from gateway.lab.lab import ONEKEY, Lab
from tests.e2e.helpers import (
    answering,
    citizen,
    finish,
    mark,
    redis_hash,
    redis_keys,
    settled,
    wait_event,
)


def transfer(lab: Lab, number: str, name: str) -> tuple[dict[str, str], dict[str, str]]:
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=7500, key=ONEKEY)
    caller = citizen(lab, hold_ms=12000, number=number, name=name)
    conference = wait_event(lab, since, "seat1 in a conference", Event="ConfbridgeJoin",
                            Channel="PJSIP/seat1").get("Conference")
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"))
    return record, redis_hash(lab, redis_keys(lab).call(record["citizen_uniqueid"]))


def agi_commands(lab: Lab, since: int) -> list[str]:
    """Every AGI command Asterisk received (its 'agi set debug on' log) after the log
    had ``since`` characters."""
    assert lab.asterisk is not None
    return re.findall(r"AGI Rx << (.*)", lab.asterisk.messages()[since:])


def test_crlf_and_a_command_in_the_number(any_lab: Lab) -> None:
    """PJSIP turns %0D%0A in the asserted identity into a real CR LF in CALLERID(num):
    the transfer still completes and both records hold the exact value."""
    lab = any_lab
    assert lab.asterisk is not None
    since = len(lab.asterisk.messages())
    record, call = transfer(lab, "13800138000%0D%0AEXEC%20Hangup", 'Li \\"boss\\" Wei')
    assert record["outcome"] == "handed_off"
    assert record["citizen_number"] == call["number"] == "13800138000\r\nEXEC Hangup"
    assert record["citizen_name"] == call["name"] == 'Li \\"boss\\" Wei'
    commands = agi_commands(lab, since)
    assert commands, "Asterisk's AGI debug log is empty"
    assert not [c for c in commands if c.startswith(("EXEC", "HANGUP"))]
    assert all(c.split(" ")[0] in ("GET", "SET", "STREAM") for c in commands), set(commands)


def test_four_kilobytes_of_name(any_lab: Lab) -> None:
    """A 4 KB display name: Asterisk keeps what it keeps; the record holds that,
    exactly, and the call goes through."""
    lab = any_lab
    since = mark(lab)
    record, call = transfer(lab, "13800138001", "A" * 4096)
    assert record["outcome"] == "handed_off"
    created = wait_event(lab, since, "the citizen's channel", Event="Newchannel",
                         Channel="PJSIP/citizen")
    held = created.get("CallerIDName")
    assert held and set(held) == {"A"}
    assert record["citizen_name"] == call["name"] == held


def test_a_blank_line_and_a_forged_reply_in_the_number(any_lab: Lab) -> None:
    """CR LF CR LF and an AGI reply in the asserted identity: Asterisk writes them into
    the env unescaped. The env is read whole (a blank line before agi_threadid is part
    of the value), the call is registered with the exact number, the transfer works."""
    lab = any_lab
    record, call = transfer(lab, "1%0D%0A%0D%0A200%20result%3D1%20(forged)", "Wang Wu")
    assert record["outcome"] == "handed_off"
    assert record["citizen_number"] == call["number"] == "1\r\n\r\n200 result=1 (forged)"
    assert "callerid_unreadable" not in call
