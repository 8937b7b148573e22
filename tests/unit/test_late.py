"""Calls no gateway answered: what the dialplan keeps in AstDB, read and registered late
(gateway/transfer/late.py), hostile or torn entries skipped one by one."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from twisted.internet import defer

from gateway.bridge.log import BridgeLog
from gateway.bridge.store import MemoryStore
from gateway.lab.fakes import null_log
from gateway.schema import iso
from gateway.transfer.arrival import HEADERS, Arrivals, arrival_id
from gateway.transfer.channel import PARTY
from gateway.transfer.late import KEEP_RINGING, LateCalls
from gateway.transfer.persist import Persistor

REPO = Path(__file__).resolve().parents[2]
T = 1_796_350_000.0
UID = "linkgw-lab-1796350000.17"
CITIZEN = "PJSIP/citizen-0000001a"
TRUNK = "PJSIP/trunk-12345-0000001b"


def b64(*values: str) -> str:
    return ":".join(base64.b64encode(f"={v}".encode()).decode() for v in values)


def party(name: str = "张三") -> list[str]:
    exact = b64("13800138000").replace(":", "") + "|" + b64(name)
    return [UID, UID, "citizen", "13800138000", "", exact]


class Kept:
    def __init__(self, tree: dict[str, str]) -> None:
        self.tree = tree
        self.forgotten: list[str] = []

    async def late(self) -> dict[str, str]:
        return dict(self.tree)

    async def forget_late(self, uniqueid: str) -> None:
        self.forgotten.append(uniqueid)


def run(tree: dict[str, str], now: float = T + 60) -> tuple[MemoryStore, Kept, int]:
    store = MemoryStore()
    log = BridgeLog(store, clock=lambda: now, log=null_log())  # type: ignore[arg-type]
    arrivals = Arrivals(log.record, lambda: now, 1800.0, r"^\d{8,20}$", lambda _: {}, "gw")
    kept = Kept(tree)
    d = defer.ensureDeferred(LateCalls(kept, Persistor(log, 1800.0), arrivals,
                                       null_log()).register(now))
    results: list[int] = []
    d.addCallback(results.append)
    assert results, "register() waits on nothing but the fake"
    return store, kept, results[0]


def test_the_dialplan_keeps_the_values_the_gateway_reads_in_the_same_order() -> None:
    """[linkgw-late-call] and [linkgw-late-handed] write PARTY (and HEADERS) as the
    gateway's read asks for them: the two lists cannot drift apart."""
    text = (REPO / "dialplan/linkgw_extensions.conf").read_text(encoding="utf-8")
    for context, names in (("linkgw-late-call", PARTY),
                           ("linkgw-late-handed", (*PARTY, *(f"PJSIP_HEADER(read,{h})"
                                                              for h in HEADERS)))):
        line = re.search(rf"\[{context}\]\nexten => s,1,Set\(DB\(([^\n]*)\)\n", text)
        assert line is not None, context
        written = re.findall(r"\$\{BASE64_ENCODE\(=\$\{([^}]*(?:\([^)]*\))?)\}\)\}",
                             line.group(1))
        assert written == list(names), context


def test_a_call_no_gateway_answered_is_registered_with_its_own_time() -> None:
    name = "李\u2028四"
    value = f"{T + 0.25}|110|{CITIZEN}|{b64(*party(name))}"
    store, kept, done = run({f"/linkgw-late/{UID}/incoming": value})
    call = store.records[f"call:{UID}"]
    assert (call["number"], call["name"], call["dialed"], call["registered_late"],
            call["registered_at"]) == ("13800138000", "李\u2028四", "110", "yes",
                                        iso(T + 0.25))
    assert (kept.forgotten, done) == ([UID], 1)


def test_a_handover_no_gateway_answered_is_registered_then_taken() -> None:
    tree = {f"/linkgw-late/{UID}/handed":
            f"{T}|110|{TRUNK}|{b64(*party(), '2026120400077', 'agent2', '101')}",
            f"/linkgw-late/{UID}/taken": f"{T + 4}||{TRUNK}|seat2"}
    store, kept, _ = run(tree)
    bridge = store.records[f"bridge:{arrival_id(UID, TRUNK)}"]
    assert (bridge["direction"], bridge["state"], bridge["agent"], bridge["requested_at"],
            bridge["agent_answered_at"], bridge["seat"]) == \
        ("12345->110", "ended", "seat2", iso(T), iso(T + 4), "12345:agent2")
    assert kept.forgotten == [UID]


def test_a_handover_still_ringing_is_kept_until_its_end_is_known() -> None:
    tree = {f"/linkgw-late/{UID}/handed": f"{T}|110|{TRUNK}|{b64(*party(), '', '', '')}"}
    store, kept, done = run(tree)
    assert store.records[f"bridge:{arrival_id(UID, TRUNK)}"]["state"] == "requested"
    assert (kept.forgotten, done) == ([], 0)
    _, kept, _ = run(tree, now=T + KEEP_RINGING + 1)
    assert kept.forgotten == [UID]  # given up on after KEEP_RINGING


def test_hostile_or_torn_entries_are_skipped_one_by_one_and_deleted() -> None:
    good = f"{T}|110|{CITIZEN}|{b64(*party())}"
    tree = {
        f"/linkgw-late/{UID}/incoming": good,
        "/linkgw-late/u2/incoming": f"1e9|110|{CITIZEN}|{b64(*party())}",  # not a time
        "/linkgw-late/u3/incoming": f"{T}|110|PJSIP/x\r\nAction: Hangup|{b64(*party())}",
        "/linkgw-late/u4/incoming": f"{T}|110|{CITIZEN}|not base64!",
        "/linkgw-late/u5/incoming": f"{T}|110|{CITIZEN}",  # torn
        "/linkgw-late/u6/taken": f"{T}|../../x|{CITIZEN}|seat2",  # not a bridge id
        "/linkgw-late/u7/visited": good,  # not a kind the dialplan writes
        "/linkgw-late/u8/incoming": f"{T}\u2028|110|{CITIZEN}|{b64(*party())}",
        "/linkgw-late/u9/incoming": good[:len(good) // 2],  # torn mid-value
    }
    store, kept, _ = run(tree)
    assert [k for k in store.records if k.startswith("call:")] == [f"call:{UID}"]
    assert sorted(kept.forgotten) == sorted([UID, *(f"u{n}" for n in range(2, 10))])
