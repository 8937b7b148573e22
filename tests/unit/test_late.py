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

REPO = Path(__file__).resolve().parents[2]
T = 1_796_350_000.0
UID = "linkgw-lab-1796350000.17"
CITIZEN = "PJSIP/citizen-0000001a"
TRUNK = "PJSIP/trunk-12345-0000001b"


def b64(*values: str) -> str:
    return ":".join(base64.b64encode(f"={v}".encode()).decode() for v in values)


def party(name: str = "张三", uid: str = UID) -> list[str]:
    exact = b64("13800138000") + "|" + b64(name)
    return [uid, uid, "citizen", "13800138000", "", exact]


class Kept:
    def __init__(self, tree: dict[str, str]) -> None:
        self.tree = tree
        self.forgotten: list[str] = []

    async def late(self) -> dict[str, str]:
        return dict(self.tree)

    async def forget_late(self, key: str) -> None:
        self.forgotten.append(key)
        self.tree.pop(f"/linkgw-late/{key}", None)


class Rig:
    """LateCalls over a memory store (whose writes are applied at once) and a fake
    AstDB; ``unwritten`` stands for the bridge log's changes not yet in Redis."""

    def __init__(self, tree: dict[str, str]) -> None:
        self.store = MemoryStore()
        self.unwritten = 0
        log = BridgeLog(self.store, clock=lambda: T, log=null_log())  # type: ignore[arg-type]
        arrivals = Arrivals(log.record, lambda: T, 1800.0, r"^\d{8,20}$", lambda _: {}, "gw")
        from gateway.transfer.persist import Persistor

        self.kept = Kept(tree)
        self.late = LateCalls(self.kept, Persistor(log, 1800.0), arrivals,
                              lambda: self.unwritten, null_log())

    def run(self, now: float = T + 60) -> int:
        d = defer.ensureDeferred(self.late.register(now))
        results: list[int] = []
        d.addCallback(results.append)
        assert results, "register() waits on nothing but the fake"
        return results[0]


def test_the_dialplan_keeps_the_values_the_gateway_reads_in_the_same_order() -> None:
    """[linkgw-late-call] and [linkgw-late-handed] write PARTY (and HEADERS, 128
    characters of each) as the gateway's read asks for them: the lists cannot drift."""
    text = (REPO / "dialplan/linkgw_extensions.conf").read_text(encoding="utf-8")
    headers = [f"PJSIP_HEADER(read,{h}):0:128" for h in HEADERS]
    for context, names in (("linkgw-late-call", list(PARTY)),
                           ("linkgw-late-handed", [*PARTY, *headers])):
        line = re.search(rf"\[{context}\]\nexten => s,1,Set\(DB\(([^\n]*)\)\n", text)
        assert line is not None, context
        written = re.findall(r"\$\{BASE64_ENCODE\(=\$\{(.*?)\}\)\}", line.group(1))
        assert written == names, context


def test_a_call_no_gateway_answered_is_registered_with_its_own_time() -> None:
    """Registered on the first pass; deleted on a later one, once nothing is left to
    write (a gateway that died in between leaves it for the next one); written once."""
    name = "李\u2028四"
    rig = Rig({f"/linkgw-late/{UID}/incoming":
               f"{T + 0.25}|110|{CITIZEN}|{b64(*party(name))}"})
    assert rig.run() == 1
    call = rig.store.records[f"call:{UID}"]
    assert (call["number"], call["name"], call["dialed"], call["registered_late"],
            call["registered_at"]) == ("13800138000", name, "110", "yes", iso(T + 0.25))
    assert rig.kept.forgotten == []
    rig.unwritten = 3  # Redis has not taken it yet: kept
    assert rig.run() == 0 and rig.kept.forgotten == []
    rig.unwritten = 0
    rig.run()
    assert rig.kept.forgotten == [f"{UID}/incoming"]
    assert [e["event"] for e in rig.store.events] == ["call_registered"]


def test_a_handover_no_gateway_answered_is_registered_then_taken() -> None:
    bridge_id = arrival_id(UID, TRUNK)
    rig = Rig({f"/linkgw-late/{UID}/handed":
               f"{T}|110|{TRUNK}|{b64(*party(), '2026120400077', 'agent2', '101')}",
               f"/linkgw-late/{UID}/taken": f"{T + 4}|{bridge_id}|{TRUNK}|seat2"})
    rig.run()
    rig.run()
    bridge = rig.store.records[f"bridge:{bridge_id}"]
    assert (bridge["direction"], bridge["state"], bridge["agent"], bridge["requested_at"],
            bridge["agent_answered_at"], bridge["seat"]) == \
        ("12345->110", "ended", "seat2", iso(T), iso(T + 4), "12345:agent2")
    assert rig.store.records[f"ticket:{bridge_id}"]["ticket"] == "2026120400077"
    assert sorted(rig.kept.forgotten) == [f"{UID}/handed", f"{UID}/taken"]


def test_a_handover_nobody_took_ends_with_the_citizens_hang_up() -> None:
    rig = Rig({f"/linkgw-late/{UID}/handed": f"{T}|110|{TRUNK}|{b64(*party(), '', '', '')}",
               f"/linkgw-late/{UID}/ended": f"{T + 9}||{TRUNK}|CANCEL"})
    rig.run()
    bridge = rig.store.records[f"bridge:{arrival_id(UID, TRUNK)}"]
    assert (bridge["state"], bridge["outcome"], bridge["ended_at"]) == \
        ("ended", "abandoned", iso(T + 9))


def test_a_handover_still_ringing_is_kept_until_its_end_is_known() -> None:
    rig = Rig({f"/linkgw-late/{UID}/handed": f"{T}|110|{TRUNK}|{b64(*party(), '', '', '')}"})
    rig.run()
    rig.run()
    assert rig.store.records[f"bridge:{arrival_id(UID, TRUNK)}"]["state"] == "requested"
    assert rig.kept.forgotten == []
    rig.run(now=T + KEEP_RINGING + 1)
    assert rig.kept.forgotten == [f"{UID}/handed"]  # given up on after KEEP_RINGING


def test_hostile_or_torn_entries_are_skipped_one_by_one_and_deleted() -> None:
    """Each hostile entry names a call of its own: none may write a record; the one good
    entry is registered; every hostile key is deleted at once, the good one later."""
    def good(uid: str) -> str:
        return f"{T}|110|{CITIZEN}|{b64(*party(uid=uid))}"

    tree = {
        f"/linkgw-late/{UID}/incoming": good(UID),
        "/linkgw-late/u2/incoming": good("u2").replace(str(T), "1e9", 1),  # not a time
        "/linkgw-late/u3/incoming": good("u3").replace(CITIZEN, "PJSIP/x\r\nAction: Hangup"),
        "/linkgw-late/u4/incoming": f"{T}|110|{CITIZEN}|not base64!",
        "/linkgw-late/u5/incoming": f"{T}|110|{CITIZEN}",  # torn
        "/linkgw-late/u6/taken": f"{T}|20261128195037abcdef|{CITIZEN}|seat2",  # not its own
        "/linkgw-late/u7/visited": good("u7"),  # not a kind the dialplan writes
        "/linkgw-late/u8/incoming": good("u8").replace(str(T), f"{T}\u2028", 1),
        "/linkgw-late/u9/incoming": good("u9")[:len(good("u9")) // 2],  # torn mid-value
        "/linkgw-late/ua/incoming": good(UID),  # the values of another call
        "/linkgw-late/ub/incoming": good("ub").replace("|110|", "|110\n\nEvent: x|"),
        "/linkgw-late/uc/incoming": good("uc").replace(str(T), str(T - 40 * 86400), 1),
        "/linkgw-late/%/incoming": good("%"),  # not a uniqueid
        "/linkgw-late/x-1e300/taken": f"{T}||{CITIZEN}|seat2",
        "/linkgw-late//incoming": good(""),
        "/linkgw-late/x": good("x"),
    }
    hostile = sorted(k.removeprefix("/linkgw-late/") for k in tree
                     if not k.startswith(f"/linkgw-late/{UID}/"))
    rig = Rig(tree)
    assert rig.run() == 1
    assert list(rig.store.records) == [f"call:{UID}"]
    assert sorted(rig.kept.forgotten) == hostile
    rig.run()
    assert rig.kept.forgotten[-1] == f"{UID}/incoming"
