"""``python -m gateway.lab demo|provision``: the lab from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from gateway.ami.codec import AmiMessage
from gateway.lab.process import exit_on_sigterm

if TYPE_CHECKING:
    from gateway.lab.calls import Observed
    from gateway.lab.lab import Lab


def _members(title: str, members: list[AmiMessage]) -> None:
    print(f"\n{title}: {len(members)} in the conference (ConfbridgeList from Asterisk)")
    for m in members:
        print(f"  - {m.get('Channel'):<32} caller {m.get('CallerIDNum'):<14} "
              f"marked={m.get('MarkedUser')}")


def _timeline(record: dict[str, str]) -> list[str]:
    """The record's times, as seconds after the key."""
    from gateway.schema import epoch

    start = epoch(record["requested_at"])
    marks = [("key pressed", "requested_at"), ("12345 answered", "agent_answered_at"),
             ("key's feature returned (code read)", "key_done_at"),
             ("notice heard by the citizen", "notice_played_at"),
             ("three parties", "conference_at"), ("call-taker left", "seat_left_at"),
             ("bridge ended", "ended_at"), ("citizen hung up", "citizen_hangup_at")]
    out = ["\ntimeline (seconds after the key)"]
    times = sorted((epoch(record[k]) - start, what) for what, k in marks if k in record)
    out += [f"  {t:6.3f}  {what}" for t, what in times]
    return out


def _feed_of_12345(lab: Lab, bridge_id: str) -> list[dict[str, str]]:
    """The bridge's entries in 12345's feed, read as the 12345 system's Redis user."""
    from gateway.schema import Keys

    entries = lab.redis_as("linkgw-12345").xrange(Keys(lab.config.redis.prefix).feed("12345"))
    return [e | {"_id": i} for i, e in cast(list[tuple[str, dict[str, str]]], entries)
            if e.get("record") == f"bridge:{bridge_id}"]


def _agent_invite(seen: Observed, record: dict[str, str]) -> None:
    """What the 12345 agent's phone received on its INVITE, beside the record."""
    from gateway.transfer.invite import parse_uui

    invite = seen.agent_invite
    print("\nwhat the 12345 agent's phone received (its INVITE, from SIPp's trace)")
    print(f"  {'From':<20} {invite.get('from', '(none)')}")
    print(f"  {'User-to-User':<20} {invite.get('user-to-user', '(none)')}")
    uui = parse_uui(invite.get("user-to-user", ""))
    rows = [("bridge", "bridge_id"), ("seat", "seat"), ("direction", "direction"),
            ("caller", "citizen_number")]
    print(f"  {'  decoded':<20} " + " ".join(f"{k}={v}" for k, v in uui.items()))
    for key, field_name in rows:
        same = "same as the record" if uui.get(key) == record.get(field_name) else \
            f"RECORD SAYS {record.get(field_name)!r}"
        print(f"  {'  ' + key:<20} {uui.get(key, '(none)'):<24} {same}")
    for name in ("x-linkgw-bridge", "x-linkgw-centre", "call-info"):
        print(f"  {name:<20} {invite.get(name, '(none)')}")


def _queue_wait(record: dict[str, str]) -> None:
    from gateway.schema import epoch

    if "agent_answered_at" in record and "dialing_at" in record:
        wait = epoch(record["agent_answered_at"]) - epoch(record["dialing_at"])
        print(f"\nin 12345's queue: {wait:.2f} s from the trunk INVITE to the agent's "
              "answer (standard: 90 % within 15 s, 95 % within 20 s)")


def _push_report(lab: Lab, bridge_id: str, feed: list[dict[str, str]]) -> bool:
    """Wait (up to a minute) until the push has delivered this call's feed entries;
    print what was delivered and what is left. True when nothing is left."""
    import time

    from gateway.lab.process import LabError, wait_until
    from gateway.push.outbox import GROUP
    from gateway.schema import Keys

    client = lab.redis_client()
    stream = Keys(lab.config.redis.prefix).feed("12345")
    ids = [e["_id"] for e in feed]
    started = time.monotonic()

    def left() -> list[str]:
        info = next((g for g in client.xinfo_groups(stream) if g["name"] == GROUP), None)
        if info is None:
            return ids
        pending = {p["message_id"] for p in client.xpending_range(stream, GROUP, "-", "+",
                                                                   1000)}
        last = tuple(int(x) for x in info["last-delivered-id"].split("-"))
        return [i for i in ids if i in pending or tuple(int(x) for x in i.split("-")) > last]

    try:
        wait_until(lambda: not left(), 60, "the push to deliver this call's events")
    except LabError:
        pass
    rest = left()
    url = lab.receiver.url if lab.receiver is not None else lab.push_url
    print(f"\npushed to 12345's receiver {url} (signed, HTTPS with the lab's CA when it is "
          f"the lab's): {len(ids) - len(rest)} of {len(ids)} events of this call delivered "
          f"in {time.monotonic() - started:.1f} s; left in the outbox: {len(rest)}")
    if lab.receiver is not None:
        for e in lab.receiver.events():
            if e.get("bridge_id") == bridge_id:
                print(f"  {e['event']:<24} id={e['id']}")
    return not rest


def demo(keep: bool, topology: str = "one-pbx", push_url: str = "") -> int:
    from gateway.lab.calls import one_key_call
    from gateway.lab.lab import Lab
    from gateway.lab.process import LabError

    workdir = Path(tempfile.mkdtemp(prefix="linkgw-demo-"))
    print(f"linkgw demo ({topology}): lab in {workdir} (logs in {workdir / 'logs'})")
    try:
        with Lab(workdir, name="demo", topology=topology, push_url=push_url) as lab:
            print(f"lab up: Asterisk SIP 127.0.0.1:{lab.sip_port}, AMI :{lab.ami_port}, "
                  f"FastAGI :{lab.fastagi_port}, Redis :{lab.redis_port}")
            if lab.two_pbx:
                print(f"12345's own PBX: SIP 127.0.0.2:{lab.peer_sip_port}, queue "
                      f"'hotline' of agent1..3; 110 dials {lab.transfer.target}")
            print("citizen 13800138000 dials 110; seat1 answers and presses "
                  f"{lab.transfer.onekey}; 12345 answers; seat1 hangs up; "
                  "later the citizen hangs up")
            seen = one_key_call(lab)
            feed = _feed_of_12345(lab, seen.bridge_id)
            pushed = _push_report(lab, seen.bridge_id, feed) if lab.pushing else True
    except LabError as exc:
        print(f"linkgw demo failed: {exc}", file=sys.stderr)
        return 1
    _members("three-party call", seen.three_party)
    print(f"\nafter the call-taker left: {len(seen.plain_call)} in one plain call "
          f"(CoreShowChannels + BridgeList from Asterisk: {seen.plain_technology})")
    for m in seen.plain_call:
        print(f"  - {m.get('Channel'):<32} caller {m.get('CallerIDNum'):<14}")
    print(f"\nbridge record linkgw:bridge:{seen.bridge_id} (Redis hash)")
    for key in sorted(seen.record):
        print(f"  {key:<22} {seen.record[key]}")
    print("\nevents on linkgw:events (Redis stream)")
    for e in seen.events:
        print(f"  {e['id']:<17} seq={e['seq']:<2} {e['event']:<24} "
              f"{json.loads(e['data']).get('state', '')}")
    print("\nwhat 12345 reads: linkgw:feed:12345, as Redis user linkgw-12345 "
          "(no channels, no 110 internals)")
    for e in feed:
        print(f"  {e['event']:<24} {e['fields']}"[:150])
    for line in _timeline(seen.record):
        print(line)
    if topology == "two-pbx":
        _agent_invite(seen, seen.record)
        _queue_wait(seen.record)
    print(f"\nSIPp exit codes: {seen.exits}")
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    ok = seen.record.get("outcome") == "handed_off" and not any(seen.exits.values()) \
        and pushed
    print("\ndemo " + ("passed: handed off to 12345" if ok else "FAILED"))
    return 0 if ok else 1


def demo_workorder(keep: bool) -> int:
    """A work order from 12345 rings 110's duty phone; the officer presses 1."""
    from gateway.lab.duty_call import duty_call
    from gateway.lab.lab import Lab
    from gateway.lab.process import LabError

    workdir = Path(tempfile.mkdtemp(prefix="linkgw-demo-"))
    print(f"linkgw demo --workorder: lab in {workdir} (logs in {workdir / 'logs'})")
    try:
        with Lab(workdir, name="demo") as lab:
            print(f"lab up: Asterisk SIP 127.0.0.1:{lab.sip_port}, AMI :{lab.ami_port}, "
                  f"API :{lab.http_port}, Redis :{lab.redis_port}")
            print("12345 dispatches a work order (POST /workorders, its own token); the "
                  f"gateway rings the duty phone {', '.join(lab.config.duty.numbers)}; "
                  "duty1 answers, hears it and presses 1")
            seen = duty_call(lab)
    except LabError as exc:
        print(f"linkgw demo failed: {exc}", file=sys.stderr)
        return 1
    print("\nwhat Asterisk ran on the duty phone's channel (Newexten from AMI)")
    for m in seen.heard:
        print(f"  {m.get('Application'):<9} {m.get('AppData')}"[:160])
    print(f"\nwork order linkgw:workorder:{seen.ticket} (Redis hash)")
    for key in sorted(seen.record):
        print(f"  {key:<26} {seen.record[key]}")
    print("\nits events on linkgw:events (Redis stream)")
    for e in seen.events:
        print(f"  {e['id']:<17} {e['event']:<24} {e['data']}")
    print(f"\nSIPp exit code (duty1): {seen.exit}")
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    ok = seen.record.get("accepted_via") == "duty" and seen.exit == 0
    print("\ndemo " + ("passed: accepted on the duty phone" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.lab")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="play one real one-key call through the lab")
    d.add_argument("--keep", action="store_true", help="keep the lab's folder and logs")
    d.add_argument("--topology", choices=("one-pbx", "two-pbx"), default="one-pbx",
                   help="two-pbx: 12345 is its own Asterisk behind a SIP trunk, with a "
                        "queue of agents")
    d.add_argument("--push-url", default="",
                   help="push this call's events to your own receiver (secret from "
                        "LINKGW_PUSH_SECRET; plain http only on loopback)")
    d.add_argument("--workorder", action="store_true",
                   help="a work order from 12345 rings 110's duty phone instead of a call")
    sub.add_parser("provision", help="build (or find) the cached Asterisk root")
    args = parser.parse_args(argv)
    if args.command == "provision":
        from gateway.lab.provision import main as provision

        return provision()
    if args.push_url and not os.environ.get("LINKGW_PUSH_SECRET"):
        print("linkgw demo: --push-url needs LINKGW_PUSH_SECRET (the key your receiver "
              "checks signatures with)", file=sys.stderr)
        return 2
    if args.workorder:
        return demo_workorder(args.keep)
    return demo(args.keep, args.topology, args.push_url)


if __name__ == "__main__":
    exit_on_sigterm()
    sys.exit(main())
