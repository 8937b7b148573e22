"""The transfer feature without Asterisk: scripts → service → AMI actions → records."""

from __future__ import annotations

import base64

from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.config import TransferConfig
from gateway.transfer.scripts import make_scripts
from gateway.transfer.service import Party, TransferRefused, TransferService
from tests.unit.fakes import FakeAmi, NullLog

T0 = 1_795_895_437.0
BID = "20261128195037abcdef"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeSession:
    """Answers GET (FULL) VARIABLE from a table, records SET VARIABLE."""

    def __init__(self, channel: str, uniqueid: str, values: dict[str, str]) -> None:
        self.env_channel, self.env_uniqueid = channel, uniqueid
        self.values = values
        self.set: dict[str, str] = {}

    async def get_variable(self, name: str) -> str | None:
        return self.values.get(name)

    async def get_full_variable(self, expression: str) -> str | None:
        return self.values.get(expression)

    async def set_variable(self, name: str, value: str) -> None:
        self.set[name] = value


CITIZEN = "PJSIP/citizen-00000000"
SEAT_VALUES = {
    "BRIDGEPEER": CITIZEN,
    "${UNIQUEID}": "u-seat", "${CHANNEL(linkedid)}": "u-cit", "${CHANNEL(endpoint)}": "seat1",
    "${BASE64_ENCODE(${CALLERID(num)})}": b64("110"),
    "${BASE64_ENCODE(${CALLERID(name)})}": "",
    f"${{IMPORT({CITIZEN},UNIQUEID)}}": "u-cit",
    f"${{IMPORT({CITIZEN},CHANNEL(linkedid))}}": "u-cit",
    f"${{IMPORT({CITIZEN},CHANNEL(endpoint))}}": "citizen",
    f"${{BASE64_ENCODE(${{IMPORT({CITIZEN},CALLERID(num))}})}}": b64("13800138000"),
    f"${{BASE64_ENCODE(${{IMPORT({CITIZEN},CALLERID(name))}})}}":
        b64('Zhang "San"\r\nEXEC Hangup'),
}


def setup() -> tuple[TransferService, FakeAmi, MemoryStore, Clock]:
    clock, ami, store = Clock(), FakeAmi(), MemoryStore()
    clock.advance(T0)
    service = TransferService(ami, BridgeLog(store, clock=clock, log=NullLog()),
                              TransferConfig(target="PJSIP/12345", ring_timeout=15.0),
                              clock=clock, log=NullLog(), new_id=lambda _: BID)
    return service, ami, store, clock


def press_key(service: TransferService, clock: Clock) -> FakeSession:
    session = FakeSession("PJSIP/seat1-00000001", "u-seat", SEAT_VALUES)
    d: defer.Deferred[None] = defer.ensureDeferred(make_scripts(service, clock)["onekey"](session))
    assert d.called
    return session


def test_key_opens_a_bridge_answers_at_once_and_redirects_after() -> None:
    """The AGI gets OK + the bridge id; only then (next tick) the dual Redirect goes out."""
    service, ami, store, clock = setup()
    session = press_key(service, clock)
    assert session.set == {"LINKGW_BRIDGE": BID, "LINKGW_RESULT": "OK"}
    assert ami.sent == []
    clock.advance(0)
    assert [(a.name, a.headers) for a in ami.sent] == [("Redirect", [
        ("Channel", CITIZEN), ("ExtraChannel", "PJSIP/seat1-00000001"),
        ("Context", "linkgw-join-citizen"), ("Exten", BID), ("Priority", "1"),
        ("ExtraContext", "linkgw-join-seat"), ("ExtraExten", BID), ("ExtraPriority", "1"),
    ])]
    record = store.records[f"bridge:{BID}"]
    assert record["citizen_name"] == 'Zhang "San"\r\nEXEC Hangup'  # exact, on the record
    assert record["citizen_number"] == "13800138000"
    assert record["state"] == "requested"


def test_redirect_ok_dials_12345_with_safe_caller_id() -> None:
    service, ami, store, clock = setup()
    press_key(service, clock)
    clock.advance(0)
    ami.sent[0].succeed(Message="Dual Redirect successful")
    originate = ami.sent[1]
    assert originate.name == "Originate"
    assert originate.headers == [
        ("Channel", "PJSIP/12345"), ("Context", "linkgw-join-agent"), ("Exten", BID),
        ("Priority", "1"), ("Timeout", "15000"), ("CallerID", "<13800138000>"),
        ("ChannelId", f"{BID}-agent"), ("Variable", f"LINKGW_BRIDGE={BID}"),
        ("Async", "true"),
    ]
    assert store.records[f"bridge:{BID}"]["state"] == "dialing_12345"


def test_whole_handoff_from_ami_events() -> None:
    """OriginateResponse + Confbridge events walk the bridge to handed_off, logged."""
    service, ami, store, clock = setup()
    press_key(service, clock)
    clock.advance(0)
    ami.sent[0].succeed()
    conf = f"linkgw-{BID}"
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid="u-cit", Channel=CITIZEN)
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid="u-seat", Channel="PJSIP/seat1-1")
    clock.advance(1)
    ami.emit("OriginateResponse", Response="Success", Uniqueid=f"{BID}-agent",
             Channel="PJSIP/12345-00000003", Reason="4")
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid=f"{BID}-agent",
             Channel="PJSIP/12345-00000003", Linkedid="L9")
    clock.advance(2)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid="u-seat", Channel="PJSIP/seat1-1")
    clock.advance(5)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid="u-cit", Channel=CITIZEN)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid=f"{BID}-agent", Channel="x")
    ami.emit("ConfbridgeEnd", Conference=conf)
    record = store.records[f"bridge:{BID}"]
    assert record["outcome"] == "handed_off" and record["state"] == "ended"
    assert record["agent_channel"] == "PJSIP/12345-00000003"
    assert record["agent_linkedid"] == "L9"
    assert record["agent_answered_at"] == "2026-11-28T19:50:38.000Z"
    assert record["seat_left_at"] == "2026-11-28T19:50:40.000Z"
    assert record["ended_at"] == "2026-11-28T19:50:45.000Z"
    assert [e["event"] for e in store.events] == [
        "transfer_requested", "redirected", "joined:citizen", "joined:seat",
        "agent_answered", "joined:agent", "left:seat", "left:citizen", "left:agent",
        "conference_ended"]
    assert service.bridges[BID].seq == 10


def test_key_pressed_twice_makes_one_transfer() -> None:
    service, ami, _store, clock = setup()
    press_key(service, clock)
    again = press_key(service, clock)
    assert again.set == {"LINKGW_RESULT": "ALREADY"}
    clock.advance(0)
    assert [a.name for a in ami.sent] == ["Redirect"]


def test_redirect_refused_ends_the_bridge_as_failed() -> None:
    service, ami, store, clock = setup()
    press_key(service, clock)
    clock.advance(0)
    ami.sent[0].deferred.errback(RuntimeError("Channel does not exist"))
    record = store.records[f"bridge:{BID}"]
    assert (record["state"], record["outcome"]) == ("ended", "failed")
    assert "Channel does not exist" in record["error"]
    assert len(ami.sent) == 1  # no 12345 leg for a call that did not move


def test_no_bridge_peer_means_no_transfer() -> None:
    service, ami, _, clock = setup()
    session = FakeSession("PJSIP/seat1-1", "u", {})
    defer.ensureDeferred(make_scripts(service, clock)["onekey"](session))
    clock.advance(0)
    assert session.set == {"LINKGW_RESULT": "NO_PEER"} and ami.sent == []


def test_request_refuses_a_second_bridge_for_the_same_citizen() -> None:
    service, _, _, _ = setup()
    citizen = Party("PJSIP/c-1", "u1")
    service.request(citizen, Party("PJSIP/s-1", "u2"))
    try:
        service.request(citizen, Party("PJSIP/s-1", "u2"))
    except TransferRefused as exc:
        assert BID in exc.reason
    else:
        raise AssertionError("second request was not refused")


def test_incoming_registers_the_call() -> None:
    service, _, store, clock = setup()
    session = FakeSession(CITIZEN, "u-cit", {
        "${UNIQUEID}": "u-cit", "${CHANNEL(linkedid)}": "u-cit",
        "${CHANNEL(endpoint)}": "citizen", "${EXTEN}": "110",
        "${BASE64_ENCODE(${CALLERID(num)})}": b64("13800138000"),
        "${BASE64_ENCODE(${CALLERID(name)})}": b64("李四"),
    })
    defer.ensureDeferred(make_scripts(service, clock)["incoming"](session))
    assert session.set == {"LINKGW_CALL": "u-cit", "LINKGW_RESULT": "OK"}
    assert store.records["call:u-cit"] == {
        "uniqueid": "u-cit", "linkedid": "u-cit", "channel": CITIZEN,
        "number": "13800138000", "name": "李四", "dialed": "110",
        "registered_at": "2026-11-28T19:50:37.000Z", "seq": "1"}
