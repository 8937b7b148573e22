"""Recovery without Asterisk: the journal read back, a bridge rebuilt from its record,
and an adoption over the AMI wire (the journal, the conference, the channels)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.config import TransferConfig
from gateway.lab.fakes import WireAsterisk, null_log
from gateway.outcome import current
from gateway.transfer.correlate import DeclineKeyed, KeyDoneFact, NoticeFact, PartyGone
from gateway.transfer.events import AgentFailed, DirectBridged, Joined, Left
from gateway.transfer.journal import bridge_of, journal_facts, phase_of
from gateway.transfer.legs import Leg
from gateway.transfer.phase import Mode, Role, State
from gateway.transfer.recovery import Recovery
from gateway.transfer.services import TransferService

BID = "20261128195037abcdef"
T = 1_795_895_437.0
RECORD = {
    "bridge_id": BID, "state": "three_party", "mode": "transfer", "direction": "110->12345",
    "plan": "PJSIP/12345,PJSIP/12345,PJSIP/liaison", "attempt": "1",
    "key_done_at": "x", "citizen_joined_at": "x", "seat_joined_at": "x",
    "agent_joined_at": "x", "citizen_channel": "PJSIP/citizen-1", "citizen_uniqueid": "u-c",
    "seat_channel": "PJSIP/seat1-2", "seat_uniqueid": "u-s", "seat": "seat1",
    "citizen_number": "13800138000", "agent_channel": "PJSIP/12345-3",
    "agent_answered_at": "x", "owner": "gw-a/1", "asterisk": "ast",
}


def test_journal_entries_become_facts_in_time_order() -> None:
    journal = {
        "seat_left": f"{T + 3}|", "key_done": f"{T}|101", "citizen_joined": f"{T + 1}|",
        "agent_a0_gone": f"{T + 0.5}|17", "citizen_direct": f"{T + 4}|",
        "notice_played": f"{T + 0.9}|", "citizen_gone": f"{T + 9}|16",
        "agent_a1_declined": f"{T + 2}|2", "agent_ax_declined": f"{T + 2}|3",
    }
    facts = journal_facts(journal, ring_timeout=15.0)
    assert [(f.at, f.fact) for f in facts] == [
        (T, KeyDoneFact("101")),
        (T + 0.5, AgentFailed(T + 0.5, "busy")),
        (T + 0.9, NoticeFact()),
        (T + 1, Joined(T + 1, Role.CITIZEN)),
        (T + 2, DeclineKeyed("2", 1)),
        (T + 3, Left(T + 3, Role.SEAT)),
        (T + 4, DirectBridged(T + 4, Role.CITIZEN)),
        (T + 9, PartyGone(Role.CITIZEN)),
    ]
    assert facts[1].attempt == 0 and facts[1].cause == "17"


def test_a_damaged_or_hostile_journal_is_skipped_entry_by_entry() -> None:
    journal = {"key_done": "not a time|1", "x\r\ny": f"{T}|", "agent_ax_gone": f"{T}|1",
               "visitor_joined": f"{T}|", "seat_joined": f"{T}\u2028|",
               "citizen_left": f"{T + 1}|张三\r\n"}
    assert [f.fact for f in journal_facts(journal, 15.0)] == [Left(T + 1, Role.CITIZEN)]


def test_a_record_gives_back_the_phase_the_table_decides_on() -> None:
    phase = phase_of(RECORD, retry_delay=2.0)
    assert (phase.state, phase.mode, phase.attempt, phase.key_done) == \
        (State.THREE_PARTY, Mode.TRANSFER, 0, True)
    assert phase.joined == {Role.CITIZEN, Role.SEAT, Role.AGENT} and phase.gone == set()
    bridge = bridge_of(RECORD, 2.0)
    assert (bridge.citizen.channel, bridge.seat.endpoint, bridge.side) == \
        ("PJSIP/citizen-1", "seat1", "110")


def _adopt(journal: dict[str, str], members: list[dict[str, str]],
           channels: list[dict[str, str]], record: dict[str, str] | None = None
           ) -> tuple[TransferService, MemoryStore, WireAsterisk]:
    clock = Clock()
    clock.advance(T + 20)
    asterisk = WireAsterisk(clock)
    store = MemoryStore()
    service = TransferService(asterisk.client, BridgeLog(store, clock=clock, log=null_log()),
                              TransferConfig(), clock=clock, log=null_log())
    d = defer.ensureDeferred(Recovery(service, null_log()).adopt(dict(record or RECORD),
                                                                 "owner gone"))
    asterisk.reply_list(asterisk.expect("DBGetTree", Key=BID), [
        {"Key": f"/linkgw/{BID}/{k}", "Val": v} for k, v in journal.items()],
        "DBGetTreeResponse", "DBGetTreeComplete")
    asterisk.reply_list(asterisk.expect("ConfbridgeList"), members, "ConfbridgeList",
                        "ConfbridgeListComplete")
    asterisk.reply_list(asterisk.expect("CoreShowChannels"), channels, "CoreShowChannel",
                        "CoreShowChannelsComplete")
    assert d.called
    return service, store, asterisk


def test_a_bridge_that_ended_while_nobody_watched_ends_as_the_journal_says() -> None:
    """Three parties when its owner died; the journal says the call-taker left at T+3,
    then citizen and 12345 went on in a plain call, and hung up. Nothing is live now."""
    journal = {"seat_left": f"{T + 3}|", "seat_gone": f"{T + 3.1}|16",
               "citizen_direct": f"{T + 3.2}|", "citizen_gone": f"{T + 9}|16"}
    _service, store, asterisk = _adopt(journal, [], [])
    record = store.records[f"bridge:{BID}"]
    assert (record["state"], record["outcome"], record["recovered"]) == \
        ("ended", "handed_off", "yes")
    assert record["seat_left_at"] == "2026-11-28T19:50:40.000Z"
    assert asterisk.pending() == []  # nothing to do in Asterisk: it is all over
    data = [e["data"] for e in store.events if e["event"] == "left:seat"]
    assert data and '"recovered_from": "journal"' in data[0]


def test_a_bridge_with_no_trace_at_all_is_closed_as_unknown() -> None:
    _service, store, _ = _adopt({}, [], [])
    record = store.records[f"bridge:{BID}"]
    assert (record["state"], record["outcome"]) == ("ended", "unknown")
    assert "no trace" in record["outcome_reason"]


def test_a_live_bridge_is_followed_on_from_what_asterisk_shows() -> None:
    """The call-taker left while nobody watched; citizen and 12345 are in the
    conference now: handed off, and the plain call is asked for."""
    members = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
               {"Channel": "PJSIP/12345-3", "Uniqueid": f"{BID}-a0"}]
    channels = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
                {"Channel": "PJSIP/12345-3", "Uniqueid": f"{BID}-a0", "Linkedid": "l"}]
    _service, store, asterisk = _adopt({"seat_left": f"{T + 3}|"}, members, channels)
    record = store.records[f"bridge:{BID}"]
    assert record["state"] == "handed_off"
    assert asterisk.expect("Setvar").get("Value") == "PJSIP/12345-3|110|handoff"


def test_a_bridge_of_an_asterisk_nobody_serves_is_closed_without_touching_ours() -> None:
    clock = Clock()
    clock.advance(T + 50_000)
    asterisk = WireAsterisk(clock)
    store = MemoryStore()
    service = TransferService(asterisk.client, BridgeLog(store, clock=clock, log=null_log()),
                              TransferConfig(), clock=clock, log=null_log())
    closed = Recovery(service, null_log()).close_unserved(
        RECORD | {"asterisk": "ast-retired"}, "its Asterisk had no gateway")
    assert closed is not None
    record = store.records[f"bridge:{BID}"]
    assert (record["state"], record["outcome"], record["outcome_reason"],
            record["recovered_from"]) == \
        ("ended", "unknown", "its Asterisk had no gateway", "nothing")
    assert asterisk.pending() == []  # no hang-up, no journal read: it is not our Asterisk


def test_a_leg_cancelled_before_its_name_was_known_is_hung_up_once_recovery_names_it(
        ) -> None:
    """A process-mode follower logs in while 12345 rings: the citizen's hangup arrives
    live while the recovery still reads the journal, so the cancel finds no channel to
    hang up. The channel list names the leg a moment later: it is hung up then, not left
    ringing to its timeout."""
    clock = Clock()
    clock.advance(T + 2)
    asterisk = WireAsterisk(clock)
    store = MemoryStore()
    service = TransferService(asterisk.client, BridgeLog(store, clock=clock, log=null_log()),
                              TransferConfig(), clock=clock, log=null_log())
    record = {k: v for k, v in RECORD.items() if not k.endswith("joined_at")
              and not k.startswith("agent_")} | {"state": "requested"}
    bridge = bridge_of(record, 2.0)
    service.adopt(bridge, Leg(f"{BID}-a0", 15.0, since=T))
    d = defer.ensureDeferred(Recovery(service, null_log()).reconcile(bridge))
    tree = asterisk.expect("DBGetTree", Key=BID)
    asterisk.event("Hangup", Channel="PJSIP/citizen-1", Uniqueid="u-c", Cause="16")
    assert asterisk.pending("Hangup") == []  # nothing to hang up by name yet
    asterisk.reply_list(tree, [], "DBGetTreeResponse", "DBGetTreeComplete")
    asterisk.reply_list(asterisk.expect("ConfbridgeList"), [], "ConfbridgeList",
                        "ConfbridgeListComplete")
    asterisk.reply_list(asterisk.expect("CoreShowChannels"), [
        {"Channel": "PJSIP/seat1-2", "Uniqueid": "u-s"},
        {"Channel": "PJSIP/12345-3", "Uniqueid": f"{BID}-a0", "Linkedid": "l"}],
        "CoreShowChannel", "CoreShowChannelsComplete")
    assert d.called
    assert asterisk.expect("Hangup").get("Channel") == "PJSIP/12345-3"
    assert (bridge.state, bridge.fields["outcome"]) == (State.ENDED, "abandoned")


ENDED_IN_A_PLAIN_CALL = RECORD | {
    "state": "ended", "outcome": "handed_off", "ended_at": "x", "seat_left_at": "x",
    "citizen_left_at": "x", "agent_left_at": "x", "direct_with": "agent"}
PLAIN_CALL = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
              {"Channel": "PJSIP/12345-3", "Uniqueid": f"{BID}-a0", "Linkedid": "l"}]


def test_an_ended_bridge_whose_citizen_still_talks_is_adopted_and_followed() -> None:
    """The conference ended into a plain call with 12345 and the gateway died before
    the citizen hung up: the restarted gateway adopts the bridge, does nothing in
    Asterisk, and records the citizen's hang-up when it comes; then nothing is live."""
    service, store, asterisk = _adopt({"citizen_direct": f"{T + 3.2}|"}, [], PLAIN_CALL,
                                      ENDED_IN_A_PLAIN_CALL)
    assert service.knows(BID) and store.records[f"bridge:{BID}"]["recovered"] == "yes"
    assert "citizen_hangup_at" not in store.records[f"bridge:{BID}"]
    assert asterisk.pending() == []
    [bridge] = service.followed()
    asterisk.event("Hangup", Channel="PJSIP/citizen-1", Uniqueid="u-c", Cause="16")
    assert store.records[f"bridge:{BID}"]["citizen_hangup_at"] == \
        "2026-11-28T19:50:57.000Z"  # T + 20: now
    assert bridge.state is State.ENDED  # nothing else moved
    assert store.indexes.get("live", {}) == {}


def test_an_ended_bridge_whose_citizen_hung_up_unseen_gets_the_journals_time() -> None:
    _service, store, _ = _adopt({"citizen_direct": f"{T + 3.2}|",
                                 "citizen_gone": f"{T + 9}|16"}, [], [], ENDED_IN_A_PLAIN_CALL)
    record = store.records[f"bridge:{BID}"]
    assert record["citizen_hangup_at"] == "2026-11-28T19:50:46.000Z"  # T + 9
    assert store.indexes.get("live", {}) == {}


def test_an_ended_bridge_whose_citizen_hung_up_is_never_adopted() -> None:
    clock = Clock()
    asterisk = WireAsterisk(clock)
    service = TransferService(asterisk.client, BridgeLog(MemoryStore(), clock=clock,
                                                         log=null_log()),
                              TransferConfig(), clock=clock, log=null_log())
    done = defer.ensureDeferred(Recovery(service, null_log()).adopt(
        ENDED_IN_A_PLAIN_CALL | {"citizen_hangup_at": "x"}, "owner gone"))
    assert done.called and done.result is None
    assert asterisk.pending() == [] and not service.knows(BID)


def test_a_move_done_by_a_gateway_that_died_is_not_done_again() -> None:
    """Killed right after its Redirect: the journal says the call-taker and the citizen
    arrived (the citizen still hears the notice, so is in no conference yet). The
    adopting gateway records the move from the journal and redirects nobody again."""
    record = {k: v for k, v in RECORD.items() if not k.endswith("joined_at")
              and not k.startswith("agent_")} | {"state": "requested"}
    journal = {"key_done": f"{T + 1}|", "seat_arrived": f"{T + 1.2}|",
               "citizen_arrived": f"{T + 1.21}|", "seat_joined": f"{T + 1.3}|"}
    members = [{"Channel": "PJSIP/seat1-2", "Uniqueid": "u-s"}]
    channels = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
                {"Channel": "PJSIP/seat1-2", "Uniqueid": "u-s"},
                {"Channel": "PJSIP/12345-3", "Uniqueid": f"{BID}-a0", "Linkedid": "l"}]
    _service, store, asterisk = _adopt(journal, members, channels, record)
    saved = store.records[f"bridge:{BID}"]
    assert saved["redirected_at"] == "2026-11-28T19:50:38.200Z"  # the first arrival
    assert [e["event"] for e in store.events].count("redirected") == 1
    assert asterisk.pending("Redirect") == []


def test_a_record_of_an_earlier_version_is_read_by_todays_names() -> None:
    """Records written before the names were line-neutral hold ``returned_to_110`` and
    ``kept_by_110``: recovery and the figures read them as ``returned_to_first_line``
    and ``kept_by_first_line``; a record with today's names is left as it is."""
    old = RECORD | {"state": "returned_to_110", "returned_to": "110"}
    bridge = bridge_of(old, 2.0)
    assert bridge.state is State.RETURNED and bridge.fields["state"] == \
        "returned_to_first_line"
    assert current({"outcome": "kept_by_110", "state": "ended"}) == \
        {"outcome": "kept_by_first_line", "state": "ended"}
    today = {"outcome": "kept_by_first_line", "state": "ended"}
    assert current(today) is today


def test_a_decline_keyed_while_nobody_watched_is_replayed_for_the_leg_that_rang() -> None:
    """Consult, three together on the second attempt when the owner died; the journal
    holds the first attempt's decline (a0, ignored) and this one's (a1); citizen and
    call-taker are still in the conference: the first line keeps the matter with a1's
    reason, and the plain call is asked for."""
    record = RECORD | {"mode": "consult", "attempt": "2"}
    journal = {"agent_a0_declined": f"{T + 2}|1", "agent_a1_declined": f"{T + 4}|2"}
    members = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
               {"Channel": "PJSIP/seat1-2", "Uniqueid": "u-s"}]
    channels = [{"Channel": "PJSIP/citizen-1", "Uniqueid": "u-c"},
                {"Channel": "PJSIP/seat1-2", "Uniqueid": "u-s"}]
    _service, store, asterisk = _adopt(journal, members, channels, record)
    got = store.records[f"bridge:{BID}"]
    assert (got["state"], got["decision"], got["decline_reason_code"],
            got["decline_reason"]) == \
        ("returned_to_first_line", "kept_by_first_line", "2", "情况紧急，须现场处置")
    assert asterisk.expect("Setvar").get("Value") == "PJSIP/seat1-2|110|declined"
