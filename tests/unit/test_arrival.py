"""A 12345 agent's hand-over arriving over the trunk: the ``handed``, ``taken`` and
``handed_end`` scripts on an AGI double, through the transfer service into the bridge
log's in-memory store, and the pure parts with hostile header values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.lab.fakes import ChannelDouble
from gateway.schema import IDX_DEADLINE, IDX_LIVE, bridge_record, iso, ticket_record
from gateway.transfer.arrival import HEADERS, Handover, arrival_id, arrived, read_handover
from gateway.transfer.model import Party
from tests.unit.test_transfer import T0, Rig

TRUNK = "PJSIP/trunk-12345-0000001a"
UNIQUEID = "1795895437.42"
BID = arrival_id(UNIQUEID, TRUNK)
PATTERN = r"^\d{8,20}$"


def arrival(ticket: str = "2026120300042", agent: str = "agent2", code: str = "",
            number: str = "13900139000", name: str = "李四") -> ChannelDouble:
    return ChannelDouble(TRUNK, UNIQUEID, ("110",), {
        "UNIQUEID": UNIQUEID, "CHANNEL(linkedid)": UNIQUEID, "CHANNEL(endpoint)": "trunk-12345",
        "CALLERID(num)": number, "CALLERID(name)": name,
        f"PJSIP_HEADER(read,{HEADERS[0]})": ticket, f"PJSIP_HEADER(read,{HEADERS[1]})": agent,
        f"PJSIP_HEADER(read,{HEADERS[2]})": code})


def test_the_id_is_the_channels_time_and_the_same_for_every_process() -> None:
    assert BID == arrival_id(UNIQUEID, TRUNK)
    assert BID.startswith("20261128") and len(BID) == 20
    assert arrival_id("ast1-1795895437.42", TRUNK)[:14] == BID[:14]
    assert arrival_id("1795895437.43", TRUNK) != BID
    assert arrival_id("not-a-uniqueid", TRUNK).startswith("19700101")


def test_a_hand_over_is_registered_with_its_ticket_and_110s_deadline() -> None:
    rig = Rig(response_deadline=1800.0)
    session = arrival(code="301")
    assert rig.run("handed", session).called
    assert session.reads == 1 and session.set == {"LINKGW_ANSWER": f"OK|{BID}|||0"}
    record = rig.store.records[bridge_record(BID)]
    assert {k: record[k] for k in ("direction", "mode", "state", "seat", "dialed",
                                   "citizen_number", "citizen_name", "citizen_channel",
                                   "code", "category", "requested_at", "response_due_at")
            } == {"direction": "12345->110", "mode": "trunk", "state": "requested",
                  "seat": "12345:agent2", "dialed": "110", "citizen_number": "13900139000",
                  "citizen_name": "李四", "citizen_channel": TRUNK, "code": "301",
                  "category": "utilities", "requested_at": iso(T0),
                  "response_due_at": iso(T0 + 1800)}
    assert rig.store.indexes[IDX_DEADLINE] == {BID: T0 + 1800}
    assert IDX_LIVE not in rig.store.indexes  # Asterisk rings on its own: nothing to adopt
    ticket = rig.store.records[ticket_record(BID)]
    assert (ticket["ticket"], ticket["attached_via"], ticket["deadline_at"],
            ticket["direction"]) == ("2026120300042", "trunk", iso(T0 + 1800), "12345->110")
    assert [(e["record"], e["event"]) for e in rig.store.feeds["12345"]] == [
        (bridge_record(BID), "handover_arrived"), (ticket_record(BID), "ticket_attached")]


def test_a_seat_takes_it_once_and_a_late_end_changes_nothing() -> None:
    rig = Rig()
    rig.run("handed", arrival())
    rig.clock.advance(3.5)
    taker = ChannelDouble("PJSIP/seat2-00000020", "u-s2", (BID,),
                          {"CHANNEL(endpoint)": "seat2"})
    assert rig.run("taken", taker).called and taker.set["LINKGW_ANSWER"] == f"OK|{BID}|||0"
    rig.run("handed_end", ChannelDouble(TRUNK, UNIQUEID, (BID, "CANCEL"), {}))
    record = rig.store.records[bridge_record(BID)]
    assert (record["state"], record["outcome"], record["agent"]) == \
        ("ended", "handed_off", "seat2")
    assert record["agent_answered_at"] == iso(T0 + 3.5)
    assert BID in rig.store.indexes[IDX_DEADLINE]  # 110's answer is still due
    assert [e["event"] for e in rig.store.events if e["record"] == bridge_record(BID)] == \
        ["handover_arrived", "handover_taken"]


def test_the_citizen_hanging_up_first_owes_no_answer() -> None:
    rig = Rig()
    rig.run("handed", arrival())
    rig.run("handed_end", ChannelDouble(TRUNK, UNIQUEID, (BID, "CANCEL"), {}))
    record = rig.store.records[bridge_record(BID)]
    assert (record["outcome"], record["agent_failure"]) == \
        ("abandoned", "the citizen hung up while 110 rang")
    assert rig.store.indexes[IDX_DEADLINE] == {}


def test_a_replayed_hand_over_writes_nothing_twice() -> None:
    """A second gateway (or the backup AGI) asked about the same call decides the same
    id and the same changes: the store applies them once."""
    rig = Rig()
    rig.run("handed", arrival())
    rig.clock.advance(1.0)
    rig.run("handed", arrival())
    assert [e["event"] for e in rig.store.events] == ["handover_arrived", "ticket_attached"]
    assert rig.store.records[bridge_record(BID)]["requested_at"] == iso(T0)


def test_a_bridge_argument_that_is_not_one_is_refused_without_a_record() -> None:
    rig = Rig()
    for args in (("",), ("x" * 20,), (BID + "\n",), (f"{BID[:-1]}Z",)):
        session = ChannelDouble("PJSIP/seat2-1", "u", args, {})
        rig.run("taken", session)
        assert session.set == {"LINKGW_ANSWER": "NO_BRIDGE||||0"}
    assert rig.store.records == {}


def test_hostile_headers_are_refused_by_name_and_never_stored() -> None:
    rig = Rig()
    session = arrival(ticket="2026120300042\r\nX-Evil: 1", agent='agent2" <sip:x>',
                      code="３０１")  # full-width digits are not the code "301"
    rig.run("handed", session)
    record = rig.store.records[bridge_record(BID)]
    assert record["seat"] == "12345" and "code" not in record
    assert ticket_record(BID) not in rig.store.records
    problems = next(e for e in rig.store.events if e["event"] == "handover_arrived")["data"]
    assert "X-Linkgw-Ticket of 24 characters does not match" in problems
    assert "X-Evil" not in problems and "sip:x" not in problems


@given(st.text(max_size=300), st.text(max_size=100), st.text(max_size=40))
def test_any_header_values_give_a_checked_hand_over(ticket: str, agent: str, code: str
                                                    ) -> None:
    """Whatever the INVITE carried (CR LF, U+2028, U+0085, Chinese, 300 characters):
    each value kept is of its own alphabet, and each refused one is named."""
    handover = read_handover([ticket, agent, code], PATTERN)
    assert handover.ticket in ("", ticket) and handover.agent in ("", agent)
    assert handover.ticket == "" or (handover.ticket.isascii() and handover.ticket.isdigit())
    assert all(c.isascii() and c not in "\r\n\"<>" for c in handover.agent)
    assert handover.code == "" or (handover.code.isascii() and handover.code.isdigit())
    refused = [v for v, kept in ((ticket, handover.ticket), (agent, handover.agent),
                                 (code, handover.code)) if v and not kept]
    assert len(handover.problems) == len(refused)


def test_the_first_record_of_a_hand_over_without_a_ticket() -> None:
    changes = arrived(BID, Party(TRUNK, UNIQUEID, number="110"), Handover(), "110", T0,
                      60.0, {}, "gw1")
    assert [c.record for c in changes] == [bridge_record(BID)]
    assert changes[0].fields["seat"] == "12345" and changes[0].feed == "12345"
    assert changes[0].id == f"arrived:{BID}"
