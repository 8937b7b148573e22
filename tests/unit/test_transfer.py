"""The transfer feature without Asterisk: scripts → service → AMI actions → records."""

from __future__ import annotations

import base64
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.agi.errors import AgiHangup
from gateway.ami.codec import AmiMessage
from gateway.ami.errors import AmiActionError
from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.config import TransferConfig
from gateway.testing import FakeAmi, NullLog
from gateway.transfer.categories import load_categories
from gateway.transfer.scripts import MOVE_DELAY, make_scripts
from gateway.transfer.service import Party, TransferRefused, TransferService, failure_reason

T0 = 1_795_895_437.0
BID = "20261128195037abcdef"
CATALOGUE = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")


def b64(text: str) -> str:
    return base64.b64encode(("=" + text).encode()).decode()


class FakeSession:
    """Answers GET (FULL) VARIABLE from a table, GET DATA with ``digits``, records SET."""

    def __init__(self, channel: str, uniqueid: str, values: dict[str, str],
                 args: tuple[str, ...] = ("transfer",), digits: str = "") -> None:
        self.env_channel, self.env_uniqueid, self.env_args = channel, uniqueid, args
        self.values = values
        self.digits = digits
        self.set: dict[str, str] = {}
        self.prompts: list[tuple[str, int, int]] = []

    async def get_variable(self, name: str) -> str | None:
        return self.values.get(name)

    async def get_full_variable(self, expression: str) -> str | None:
        return self.values.get(expression)

    async def set_variable(self, name: str, value: str) -> None:
        self.set[name] = value

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        self.prompts.append((prompt, timeout_ms, max_digits))
        return self.digits


CITIZEN = "PJSIP/citizen-00000000"
SEAT = "PJSIP/seat1-00000001"
SEAT_VALUES = {
    "BRIDGEPEER": CITIZEN, "LINKGW_SIDE": "110",
    "${UNIQUEID}": "u-seat", "${CHANNEL(linkedid)}": "u-cit", "${CHANNEL(endpoint)}": "seat1",
    "${BASE64_ENCODE(=${CALLERID(num)})}": b64("110"),
    "${BASE64_ENCODE(=${CALLERID(name)})}": b64(""),
    f"${{IMPORT({CITIZEN},UNIQUEID)}}": "u-cit",
    f"${{IMPORT({CITIZEN},CHANNEL(linkedid))}}": "u-cit",
    f"${{IMPORT({CITIZEN},CHANNEL(endpoint))}}": "citizen",
    f"${{BASE64_ENCODE(=${{IMPORT({CITIZEN},CALLERID(num))}})}}": b64("13800138000"),
    f"${{BASE64_ENCODE(=${{IMPORT({CITIZEN},CALLERID(name))}})}}":
        b64('Zhang "San"\r\nEXEC Hangup'),
}


def setup(**config: object) -> tuple[TransferService, FakeAmi, MemoryStore, Clock]:
    clock, ami, store = Clock(), FakeAmi(), MemoryStore()
    clock.advance(T0)
    settings: dict[str, object] = {"target": "PJSIP/12345", "alternate": "PJSIP/liaison",
                                   "attempts": 2, "retry_delay": 2.0, "ring_timeout": 15.0}
    service = TransferService(ami, BridgeLog(store, clock=clock, log=NullLog()),
                              TransferConfig(**(settings | config)),  # type: ignore[arg-type]
                              clock=clock, log=NullLog(), catalogue=CATALOGUE,
                              new_id=lambda _: BID)
    return service, ami, store, clock


def press(service: TransferService, clock: Clock, digits: str = "",
          mode: str = "transfer", script: str = "onekey") -> FakeSession:
    session = FakeSession(SEAT, "u-seat", SEAT_VALUES, (mode,), digits)
    d: defer.Deferred[None] = defer.ensureDeferred(make_scripts(service, clock)[script](session))
    assert d.called
    return session


def record(store: MemoryStore) -> dict[str, str]:
    return store.records[f"bridge:{BID}"]


def test_key_opens_a_bridge_answers_at_once_and_redirects_after() -> None:
    """The AGI gets OK + the bridge id; only MOVE_DELAY later the dual Redirect goes out."""
    service, ami, store, clock = setup()
    session = press(service, clock, digits="101")
    assert session.prompts == [("beep", 3000, 3)]
    assert session.set == {"LINKGW_BRIDGE": BID, "LINKGW_RESULT": "OK"}
    assert ami.sent == []
    clock.advance(MOVE_DELAY)
    assert [(a.name, a.headers) for a in ami.sent] == [("Redirect", [
        ("Channel", CITIZEN), ("ExtraChannel", SEAT),
        ("Context", "linkgw-join-citizen"), ("Exten", BID), ("Priority", "1"),
        ("ExtraContext", "linkgw-join-seat"), ("ExtraExten", BID), ("ExtraPriority", "1"),
    ])]
    r = record(store)
    assert r["citizen_name"] == 'Zhang "San"\r\nEXEC Hangup'  # exact, on the record
    assert (r["citizen_number"], r["state"], r["direction"]) == \
        ("13800138000", "requested", "110->12345")
    assert (r["code"], r["item"], r["category"]) == ("101", "vehicle.driveway", "vehicle")
    assert r["plan"] == "PJSIP/12345,PJSIP/12345,PJSIP/liaison"


def test_redirect_ok_dials_with_safe_caller_id() -> None:
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed(Message="Dual Redirect successful")
    originate = ami.sent[1]
    assert (originate.name, originate.headers) == ("Originate", [
        ("Channel", "PJSIP/12345"), ("Context", "linkgw-join-agent"), ("Exten", BID),
        ("Priority", "1"), ("Timeout", "15000"), ("CallerID", "<13800138000>"),
        ("ChannelId", f"{BID}-a0"), ("Variable", f"LINKGW_BRIDGE={BID}"),
        ("Async", "true")])
    assert record(store)["state"] == "dialing"


def fail_attempt(ami: FakeAmi, clock: Clock, attempt: int, cause: str) -> None:
    uid = f"{BID}-a{attempt}"
    ami.emit("Newchannel", Uniqueid=uid, Channel=f"PJSIP/x-{attempt}")
    ami.emit("HangupRequest", Uniqueid=uid, Cause=cause)
    ami.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")


def test_busy_retries_then_alternate_then_back_to_the_call_taker() -> None:
    """Two busy answers at the target, one at the alternate: retries wait retry_delay,
    then citizen + seat are put back together and a work order is flagged."""
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    fail_attempt(ami, clock, 0, "17")
    assert [a.name for a in ami.sent] == ["Redirect", "Originate"]
    clock.advance(2.0)
    assert ami.sent[2].header("ChannelId") == f"{BID}-a1"
    fail_attempt(ami, clock, 1, "17")
    clock.advance(2.0)
    assert ami.sent[3].header("Channel") == "PJSIP/liaison"
    fail_attempt(ami, clock, 2, "34")
    r = record(store)
    assert (r["state"], r["attempt_1_failure"], r["attempt_3_failure"]) == \
        ("returned_to_110", "busy", "unreachable")
    assert r["work_order_push_needed"] == "yes" and r["direct_with"] == "seat"
    assert [(a.name, a.headers) for a in ami.sent[4:7]] == [
        ("Setvar", [("Channel", CITIZEN), ("Variable", "LINKGW_PEER"), ("Value", SEAT)])]
    ami.sent[4].succeed()
    ami.sent[5].succeed()
    assert ami.sent[6].name == "Redirect"
    assert ami.sent[6].header("Context") == "linkgw-direct"
    assert store.indexes["workorders:push_needed"] == {BID: T0 + MOVE_DELAY + 4.0}


def test_failure_cause_that_arrives_after_the_response_is_waited_for() -> None:
    """Asterisk may send OriginateResponse before the leg's HangupRequest: the reason
    still comes from the cause, not from Reason: 0."""
    service, ami, store, clock = setup(attempts=1, alternate="")
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    uid = f"{BID}-a0"
    ami.emit("Newchannel", Uniqueid=uid, Channel="PJSIP/12345-1")
    ami.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")
    assert record(store)["state"] == "dialing"
    ami.emit("Hangup", Uniqueid=uid, Cause="17")
    assert record(store)["agent_failure"] == "busy"


def test_failure_reason_words() -> None:
    assert failure_reason("17", 0.1, 15) == "busy"
    assert failure_reason("19", 3.0, 15) == "no answer"
    assert failure_reason("0", 15.0, 15) == "no answer"
    assert failure_reason("0", 0.2, 15) == "unreachable"
    assert failure_reason("34", 0.2, 15) == "unreachable"


def test_citizen_leaving_while_ringing_cancels_and_records_a_callback() -> None:
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    ami.emit("Newchannel", Uniqueid=f"{BID}-a0", Channel="PJSIP/12345-00000009")
    ami.emit("ConfbridgeLeave", Conference=f"linkgw-{BID}", Uniqueid="u-cit", Channel=CITIZEN)
    assert (ami.sent[-1].name, ami.sent[-1].headers) == \
        ("Hangup", [("Channel", "PJSIP/12345-00000009")])
    r = record(store)
    assert (r["state"], r["outcome"], r["callback_needed"]) == ("ended", "abandoned", "yes")
    assert store.records[f"callback:{BID}"]["number"] == "13800138000"
    assert BID in store.indexes["callbacks:open"]


def test_citizen_hangup_before_the_move_abandons() -> None:
    service, ami, store, clock = setup()
    press(service, clock)
    ami.emit("Hangup", Uniqueid="u-cit", Channel=CITIZEN, Cause="16")
    clock.advance(MOVE_DELAY)
    assert ami.sent == []  # nothing is moved for a citizen who is gone
    assert (record(store)["outcome"], record(store)["callback_needed"]) == ("abandoned", "yes")


def test_whole_handoff_from_ami_events() -> None:
    """OriginateResponse + Confbridge events walk the bridge to handed_off, logged."""
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    conf = f"linkgw-{BID}"
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid="u-cit", Channel=CITIZEN)
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid="u-seat", Channel=SEAT)
    clock.advance(1)
    ami.emit("OriginateResponse", Response="Success", Uniqueid=f"{BID}-a0",
             Channel="PJSIP/12345-00000003", Reason="4")
    ami.emit("ConfbridgeJoin", Conference=conf, Uniqueid=f"{BID}-a0",
             Channel="PJSIP/12345-00000003", Linkedid="L9")
    clock.advance(2)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid="u-seat", Channel=SEAT)
    clock.advance(5)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid="u-cit", Channel=CITIZEN)
    ami.emit("ConfbridgeLeave", Conference=conf, Uniqueid=f"{BID}-a0", Channel="x")
    ami.emit("ConfbridgeEnd", Conference=conf)
    r = record(store)
    assert (r["outcome"], r["state"]) == ("handed_off", "ended")
    assert (r["agent_channel"], r["agent_linkedid"]) == ("PJSIP/12345-00000003", "L9")
    assert r["seat_left_at"] == "2026-11-28T19:50:40.100Z"
    assert [e["event"] for e in store.events if e["record"] == f"bridge:{BID}"] == [
        "transfer_requested", "redirected", "agent_dialing", "joined:citizen", "joined:seat",
        "agent_answered", "joined:agent", "left:seat", "left:citizen", "left:agent",
        "conference_ended"]


def test_key_pressed_twice_makes_one_transfer() -> None:
    service, ami, _store, clock = setup()
    press(service, clock)
    again = press(service, clock)
    assert again.set == {"LINKGW_RESULT": "ALREADY"}
    clock.advance(MOVE_DELAY)
    assert [a.name for a in ami.sent] == ["Redirect"]


def test_never_transfer_item_is_refused_and_recorded() -> None:
    service, ami, store, clock = setup()
    session = press(service, clock, digits="104")
    assert session.set == {"LINKGW_RESULT": "NEVER_TRANSFER",
                           "LINKGW_PROMPT": "feature-not-avail-line"}
    clock.advance(1)
    assert ami.sent == []
    r = record(store)
    assert (r["state"], r["outcome"], r["refusal"], r["item"]) == \
        ("ended", "refused", "never_transfer", "vehicle.fire_lane")


def test_unknown_code_is_refused() -> None:
    service, _, store, clock = setup()
    assert press(service, clock, digits="999").set["LINKGW_RESULT"] == "UNKNOWN_CODE"
    assert record(store)["refusal"] == "unknown_code"


def test_emergency_flag_refuses_later_transfers() -> None:
    service, _ami, store, clock = setup()
    flagged = press(service, clock, script="emergency")
    assert flagged.set == {"LINKGW_PROMPT": "beep", "LINKGW_RESULT": "OK"}
    assert store.records["call:u-cit"]["emergency_by"] == "seat1"
    assert press(service, clock).set["LINKGW_RESULT"] == "EMERGENCY"
    assert record(store)["refusal"] == "emergency"


def test_consult_mode_uses_the_consult_contexts() -> None:
    service, ami, store, clock = setup()
    press(service, clock, mode="consult")
    clock.advance(MOVE_DELAY)
    assert ami.sent[0].header("Context") == "linkgw-consult-citizen"
    ami.sent[0].succeed()
    assert ami.sent[1].header("Context") == "linkgw-consult-agent"
    assert record(store)["mode"] == "consult"


def test_reverse_direction_dials_110_with_a_deadline() -> None:
    service, ami, store, clock = setup(reverse_target="PJSIP/liaison110",
                                       response_deadline=1800.0)
    session = FakeSession(SEAT, "u-seat", SEAT_VALUES | {"LINKGW_SIDE": "12345"})
    defer.ensureDeferred(make_scripts(service, clock)["onekey"](session))
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    assert ami.sent[1].header("Channel") == "PJSIP/liaison110"
    r = record(store)
    assert (r["direction"], r["response_due_at"]) == ("12345->110", "2026-11-28T20:20:37.000Z")


def test_no_bridge_peer_means_no_transfer() -> None:
    service, ami, _, clock = setup()
    session = FakeSession("PJSIP/seat1-1", "u", {})
    defer.ensureDeferred(make_scripts(service, clock)["onekey"](session))
    clock.advance(1)
    assert session.set == {"LINKGW_RESULT": "NO_PEER"} and ami.sent == []


def test_request_refuses_a_second_bridge_for_the_same_citizen() -> None:
    service, _, _, _ = setup()
    citizen = Party("PJSIP/c-1", "u1")
    service.request(citizen, Party("PJSIP/s-1", "u2"))
    try:
        service.request(citizen, Party("PJSIP/s-1", "u2"))
    except TransferRefused as exc:
        assert exc.reason == "already" and BID in exc.detail
    else:
        raise AssertionError("second request was not refused")


def test_incoming_registers_the_call() -> None:
    service, _, store, clock = setup()
    session = FakeSession(CITIZEN, "u-cit", {
        "${UNIQUEID}": "u-cit", "${CHANNEL(linkedid)}": "u-cit",
        "${CHANNEL(endpoint)}": "citizen",
        "${BASE64_ENCODE(=${CALLERID(num)})}": b64("13800138000"),
        "${BASE64_ENCODE(=${CALLERID(name)})}": b64("李四"),
    }, args=("110",))
    defer.ensureDeferred(make_scripts(service, clock)["incoming"](session))
    assert session.set == {"LINKGW_CALL": "u-cit", "LINKGW_RESULT": "OK"}
    assert store.records["call:u-cit"] == {
        "uniqueid": "u-cit", "linkedid": "u-cit", "channel": CITIZEN,
        "number": "13800138000", "name": "李四", "dialed": "110",
        "registered_at": "2026-11-28T19:50:37.000Z", "seq": "1"}


class HangupDuringCode(FakeSession):
    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        raise AgiHangup("HANGUP")


def test_call_ending_while_the_code_is_typed_records_a_callback() -> None:
    """The citizen hangs up within a second of the key: no transfer, but the intent is
    on record (abandoned) with a callback task."""
    service, ami, store, clock = setup()
    session = HangupDuringCode(SEAT, "u-seat", SEAT_VALUES)
    d = defer.ensureDeferred(make_scripts(service, clock)["onekey"](session))
    d.addErrback(lambda f: f.trap(AgiHangup))
    clock.advance(1)
    assert ami.sent == []
    r = record(store)
    assert (r["state"], r["outcome"], r["callback_needed"]) == ("ended", "abandoned", "yes")
    assert store.records[f"callback:{BID}"]["seat"] == "seat1"


def test_redirect_refused_because_the_citizen_is_gone_is_abandonment() -> None:
    """Asterisk's 'Channel does not exist: <citizen>' means the citizen hung up."""
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].deferred.errback(AmiActionError("Redirect", AmiMessage((
        ("Response", "Error"), ("Message", f"Channel does not exist: {CITIZEN}")))))
    r = record(store)
    assert (r["outcome"], r["callback_needed"]) == ("abandoned", "yes")


def test_redirect_refused_for_another_reason_is_a_failure() -> None:
    service, ami, store, clock = setup()
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].deferred.errback(AmiActionError("Redirect", AmiMessage((
        ("Response", "Error"), ("Message", "Secondary redirect failed")))))
    assert (record(store)["outcome"], len(ami.sent)) == ("failed", 1)


def test_memory_of_calls_bridges_and_flags_is_let_go() -> None:
    """A gateway runs for months: per-call state is forgotten after its keep time."""
    service, ami, _store, clock = setup()
    press(service, clock, script="emergency")
    service.register_call(Party(CITIZEN, "u-cit", number="1"), "110")
    bridge = service.request(Party("PJSIP/c-2", "u2"), Party("PJSIP/s-2", "u3"))
    ami.emit("Hangup", Uniqueid="u2", Channel="PJSIP/c-2")  # abandoned before the move
    assert bridge.state.value == "ended"
    clock.advance(TransferService.KEEP_ENDED)
    assert service.bridges == {} and "call:u-cit" not in service._seq
    assert "u-cit" in service.emergencies
    clock.advance(TransferService.KEEP_EMERGENCY)
    assert service.emergencies == set()


def test_an_early_zero_cause_does_not_hide_the_real_one() -> None:
    """HangupRequest with cause 0, then the failure, then Hangup with 17: busy."""
    service, ami, store, clock = setup(attempts=1, alternate="")
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    uid = f"{BID}-a0"
    ami.emit("Newchannel", Uniqueid=uid, Channel="PJSIP/12345-1")
    ami.emit("HangupRequest", Uniqueid=uid, Cause="0")
    ami.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")
    assert record(store)["state"] == "dialing"
    ami.emit("Hangup", Uniqueid=uid, Cause="17", **{"Cause-txt": "User busy"})
    assert record(store)["agent_failure"] == "busy"


def test_a_leg_whose_cause_never_comes_is_reported_after_a_second() -> None:
    service, ami, store, clock = setup(attempts=1, alternate="")
    press(service, clock)
    clock.advance(MOVE_DELAY)
    ami.sent[0].succeed()
    uid = f"{BID}-a0"
    ami.emit("Newchannel", Uniqueid=uid, Channel="PJSIP/12345-1")
    ami.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")
    clock.advance(1.0)
    assert (record(store)["state"], record(store)["agent_failure"]) == \
        ("returned_to_110", "unreachable")
