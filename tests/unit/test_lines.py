"""A further line (``transfer.lines``) as the records see it: its bridges are
``110-><line>``, go to that line's feed, and are not 12345's to see."""

from __future__ import annotations

import pytest

from gateway.records.errors import Forbidden, NotFound
from gateway.records.roles import (
    ApiRole,
    LineRole,
    check_allowed,
    check_visible,
    identify,
    shown_rows,
    visible_to_12345,
)
from gateway.transfer.model import Bridge, Party, direction
from gateway.transfer.phase import Phase


def bridge(side: str, fields: dict[str, str]) -> Bridge:
    return Bridge("20261203213525aaaaaa", Party("PJSIP/citizen-1", "c"),
                  Party("PJSIP/seat1-1", "s"), side, Phase(), fields)


def test_a_bridge_names_both_its_lines_and_is_handed_to_the_far_one() -> None:
    assert (direction("110"), direction("12345"), direction("110", "122")) == \
        ("110->12345", "12345->110", "110->122")
    assert direction("12345", "122") == "12345->110"  # 12345 has no further lines
    assert bridge("110", {"direction": "110->122"}).handed_to == "122"
    assert bridge("110", {"direction": "110->12345"}).handed_to == "12345"
    assert bridge("12345", {"direction": "12345->110"}).handed_to == "110"
    # a record written before lines existed has its direction from its side
    assert bridge("12345", {}).handed_to == "110"
    # a direction read back from Redis that names no line builds no feed's name
    for hostile in ("110->交警", "110->122\u2028", "110->122\x85", "110->12\r\n2",
                    "110->\udcff\udcfe", "110->１２２", "110->1:x", "110->"):
        assert bridge("110", {"direction": hostile}).handed_to == "12345", hostile


def test_12345_never_sees_a_further_lines_bridge() -> None:
    assert visible_to_12345({"direction": "110->12345", "dialing_target": "PJSIP/12345"})
    assert visible_to_12345({"direction": "12345->110"})
    assert not visible_to_12345({"direction": "110->122", "dialing_target": "PJSIP/122"})
    assert not visible_to_12345({"direction": "110->12345"})  # refused at the key


def test_a_further_lines_system_reads_its_own_bridges_as_its_feed_shows_them() -> None:
    """122's role (its token from transfer.lines[].token_env): its bridges, one or
    looked up, with the feed's fields, and their loop; nobody else's bridge exists for
    it; no other route (work orders, figures, other changes) is its."""
    traffic = LineRole("122")
    mine = {"bridge_id": "b1", "direction": "110->122", "citizen_number": "13800138000",
            "citizen_channel": "PJSIP/citizen-1", "outcome": "handed_off"}
    twelve = {"bridge_id": "b2", "direction": "110->12345", "dialing_target": "PJSIP/12345"}
    for route in ("GET /bridges/<id>", "PUT /bridges/<id>/ticket", "POST /bridges/<id>/status"):
        check_allowed(route, traffic)
    for route in ("GET /workorders", "GET /stats", "PUT /bridges/<id>/incident", "GET /live",
                  "PUT /bridges/<id>/decline-reason", "POST /workorders"):
        with pytest.raises(Forbidden, match=f"the line 122 role may not use {route}"):
            check_allowed(route, traffic)
    check_visible(traffic, mine, "b1")
    with pytest.raises(NotFound):
        check_visible(traffic, twelve, "b2")
    with pytest.raises(NotFound):
        check_visible(ApiRole.LINE_12345, mine, "b1")
    assert shown_rows(traffic, [mine, twelve], mask=True) == [
        {"bridge_id": "b1", "direction": "110->122", "citizen_number": "13800138000",
         "outcome": "handed_off"}]
    assert shown_rows(LineRole("119"), [mine, twelve], mask=True) == []
    assert identify("Bearer " + "t" * 20, {traffic: "t" * 20, ApiRole.ADMIN: "a" * 20}) == \
        traffic
