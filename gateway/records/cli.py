"""``linkgw show|find|overdue|today|verify-chain``: the records for people, as text."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from gateway.records.chain import verify_day
from gateway.records.queries import FINDERS, Records

SUMMARY = ("bridge_id", "requested_at", "direction", "citizen_number", "seat", "state",
           "outcome", "category", "ticket", "ticket_status")


def add_commands(sub: Any) -> None:
    show = sub.add_parser("show", help="one bridge: record, ticket, events")
    show.add_argument("bridge_id")
    find = sub.add_parser("find", help="bridges by number, ticket, incident, seat or day")
    group = find.add_mutually_exclusive_group(required=True)
    for name in FINDERS:
        group.add_argument(f"--{name}")
    sub.add_parser("overdue", help="work orders past their feedback or response deadline")
    today = sub.add_parser("today", help="a day's figures (default: today, UTC)")
    today.add_argument("--day")
    chain = sub.add_parser("verify-chain", help="check a day's hash chain of events")
    chain.add_argument("--day")
    for p in (show, find, sub.choices["overdue"], today, chain):
        p.add_argument("--config", default="config/gateway.yaml")
        p.add_argument("--json", action="store_true", help="JSON instead of text")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def _table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(none)"
    lines = ["  ".join(f"{c:<20}" for c in SUMMARY)]
    lines += ["  ".join(f"{r.get(c, ''):<20}" for c in SUMMARY) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def run(args: argparse.Namespace, records: Records) -> tuple[int, str]:
    """(exit code, text) for one command."""
    now = time.time()
    if args.command == "show":
        got = records.bridge(args.bridge_id)
        if args.json:
            return 0, json.dumps(got, ensure_ascii=False, indent=2, sort_keys=True)
        out = [f"bridge {args.bridge_id}"]
        out += [f"  {k:<24} {v}" for k, v in sorted(got["bridge"].items())]
        out.append("ticket")
        out += [f"  {k:<24} {v}" for k, v in sorted(got["ticket"].items())] or ["  (none)"]
        out.append("events")
        out += [f"  {e['id']:<17} {e['record']:<30} {e['event']}" for e in got["events"]]
        return 0, "\n".join(out)
    if args.command == "find":
        by = next(name for name in FINDERS if getattr(args, name))
        rows = records.find(by, getattr(args, by))
        return 0, json.dumps(rows, ensure_ascii=False) if args.json else _table(rows)
    if args.command == "overdue":
        rows = records.overdue(now)
        return 0, json.dumps(rows, ensure_ascii=False) if args.json else _table(rows)
    if args.command == "today":
        figures = records.day_figures(args.day or _today(), now)
        if args.json:
            return 0, json.dumps(figures, ensure_ascii=False, sort_keys=True)
        return 0, "\n".join(f"{k:<28} {v}" for k, v in figures.items())
    report = verify_day(records.client, records.prefix, args.day or _today())
    if args.json:
        return (0 if report.ok else 1), json.dumps(report.__dict__ | {"ok": report.ok})
    if report.ok:
        return 0, f"chain of {report.day}: {report.checked} events, intact"
    return 1, (f"chain of {report.day}: BROKEN at {report.broken_at} "
               f"(event {report.checked} of the day): {report.reason}")
