"""The transfer feature without Asterisk: AGI scripts → service → AMI bytes → records.

Asterisk is faked at the wire (:class:`gateway.lab.fakes.WireAsterisk`): the real AMI
client writes its actions as bytes, the tests read them back by name and answer with
bytes; the AGI side is a :class:`gateway.lab.fakes.ChannelDouble`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.catalogue import load_categories
from gateway.config import Line, TransferConfig
from gateway.lab.fakes import ChannelDouble, WireAsterisk, null_log
from gateway.metrics import TransferMeter, exposition
from gateway.schema import iso
from gateway.transfer.commands import Commands
from gateway.transfer.scripts import make_scripts
from gateway.transfer.services import TransferService

T0 = 1_795_895_437.0
BID = "20261128195037abcdef"
CATALOGUE = load_categories(Path(__file__).resolve().parents[2] / "config/categories.yaml")
CITIZEN = "PJSIP/citizen-00000000"
SEAT = "PJSIP/seat1-00000001"
HOSTILE_NAME = 'Zhang "San"\r\nEXEC Hangup'
#: The INVITE's User-to-User payload for the key of BID (RFC 7433, hex)
UUI_HEX = (f"bridge={BID}&seat=seat1&direction=110-%3E12345&centre=110&caller=13800138000"
           .encode("ascii").hex())


def seat_values(**extra: str) -> dict[str, str]:
    """What the seat's channel holds, and what IMPORT/SHARED read of the citizen's."""
    return {
        "UNIQUEID": "u-seat", "CHANNEL(linkedid)": "u-cit", "CHANNEL(endpoint)": "seat1",
        "CALLERID(num)": "110", "CALLERID(name)": "", "LINKGW_SIDE": "110",
        f"IMPORT({CITIZEN},UNIQUEID)": "u-cit",
        f"IMPORT({CITIZEN},CHANNEL(linkedid))": "u-cit",
        f"IMPORT({CITIZEN},CHANNEL(endpoint))": "citizen",
        f"IMPORT({CITIZEN},CALLERID(num))": "13800138000",
        f"IMPORT({CITIZEN},CALLERID(name))": HOSTILE_NAME,
    } | extra


class Rig:
    def __init__(self, meter: TransferMeter | None = None, **config: object) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.asterisk = WireAsterisk(self.clock)
        self.store = MemoryStore()
        settings: dict[str, object] = {"target": "PJSIP/12345", "alternate": "PJSIP/liaison",
                                       "attempts": 2, "retry_delay": 2.0,
                                       "ring_timeout": 15.0}
        self.service = TransferService(
            self.asterisk.client, BridgeLog(self.store, clock=self.clock, log=null_log()),
            TransferConfig(**(settings | config)),  # type: ignore[arg-type]
            clock=self.clock, log=null_log(), catalogue=CATALOGUE, new_id=lambda _: BID,
            meter=meter)
        self.service.asterisk = "lab-ast"
        self.scripts = make_scripts(self.service)

    def run(self, script: str, session: ChannelDouble) -> defer.Deferred[None]:
        return defer.ensureDeferred(self.scripts[script](session))

    def key(self, mode: str = "transfer", peer: str = CITIZEN, line: str = "", **values: str
            ) -> tuple[ChannelDouble, defer.Deferred[None]]:
        args = (mode, peer, line) if line else (mode, peer)
        session = ChannelDouble(SEAT, "u-seat", args, seat_values(**values))
        return session, self.run("onekey", session)

    def opened(self, code: str = "", **values: str) -> ChannelDouble:
        """The key pressed, the first Originate queued by Asterisk, the item code typed
        (AMI reports each digit), the code window closed: the key's AGI has answered."""
        session, done = self.key(**values)
        self.asterisk.reply(self.asterisk.expect("Originate"),
                            Message="Originate successfully queued")
        self.type(code)
        if len(code) < 3:
            self.clock.advance(self.service.config.code_timeout)
        assert done.called
        return session

    def type(self, digits: str, uniqueid: str = "u-seat") -> None:
        for digit in digits:
            self.emit("DTMFEnd", Channel=SEAT, Uniqueid=uniqueid, Digit=digit,
                      Direction="Received", DurationMs="100")

    @property
    def record(self) -> dict[str, str]:
        return self.store.records[f"bridge:{BID}"]

    def events(self) -> list[str]:
        return [e["event"] for e in self.store.events if e["record"] == f"bridge:{BID}"]

    def emit(self, name: str, **headers: str) -> None:
        self.asterisk.event(name, **headers)

    def key_done(self, code: str = "", returned: bool = True) -> None:
        """The key's Gosub says it is done; then (``returned``) its Return() has run and
        Asterisk takes the citizen off hold."""
        self.emit("UserEvent", UserEvent="LinkgwKeyDone", Bridge=BID, Code=code,
                  Channel=SEAT)
        if returned:
            self.emit("Unhold", Channel=SEAT, Uniqueid="u-seat")

    def join(self, role: str, uniqueid: str, channel: str) -> None:
        self.emit("ConfbridgeJoin", Conference=f"linkgw-{BID}", Uniqueid=uniqueid,
                  Channel=channel, Linkedid="l-" + uniqueid)

    def leave(self, uniqueid: str, channel: str) -> None:
        self.emit("ConfbridgeLeave", Conference=f"linkgw-{BID}", Uniqueid=uniqueid,
                  Channel=channel)

    def leg(self, attempt: int, channel: str = "PJSIP/12345-00000009") -> str:
        uid = f"{BID}-a{attempt}"
        self.emit("Newchannel", Uniqueid=uid, Channel=channel)
        return uid

    def fail(self, attempt: int, cause: str) -> None:
        uid = self.leg(attempt, f"PJSIP/x-{attempt}")
        self.emit("HangupRequest", Uniqueid=uid, Cause=cause)
        self.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")

    def answered(self) -> None:
        uid = self.leg(0)
        self.emit("OriginateResponse", Response="Success", Uniqueid=uid,
                  Channel="PJSIP/12345-00000009")


def answer(session: ChannelDouble) -> str:
    return session.set["LINKGW_ANSWER"]


def test_key_reads_once_dials_at_once_then_takes_the_code_and_answers() -> None:
    """One read round trip; the Originate goes out at once, exactly as Asterisk must
    read it; then the citizen's channel is marked, the code prompt plays, the digits
    Asterisk reports make the code, and the AGI answers with it."""
    rig = Rig()
    session, done = rig.key()
    assert session.reads == 1
    originate = rig.asterisk.expect("Originate")
    assert list(originate.headers[2:]) == [
        ("Channel", "PJSIP/12345"), ("Context", "linkgw-join-agent"), ("Exten", BID),
        ("Priority", "1"), ("Timeout", "15000"),
        # the hostile name shown without its quotes and CR LF; the number as dialled
        ("CallerID", '"110转 Zhang San EXEC Hangup" <13800138000>'),
        ("ChannelId", f"{BID}-a0"), ("Variable", f"LINKGW_BRIDGE={BID}"),
        ("Variable", "LINKGW_SIDE=12345"),
        ("Variable", "DYNAMIC_FEATURES=linkgw_onekey#linkgw_consult"),
        ("Variable", f"CHANNEL(hangup_handler_push)=linkgw-gone\\,s\\,1({BID}\\,agent_a0)"),
        ("Variable", "PJSIP_HEADER(add,User-to-User)=" + UUI_HEX +
         ";encoding=hex;purpose=linkgw;content=linkgw-context"),
        ("Variable", f"PJSIP_HEADER(add,X-Linkgw-Bridge)={BID}"),
        ("Variable", "PJSIP_HEADER(add,X-Linkgw-Seat)=seat1"),
        ("Variable", "PJSIP_HEADER(add,X-Linkgw-Direction)=110->12345"),
        ("Variable", "PJSIP_HEADER(add,X-Linkgw-Centre)=110"),
        ("Variable", "PJSIP_HEADER(add,X-Linkgw-Caller)=13800138000"),
        ("Async", "true")]
    assert not done.called and "LINKGW_ANSWER" not in session.set
    rig.asterisk.reply(originate, Message="Originate successfully queued")
    assert session.set == {f"SHARED(LINKGW_ACTIVE,{CITIZEN})": BID}
    assert session.played == ["linkgw/zh/code"]
    rig.type("10")
    assert not done.called
    rig.type("1")
    assert done.called and answer(session) == f"OK|{BID}||101|1"
    r = rig.record
    assert r["citizen_name"] == HOSTILE_NAME  # exact, on the record
    assert (r["citizen_number"], r["state"], r["direction"], r["asterisk"]) == \
        ("13800138000", "requested", "110->12345", "lab-ast")
    assert r["plan"] == "PJSIP/12345,PJSIP/12345,PJSIP/liaison"
    assert rig.events() == ["transfer_requested", "agent_dialing"]
    assert rig.store.indexes["live"] == {BID: T0}


def test_the_key_done_moves_both_with_one_dual_redirect_and_records_the_code() -> None:
    rig = Rig()
    rig.opened("101")
    rig.key_done("101")
    redirect = rig.asterisk.expect("Redirect")
    assert list(redirect.headers[2:]) == [
        ("Channel", CITIZEN), ("ExtraChannel", SEAT),
        ("Context", "linkgw-join-citizen"), ("Exten", BID), ("Priority", "1"),
        ("ExtraContext", "linkgw-join-seat"), ("ExtraExten", BID), ("ExtraPriority", "1")]
    r = rig.record
    assert (r["code"], r["code_given"], r["item"], r["category"]) == \
        ("101", "yes", "vehicle.driveway", "vehicle")
    rig.asterisk.reply(redirect, Message="Dual Redirect successful")
    rig.join("citizen", "u-cit", CITIZEN)
    assert rig.record["state"] == "dialing"


def test_the_move_waits_until_the_keys_feature_has_returned() -> None:
    """Redirected while the key's Gosub still runs, the key-presser would be lost: the
    dual Redirect goes out on the key-presser's Unhold (Asterisk ends the feature's hold
    once the Gosub has returned), or after MOVE_FALLBACK when the site plays no music."""
    rig = Rig()
    rig.opened()
    rig.key_done(returned=False)
    assert rig.asterisk.pending("Redirect") == []
    rig.emit("Unhold", Channel=CITIZEN, Uniqueid="u-cit")  # not the key-presser's
    assert rig.asterisk.pending("Redirect") == []
    rig.emit("Unhold", Channel=SEAT, Uniqueid="u-seat")
    rig.asterisk.expect("Redirect")
    quiet = Rig()
    quiet.opened()
    quiet.key_done(returned=False)
    quiet.clock.advance(Commands.MOVE_FALLBACK)
    quiet.asterisk.expect("Redirect")


def test_no_code_is_recorded_as_none_given() -> None:
    rig = Rig()
    rig.opened()
    rig.key_done("")
    assert (rig.record["code"], rig.record["code_given"]) == ("", "no")
    rig.asterisk.expect("Redirect")


def test_no_code_with_require_code_refuse_cancels_the_leg_and_refuses() -> None:
    """transfer.require_code: refuse — a key with no item code is refused as a
    never-transfer item is: the ringing leg hung up, the refusal prompt, nobody moved."""
    rig = Rig(require_code="refuse")
    session = rig.opened("")
    assert answer(session) == f"CODE_REQUIRED|{BID}|linkgw/zh/refused||1"
    rig.leg(0)
    rig.key_done("")
    assert rig.asterisk.expect("Hangup").get("Channel") == "PJSIP/12345-00000009"
    assert rig.asterisk.pending("Redirect") == []
    r = rig.record
    assert (r["state"], r["outcome"], r["refusal"], r["code_given"]) == \
        ("ended", "refused", "code_required", "no")


def test_no_code_with_require_code_flag_goes_through_marked_unclassified() -> None:
    rig = Rig(require_code="flag")
    rig.opened("")
    rig.key_done("")
    rig.asterisk.expect("Redirect")
    assert (rig.record["code_given"], rig.record["unclassified"]) == ("no", "yes")
    typed = Rig(require_code="flag")
    typed.opened("101")
    typed.key_done("101")
    assert "unclassified" not in typed.record


def test_a_never_transfer_code_cancels_the_ringing_leg() -> None:
    """The code comes while 12345 rings: 104 (fire lane) stays with 110, so the AGI
    answers with the refusal and its prompt, the leg is hung up by its channel and the
    bridge ends refused; nobody is moved."""
    rig = Rig()
    session = rig.opened("104")
    assert answer(session) == f"NEVER_TRANSFER|{BID}|linkgw/zh/refused|104|1"
    rig.leg(0)
    rig.key_done("104")
    hangup = rig.asterisk.expect("Hangup")
    assert hangup.get("Channel") == "PJSIP/12345-00000009"
    assert rig.asterisk.pending("Redirect") == []
    r = rig.record
    assert (r["state"], r["outcome"], r["refusal"], r["item"]) == \
        ("ended", "refused", "never_transfer", "vehicle.fire_lane")
    # the citizen goes on with 110: followed (and live for a restarted gateway) until
    # they hang up, then the hang-up is on record and nothing is live
    assert rig.store.indexes["live"] == {BID: T0}
    rig.clock.advance(90)
    rig.emit("Hangup", Uniqueid="u-cit", Channel=CITIZEN, Cause="16")
    assert rig.record["citizen_hangup_at"] == iso(T0 + 90)
    assert rig.store.indexes["live"] == {}
    assert rig.events()[-2:] == ["citizen_hangup", "left:citizen"]


def test_a_cancel_before_asterisk_named_the_leg_waits_for_its_name() -> None:
    rig = Rig()
    rig.opened("104")
    rig.key_done("104")
    assert rig.asterisk.pending("Hangup") == []
    rig.leg(0, "PJSIP/12345-0000000a")
    assert rig.asterisk.expect("Hangup").get("Channel") == "PJSIP/12345-0000000a"


def test_the_keys_own_digits_reported_late_are_not_the_code() -> None:
    """AMI may report the key's last digit after the AGI started: it is skipped; the
    key pressed again ends the code empty; '#' ends it early."""
    rig = Rig()
    rig.type("*")  # AMI reported the key's '*' before the AGI started …
    session, done = rig.key()
    rig.asterisk.reply(rig.asterisk.expect("Originate"))
    rig.type("1")  # … and its '1' after
    assert not done.called
    rig.type("*1")  # the key again: the code ends, empty
    assert done.called and answer(session) == f"OK|{BID}|||1"
    hashed = Rig()
    hashed.type("*1")  # the key, reported before the AGI started
    session, done = hashed.key()
    hashed.asterisk.reply(hashed.asterisk.expect("Originate"))
    hashed.type("0#")
    assert done.called and answer(session) == f"UNKNOWN_CODE|{BID}|linkgw/zh/refused|0|1"


def test_a_code_ami_reported_before_the_agi_started_is_the_code() -> None:
    """With RFC 4733 Asterisk may start the key's feature late: key and code were both
    reported before the AGI ran. The digits after this press count; an earlier press
    of the key (a minute ago, refused) does not."""
    rig = Rig()
    rig.type("*1104")  # an earlier press, refused
    rig.clock.advance(60)
    rig.type("*1101")
    session, done = rig.key()
    rig.asterisk.reply(rig.asterisk.expect("Originate"))
    assert done.called and answer(session) == f"OK|{BID}||101|1"
    assert session.played == []  # typed with the key: nobody is asked for it


def test_no_code_typed_closes_after_the_timeout() -> None:
    rig = Rig(code_timeout=1.5)
    session, done = rig.key()
    rig.asterisk.reply(rig.asterisk.expect("Originate"))
    rig.clock.advance(1.4)
    assert not done.called
    rig.clock.advance(0.1)
    assert done.called and answer(session) == f"OK|{BID}|||1"


def test_ami_down_at_the_key_refuses_and_records_the_failure() -> None:
    rig = Rig()
    rig.asterisk.client.current = None
    session, done = rig.key()
    assert done.called and answer(session) == f"AMI_DOWN|{BID}|||0"
    assert rig.asterisk.pending() == []
    r = rig.record
    assert (r["state"], r["outcome"], r["refusal"]) == ("ended", "failed", "ami_down")


def test_originate_not_queued_in_time_is_ami_down_too() -> None:
    rig = Rig(originate_timeout=2.0)
    session, done = rig.key()
    rig.asterisk.expect("Originate")
    rig.clock.advance(2.0)
    assert done.called and answer(session) == f"AMI_DOWN|{BID}|||0"
    assert (rig.record["state"], rig.record["outcome"]) == ("ended", "failed")


def test_emergency_flag_on_the_citizen_refuses_without_dialling() -> None:
    """The flag is read from the citizen's channel (every gateway reads the same)."""
    rig = Rig()
    flag = "1795895400.125|seat1"
    session, done = rig.key(**{f"SHARED(LINKGW_EMERGENCY,{CITIZEN})": flag})
    assert done.called and answer(session) == f"EMERGENCY|{BID}|linkgw/zh/refused||0"
    assert rig.asterisk.pending() == []
    assert (rig.record["outcome"], rig.record["refusal"]) == ("refused", "emergency")
    call = rig.store.records["call:u-cit"]
    assert (call["emergency_at"], call["emergency_by"]) == \
        ("2026-11-28T19:50:00.125Z", "seat1")
    assert rig.store.feeds == {}  # refused at the key: 12345 never had it


def test_the_emergency_script_records_the_flag_once() -> None:
    rig = Rig()
    flag = "1795895400.125|seat1"
    for _ in range(2):
        session = ChannelDouble(SEAT, "u-seat", (CITIZEN,), seat_values(
            **{f"SHARED(LINKGW_EMERGENCY,{CITIZEN})": flag}))
        assert rig.run("emergency", session).called
        assert answer(session) == "OK||linkgw/zh/emergency||0"
    events = [e["event"] for e in rig.store.events if e["record"] == "call:u-cit"]
    assert events == ["emergency_flagged"]


def test_a_second_key_while_a_transfer_runs_opens_nothing() -> None:
    rig = Rig()
    session, done = rig.key(**{f"SHARED(LINKGW_ACTIVE,{CITIZEN})": "20261128195000aaaaaa"})
    assert done.called and answer(session) == "ALREADY|20261128195000aaaaaa|||0"
    assert rig.asterisk.pending() == [] and rig.store.events == []


def test_a_peer_that_is_not_a_channel_name_is_never_evaluated() -> None:
    rig = Rig()
    for peer in ("", "PJSIP/a,UNIQUEID)}${SHELL(id)}", "PJSIP/x y", "a,b"):
        session, done = rig.key(peer=peer)
        assert done.called and answer(session) == "NO_PEER||||0" and session.reads == 0


def test_busy_retries_then_alternate_then_back_to_the_call_taker_with_a_tone() -> None:
    """Two busy answers at the target, one at the alternate: retries wait retry_delay,
    then citizen + seat are put into a plain call again (the seat hears the failure
    tone there) and a work order is flagged."""
    rig = Rig()
    rig.opened()
    rig.key_done()
    rig.asterisk.reply(rig.asterisk.expect("Redirect"))
    rig.join("citizen", "u-cit", CITIZEN)
    rig.fail(0, "17")
    rig.clock.advance(2.0)
    second = rig.asterisk.expect("Originate", ChannelId=f"{BID}-a1")
    rig.asterisk.reply(second)
    rig.fail(1, "17")
    rig.clock.advance(2.0)
    third = rig.asterisk.expect("Originate", ChannelId=f"{BID}-a2")
    assert third.get("Channel") == "PJSIP/liaison"
    rig.asterisk.reply(third)
    rig.fail(2, "34")
    r = rig.record
    assert (r["state"], r["attempt_1_failure"], r["attempt_3_failure"]) == \
        ("returned_to_first_line", "busy", "unreachable")
    assert r["work_order_push_needed"] == "yes" and r["direct_with"] == "seat"
    setvar = rig.asterisk.expect("Setvar")
    assert list(setvar.headers[2:]) == [("Channel", CITIZEN), ("Variable", "LINKGW_DIRECT"),
                                        ("Value", f"{SEAT}|110|failed")]
    rig.asterisk.reply(setvar)
    direct = rig.asterisk.expect("Redirect", Context="linkgw-direct")
    assert (direct.get("ExtraChannel"), direct.get("ExtraContext")) == \
        (SEAT, "linkgw-direct-failed")
    code_window = rig.service.config.code_timeout
    assert rig.store.indexes["workorders:push_needed"] == {BID: T0 + code_window + 4.0}


def test_failure_cause_that_arrives_after_the_response_is_waited_for() -> None:
    """Asterisk may send OriginateResponse before the leg's HangupRequest: the reason
    still comes from the cause, not from Reason: 0; without one, after 1 s, from the
    ring time."""
    rig = Rig(attempts=1, alternate="")
    rig.opened()
    uid = rig.leg(0)
    rig.emit("OriginateResponse", Response="Failure", Uniqueid=uid, Reason="0")
    assert rig.record["state"] == "requested"
    rig.emit("Hangup", Uniqueid=uid, Cause="17")
    assert rig.record["agent_failure"] == "busy"


def test_citizen_hanging_up_while_12345_rings_cancels_and_records_a_callback() -> None:
    rig = Rig()
    rig.opened()
    rig.key_done()
    rig.join("citizen", "u-cit", CITIZEN)
    rig.leg(0)
    rig.leave("u-cit", CITIZEN)
    assert rig.asterisk.expect("Hangup").get("Channel") == "PJSIP/12345-00000009"
    r = rig.record
    assert (r["state"], r["outcome"], r["callback_needed"]) == ("ended", "abandoned", "yes")
    assert rig.store.records[f"callback:{BID}"]["number"] == "13800138000"
    assert rig.store.indexes["callbacks:open"] == {BID: T0 + rig.service.config.code_timeout}
    callbacks = [e for e in rig.store.feeds["12345"] if e["record"] == f"callback:{BID}"]
    assert [json.loads(e["fields"])["number"] for e in callbacks] == ["13800138000"]


def test_citizen_hanging_up_at_the_key_is_abandoned_without_a_move() -> None:
    rig = Rig()
    rig.opened()
    rig.emit("Hangup", Uniqueid="u-cit", Channel=CITIZEN, Cause="16")
    r = rig.record
    assert (r["state"], r["outcome"]) == ("ended", "abandoned")
    assert "citizen_hangup_at" in r
    rig.key_done()
    assert rig.asterisk.pending("Redirect") == []


def test_the_notice_comes_before_the_join_on_record_whatever_order_ami_reports() -> None:
    """The dialplan plays the notice, then the citizen joins; AMI reported the join
    first once (in CI): the notice is on record first all the same, and once."""
    rig = Rig()
    rig.opened()
    rig.key_done()
    rig.asterisk.reply(rig.asterisk.expect("Redirect"))
    rig.join("seat", "u-seat", SEAT)
    rig.join("citizen", "u-cit", CITIZEN)
    rig.emit("UserEvent", UserEvent="LinkgwNotice", Bridge=BID)
    kinds = rig.events()
    assert kinds.index("notice_played") == kinds.index("joined:citizen") - 1
    assert kinds.count("notice_played") == 1
    assert rig.record["notice_played_at"] <= rig.record["citizen_joined_at"]


def test_one_key_handoff_then_a_plain_call_with_the_other_line() -> None:
    """12345 answers while the code is typed; three parties; the call-taker leaves: the
    citizen and 12345 go on in a plain call (where 12345 has the key too)."""
    rig = Rig()
    rig.opened()
    rig.answered()
    rig.join("agent", f"{BID}-a0", "PJSIP/12345-00000009")
    assert rig.record["state"] == "answered"
    rig.key_done()
    rig.asterisk.reply(rig.asterisk.expect("Redirect"))
    rig.join("seat", "u-seat", SEAT)
    rig.emit("UserEvent", UserEvent="LinkgwNotice", Bridge=BID)
    rig.join("citizen", "u-cit", CITIZEN)
    assert rig.record["state"] == "three_party"
    rig.leave("u-seat", SEAT)
    assert rig.record["state"] == "handed_off"
    setvar = rig.asterisk.expect("Setvar")
    assert setvar.get("Value") == "PJSIP/12345-00000009|110|handoff"
    rig.asterisk.reply(setvar)
    rig.asterisk.expect("Redirect", Context="linkgw-direct",
                        ExtraChannel="PJSIP/12345-00000009",
                        ExtraContext="linkgw-direct-wait")
    rig.leave("u-cit", CITIZEN)
    r = rig.record
    assert (r["state"], r["outcome"]) == ("ended", "handed_off")
    times = [r["requested_at"], r["agent_answered_at"], r["key_done_at"],
             r["notice_played_at"], r["conference_at"], r["seat_left_at"], r["ended_at"]]
    assert times == sorted(times)
    assert r["seq"] == str(len(rig.events()))
    # the plain call goes on: live (for a restarted gateway to adopt) until the citizen
    # hangs up
    assert rig.store.indexes["live"] == {BID: T0}
    rig.emit("Hangup", Uniqueid="u-cit", Channel=CITIZEN, Cause="16")
    assert rig.store.indexes["live"] == {}
    assert rig.record["citizen_hangup_at"] >= r["ended_at"]
    # 12345's feed: every change of the bridge, once, without 110's internals
    feed = rig.store.feeds["12345"]
    assert [e["event"] for e in feed] == rig.events() and set(rig.store.feeds) == {"12345"}
    first = json.loads(feed[0]["fields"])
    assert (first["citizen_number"], first["citizen_name"], first["direction"]) == \
        ("13800138000", HOSTILE_NAME, "110->12345")
    shown = set().union(*(json.loads(e["fields"]) for e in feed))
    assert not shown & {"citizen_channel", "seat_channel", "seat_uniqueid", "agent_channel",
                        "owner", "asterisk", "conference", "plan"}


def test_consult_12345_declines_so_the_first_line_keeps_it() -> None:
    rig = Rig()
    _session, _done = rig.key(mode="consult")
    originate = rig.asterisk.expect("Originate")
    assert originate.get("Context") == "linkgw-consult-agent"
    rig.asterisk.reply(originate)
    rig.key_done()
    assert rig.asterisk.expect("Redirect").get("Context") == "linkgw-consult-citizen"
    rig.join("citizen", "u-cit", CITIZEN)
    rig.answered()
    rig.leave(f"{BID}-a0", "PJSIP/12345-00000009")
    r = rig.record
    assert (r["state"], r["decision"], r["direct_with"]) == \
        ("returned_to_first_line", "kept_by_first_line", "seat")
    assert rig.asterisk.expect("Setvar").get("Value") == f"{SEAT}|110|declined"


def consult_three_party(rig: Rig) -> None:
    """The consult key: 12345 dialled, the citizen moved in, 12345 answered."""
    rig.key(mode="consult")
    rig.asterisk.reply(rig.asterisk.expect("Originate"))
    rig.key_done()
    rig.asterisk.expect("Redirect")
    rig.join("citizen", "u-cit", CITIZEN)
    rig.answered()
    assert rig.record["state"] == "three_party"


def decline(rig: Rig, code: str, uniqueid: str = f"{BID}-a0") -> None:
    """The dialplan's [linkgw-decline] on the agent's channel (its UserEvent)."""
    rig.emit("UserEvent", UserEvent="LinkgwDeclineReason", Bridge=BID, Code=code,
             Uniqueid=uniqueid, Channel="PJSIP/12345-00000009")


def test_consult_12345_declines_with_a_keyed_reason_so_the_first_line_keeps_it_at_once(
        ) -> None:
    """The agent typed *92 with the three together: the first line keeps the matter
    (citizen and call-taker are moved into a plain call at once, not after the agent's
    prompt); its leg's end then closes the bridge; a second reason changes nothing."""
    rig = Rig()
    consult_three_party(rig)
    decline(rig, "2")
    r = rig.record
    assert (r["state"], r["decision"], r["decline_reason"], r["decline_reason_code"],
            r["decline_reason_via"], r["decline_reason_at"]) == \
        ("returned_to_first_line", "kept_by_first_line", "情况紧急，须现场处置", "2", "key",
         iso(T0))
    assert rig.asterisk.expect("Setvar").get("Value") == f"{SEAT}|110|declined"
    rig.clock.advance(0.5)
    decline(rig, "1")
    rig.leave(f"{BID}-a0", "PJSIP/12345-00000009")
    assert (rig.record["decline_reason_code"], rig.record["state"],
            rig.record["outcome"]) == ("2", "ended", "kept_by_first_line")
    events = rig.events()
    assert events.count("declined") == 1
    assert events.index("declined") < events.index("bridged_direct") < \
        events.index("left:agent")


def test_the_call_taker_leaving_first_makes_a_later_decline_change_nothing() -> None:
    """Consult: once the call-taker has left, the matter is the agent's (the dialplan
    refuses its decline key then too: fewer than three in the conference)."""
    rig = Rig()
    consult_three_party(rig)
    rig.join("seat", "u-seat", SEAT)
    rig.leave("u-seat", SEAT)
    assert rig.record["decision"] == "taken_by_other_line"
    decline(rig, "2")
    assert (rig.record["state"], rig.record["decision"]) == \
        ("handed_off", "taken_by_other_line")
    assert "decline_reason" not in rig.record and "declined" not in rig.events()


@pytest.mark.parametrize("code", ["", "12", "\uff12", "\u0662", "2\u2028", "\u0085", "*"])
def test_a_keyed_reason_that_is_not_one_digit_is_not_recorded(code: str) -> None:
    rig = Rig()
    consult_three_party(rig)
    decline(rig, code)
    assert rig.record["state"] == "three_party" and "decline_reason" not in rig.record


@pytest.mark.parametrize("uniqueid", [f"{BID}-a1", f"{BID}-ax", f"{BID}-a\u0660", "u-other"])
def test_a_decline_from_another_attempts_leg_is_not_recorded(uniqueid: str) -> None:
    rig = Rig()
    consult_three_party(rig)
    decline(rig, "2", uniqueid)
    assert rig.record["state"] == "three_party" and "decline_reason" not in rig.record


def test_a_keyed_reason_outside_a_consult_conference_is_not_recorded() -> None:
    """The one key's conference has no decline menu: a forged or stray UserEvent
    changes nothing; nor does one while the agent waits alone (consult, answered)."""
    rig = Rig()
    rig.opened()
    rig.key_done()
    rig.asterisk.expect("Redirect")
    rig.join("citizen", "u-cit", CITIZEN)
    rig.answered()
    decline(rig, "2")
    assert rig.record["state"] == "three_party" and "decline_reason" not in rig.record
    alone = Rig()
    alone.key(mode="consult")
    alone.asterisk.reply(alone.asterisk.expect("Originate"))
    alone.answered()
    decline(alone, "2")
    assert alone.record["state"] == "answered" and "decline_reason" not in alone.record


def test_a_code_the_list_no_longer_has_is_kept_as_a_code() -> None:
    """The dialplan's globals were written with an older list (a reload changed it)."""
    rig = Rig(decline_reasons=(("1", "属公安职责"),))
    consult_three_party(rig)
    decline(rig, "7")
    assert (rig.record["decline_reason"], rig.record["decline_reason_code"]) == \
        ("原因代码7（未列出）", "7")


def test_incoming_reads_once_writes_once_and_keeps_the_exact_caller_id() -> None:
    rig = Rig()
    session = ChannelDouble(CITIZEN, "u-cit", ("110",), {
        "UNIQUEID": "u-cit", "CHANNEL(linkedid)": "u-cit", "CHANNEL(endpoint)": "citizen",
        "CALLERID(num)": "13800138000\r\n\r\n200 result=1 (x)", "CALLERID(name)": "张三"})
    assert rig.run("incoming", session).called
    assert session.reads == 1 and session.set == {"LINKGW_ANSWER": "OK||||0"}
    call = rig.store.records["call:u-cit"]
    assert (call["number"], call["name"], call["dialed"]) == \
        ("13800138000\r\n\r\n200 result=1 (x)", "张三", "110")
    assert rig.store.feeds == {}  # a call never handed over is in nobody's feed


class ForgedReply(ChannelDouble):
    """A reply line that is not Asterisk's answer to this read (forged in an env value):
    it does not carry the read's token."""

    async def get_full_variable(self, expression: str) -> str | None:
        self.reads += 1
        return ",".join(base64.b64encode(b"=evil").decode() for _ in range(7))


def test_a_forged_reply_is_refused_and_the_call_is_registered_from_the_env() -> None:
    rig = Rig()
    session = ForgedReply(CITIZEN, "u-cit", ("110",), {})
    d = rig.run("incoming", session)
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert failures and "token" in str(failures[0].value)
    call = rig.store.records["call:u-cit"]
    assert (call["channel"], call["number"]) == (CITIZEN, "")
    assert "token" in call["callerid_unreadable"]


def test_a_reverse_press_the_citizen_abandons_owes_110_no_answer() -> None:
    """12345 hands a police matter to 110; the citizen hangs up while 110 rings: nothing
    was handed over, so no response is due (off the deadline list, not in the rate)."""
    rig = Rig(reverse_target="PJSIP/seat2")
    rig.opened(LINKGW_SIDE="12345")
    assert rig.record["direction"] == "12345->110" and "response_due_at" in rig.record
    assert BID in rig.store.indexes["deadline"]
    rig.leg(0)
    rig.emit("Hangup", Uniqueid="u-cit", Channel=CITIZEN, Cause="16")
    assert (rig.record["state"], rig.record["outcome"]) == ("ended", "abandoned")
    assert rig.store.indexes["deadline"] == {}
    assert set(rig.store.feeds) == {"110"}  # handed towards 110: the police side's feed


def test_the_metrics_count_each_end_by_direction_and_outcome_and_the_answer_time() -> None:
    """What Prometheus reads: HELP and TYPE, a counter by direction and outcome, the key
    → answer histogram with the 15 s and 20 s service levels as bucket edges."""
    registry = CollectorRegistry()
    rig = Rig(meter=TransferMeter(registry))
    rig.opened()
    rig.clock.advance(4.0)  # 12345 answers 4 s + the code window after the key
    rig.answered()
    rig.join("agent", f"{BID}-a0", "PJSIP/12345-00000009")
    rig.key_done()
    rig.asterisk.reply(rig.asterisk.expect("Redirect"))
    rig.join("seat", "u-seat", SEAT)
    rig.join("citizen", "u-cit", CITIZEN)
    rig.leave("u-seat", SEAT)
    rig.leave("u-cit", CITIZEN)
    assert rig.record["outcome"] == "handed_off"
    text = exposition(registry).splitlines()
    assert "# TYPE linkgw_bridges_ended_total counter" in text
    assert 'linkgw_bridges_ended_total{direction="110->12345",outcome="handed_off",' \
           'recovered="no"} 1.0' in text
    assert "# TYPE linkgw_key_to_answer_seconds histogram" in text
    waited = 4.0 + rig.service.config.code_timeout
    assert f'linkgw_key_to_answer_seconds_sum{{direction="110->12345"}} {waited}' in text
    assert 'linkgw_key_to_answer_seconds_bucket{direction="110->12345",le="5.0"} 0.0' in text
    assert 'linkgw_key_to_answer_seconds_bucket{direction="110->12345",le="15.0"} 1.0' in text


def test_a_handoff_owes_12345s_feedback_from_the_end_of_the_call_ticket_or_not() -> None:
    """Item 301 (no water): category utilities, 24 h feedback in categories.yaml."""
    rig = Rig()
    rig.opened(code="301")
    rig.answered()
    rig.join("agent", f"{BID}-a0", "PJSIP/12345-00000009")
    rig.key_done("301")
    rig.asterisk.reply(rig.asterisk.expect("Redirect"))
    rig.join("seat", "u-seat", SEAT)
    rig.join("citizen", "u-cit", CITIZEN)
    rig.leave("u-seat", SEAT)
    rig.clock.advance(60)
    rig.leave("u-cit", CITIZEN)
    record = rig.record
    assert (record["category"], record["outcome"]) == ("utilities", "handed_off")
    ended = rig.clock.seconds()
    assert record["ended_at"] == iso(ended)
    assert record["feedback_due_at"] == iso(ended + 24 * 3600)
    assert rig.store.indexes["deadline"] == {BID: ended + 24 * 3600}


TRAFFIC = Line(name="122", label="交警", key="*3", target="PJSIP/122@trunk-122",
               display_prefix="110转交警")


def test_a_further_lines_key_dials_that_line_its_way_and_feeds_its_feed() -> None:
    """The 122 key (transfer.lines): 122's dial string, its display prefix, no key armed
    on its agent (the keys hand between 110 and 12345), a 110->122 record whose changes
    go to 122's feed and never to 12345's."""
    rig = Rig(lines=(TRAFFIC,))
    session, done = rig.key(line="122")
    originate = rig.asterisk.expect("Originate")
    headers = dict(originate.headers[2:9])
    assert (headers["Channel"], headers["CallerID"]) == \
        ("PJSIP/122@trunk-122", '"110转交警 Zhang San EXEC Hangup" <13800138000>')
    variables = [v for k, v in originate.headers if k == "Variable"]
    assert "LINKGW_SIDE=122" in variables and "DYNAMIC_FEATURES=" in variables
    assert "PJSIP_HEADER(add,X-Linkgw-Direction)=110->122" in variables
    rig.asterisk.reply(originate, Message="Originate successfully queued")
    rig.type("101")
    assert done.called and answer(session) == f"OK|{BID}||101|1"
    assert (rig.record["direction"], rig.record["plan"]) == \
        ("110->122", "PJSIP/122@trunk-122,PJSIP/122@trunk-122")
    assert [e["event"] for e in rig.store.feeds["122"]] == \
        ["transfer_requested", "agent_dialing"]
    assert "12345" not in rig.store.feeds


@pytest.mark.parametrize("line", ["119\r\nX", "交警", "122\u2028", "122\x85", "\udcff122",
                                  "１２２", "122" * 200])
def test_a_key_naming_a_line_the_config_has_not_is_refused_on_record(line: str) -> None:
    """A dialplan rendered from an older config may keep a line's key after the line
    is gone (or the AGI argument is anything at all): the key is refused with the
    refusal prompt, nothing is dialled, and the record says why, the name cut short and
    escaped, never taken as a direction."""
    rig = Rig(lines=(TRAFFIC,))
    session, done = rig.key(line=line)
    assert done.called and answer(session) == f"UNKNOWN_LINE|{BID}|linkgw/zh/refused||0"
    assert not rig.asterisk.pending("Originate")
    assert (rig.record["outcome"], rig.record["direction"]) == ("refused", "110->12345")
    assert rig.record["refusal_detail"] == f"no line {line[:16]!r} to hand over to from 110"
