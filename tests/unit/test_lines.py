"""A further line (``transfer.lines``) as the records see it: its bridges are
``110-><line>``, go to that line's feed, and are not 12345's to see."""

from __future__ import annotations

from gateway.records.roles import visible_to_12345
from gateway.transfer.model import Bridge, Party, direction
from gateway.transfer.persist import handed_to
from gateway.transfer.phase import Phase


def bridge(side: str, fields: dict[str, str]) -> Bridge:
    return Bridge("20261203213525aaaaaa", Party("PJSIP/citizen-1", "c"),
                  Party("PJSIP/seat1-1", "s"), side, Phase(), fields)


def test_a_bridge_names_both_its_lines_and_is_handed_to_the_far_one() -> None:
    assert (direction("110"), direction("12345"), direction("110", "122")) == \
        ("110->12345", "12345->110", "110->122")
    assert direction("12345", "122") == "12345->110"  # 12345 has no further lines
    assert handed_to(bridge("110", {"direction": "110->122"})) == "122"
    assert handed_to(bridge("110", {"direction": "110->12345"})) == "12345"
    assert handed_to(bridge("12345", {"direction": "12345->110"})) == "110"
    # a record written before lines existed has its direction from its side
    assert handed_to(bridge("12345", {})) == "110"


def test_12345_never_sees_a_further_lines_bridge() -> None:
    assert visible_to_12345({"direction": "110->12345", "dialing_target": "PJSIP/12345"})
    assert visible_to_12345({"direction": "12345->110"})
    assert not visible_to_12345({"direction": "110->122", "dialing_target": "PJSIP/122"})
    assert not visible_to_12345({"direction": "110->12345"})  # refused at the key
