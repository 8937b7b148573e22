"""``linkgw show|find|overdue|today|report|verify-chain`` and the loop without a call
(``workorders``, ``workorder``, ``callbacks``, ``callback-done``, ``push-needed``,
``push-done``): the records for people."""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.records.actor import Actor
from gateway.records.chain import verify_day
from gateway.records.periods import today
from gateway.records.queries import FINDERS, Records
from gateway.records.report_format import LANGS, report_csv, report_text, report_xlsx
from gateway.records.retention import Retention, RetentionError, is_day, read_manifest
from gateway.records.shown import json_for_terminal, printable
from gateway.records.workorder_life import RESULTS, SATISFACTION
from gateway.records.workorders import WorkOrderDesk

WORKORDER_COLUMNS = ("ticket", "received_at", "category", "status", "accept_due_at",
                     "unit", "due_at", "on_time")
CALLBACK_COLUMNS = ("bridge_id", "at", "number", "seat", "direction", "status")
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
    today = sub.add_parser("today", help="a day's figures (default: today, in the centre's "
                           "time zone: tickets.time_zone)")
    today.add_argument("--day")
    report = sub.add_parser("report", help="a month's or year's figures and the refused "
                            "and declined transfers by item (for the joint meetings)")
    when = report.add_mutually_exclusive_group(required=True)
    when.add_argument("--month", help="YYYY-MM")
    when.add_argument("--year", help="YYYY")
    when.add_argument("--day", help="YYYY-MM-DD")
    report.add_argument("--csv", action="store_true",
                        help="the items as CSV (UTF-8 with a byte order mark, for Excel)")
    report.add_argument("--xlsx", type=Path, metavar="FILE",
                        help="write the figures and the items as an Excel workbook")
    report.add_argument("--lang", choices=LANGS, default="zh",
                        help="zh (default): Chinese labels; en: English")
    chain = sub.add_parser("verify-chain", help="check a day's hash chain of events")
    chain.add_argument("--day")
    orders = sub.add_parser("workorders", help="12345 work orders without a call: open "
                            "ones, or those received in a period")
    orders.add_argument("--period", help="YYYY-MM-DD, YYYY-MM or YYYY")
    order = sub.add_parser("workorder", help="move a work order on: accept, assign to a "
                           "unit, answer; return it, hand it back, reassign it, ask for "
                           "or decide an extension, reopen, close, record satisfaction")
    order.add_argument("ticket")
    order.add_argument("step", choices=tuple(_ACTION))
    order.add_argument("--unit", help="the unit it is assigned to (assign, reassign), or "
                       "that hands it back (unit-return)")
    order.add_argument("--reason", help="why (return, unit-return, reassign, extension, "
                       "reopen)")
    order.add_argument("--days", help="working days more (extension)")
    order.add_argument("--hours", help="hours more (extension)")
    order.add_argument("--result", choices=RESULTS, help="what it was closed with (close)")
    order.add_argument("--satisfaction", choices=SATISFACTION,
                       help="the citizen's, from 12345's follow-up call (satisfaction)")
    order.add_argument("--note")
    order.add_argument("--operator", default=os.environ.get("LINKGW_OPERATOR"),
                       help="your staff or police number (required; default: $LINKGW_OPERATOR)")
    handover = sub.add_parser("handover", help="what this shift hands over: work orders "
                              "open and overdue, feedback overdue, callbacks and pushes owed")
    sub.add_parser("callbacks", help="open callback tasks")
    callback = sub.add_parser("callback-done", help="a citizen was called back")
    callback.add_argument("bridge_id")
    callback.add_argument("--note")
    callback.add_argument("--operator", default=os.environ.get("LINKGW_OPERATOR"),
                          help="your staff or police number (required; default: $LINKGW_OPERATOR)")
    sub.add_parser("push-needed", help="work orders still to push to a line not reached")
    push = sub.add_parser("push-done", help="the owed work order was pushed")
    push.add_argument("bridge_id")
    push.add_argument("--ticket", help="its number at the other line")
    push.add_argument("--note")
    push.add_argument("--operator", default=os.environ.get("LINKGW_OPERATOR"),
                      help="your staff or police number (required; default: $LINKGW_OPERATOR)")
    retention = sub.add_parser("retention", help="export, seal and remove the UTC days "
                               "older than retention.days; trim the streams safely")
    retention.add_argument("--days", type=int, help="instead of retention.days")
    export = sub.add_parser("export", help="write one UTC day's records and events to "
                            "retention.export_dir (JSON lines)")
    export.add_argument("--day", required=True)
    seal = sub.add_parser("seal", help="seal a UTC day's chain with the chain key")
    seal.add_argument("--day", required=True)
    for p in (retention, export, seal):
        p.add_argument("--config", default="config/gateway.yaml")
        p.add_argument("--json", action="store_true", help="JSON instead of text")
    for p in (show, find, sub.choices["overdue"], today, report, chain, orders, order, handover,
              sub.choices["callbacks"], callback, sub.choices["push-needed"], push):
        p.add_argument("--config", default="config/gateway.yaml")
        p.add_argument("--json", action="store_true", help="JSON instead of text")


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


#: ``linkgw workorder <ticket> <step>``: the action and what the step itself says.
_ACTION: dict[str, tuple[str, dict[str, str]]] = {
    "accept": ("accept", {}), "assign": ("assign", {}), "answer": ("answer", {}),
    "return": ("return", {}), "unit-return": ("unit_return", {}),
    "reassign": ("reassign", {}), "extension": ("extension", {}),
    "grant": ("extension_decision", {"decision": "granted"}),
    "refuse": ("extension_decision", {"decision": "refused"}),
    "reopen": ("reopen", {}), "close": ("close", {}), "satisfaction": ("satisfaction", {})}

LOOP_COMMANDS = ("workorders", "workorder", "callbacks", "callback-done", "push-needed",
                 "push-done")


def _rows(rows: list[dict[str, str]], total: int | None, columns: tuple[str, ...],
          as_json: bool) -> str:
    """A table (or JSON); ``total``: how many there are, when more than the rows shown."""
    if as_json:
        return json_for_terminal(json.dumps(rows, ensure_ascii=False))
    if not rows:
        return "(none)"
    lines = ["  ".join(f"{c:<20}" for c in columns)]
    lines += ["  ".join(f"{printable(r.get(c, '')):<20}" for c in columns) for r in rows]
    if total is not None and total > len(rows):
        lines.append(f"… the first {len(rows)} of {total} shown, oldest first")
    return "\n".join(line.rstrip() for line in lines)


def run_loop(args: argparse.Namespace, records: Records, desk: WorkOrderDesk
             ) -> tuple[int, str]:
    """The loop without a call: work orders, callbacks, pushes owed."""
    done: dict[str, str]
    if args.command == "workorders":
        rows, total = records.workorder_list(args.period or "")
        return 0, _rows(rows, total, WORKORDER_COLUMNS, args.json)
    if args.command == "callbacks":
        return 0, _rows(*records.callback_list(), CALLBACK_COLUMNS, args.json)
    if args.command == "push-needed":
        return 0, _rows(*records.push_list(), SUMMARY, args.json)
    actor = Actor.human("cli", args.operator)  # operator_missing before anything is read
    if args.command == "workorder":
        action, given = _ACTION[args.step]
        done = desk.act(args.ticket, action, given | {
            k: getattr(args, k) for k in ("unit", "reason", "days", "hours", "result",
                                          "satisfaction", "note")}, actor)
    elif args.command == "callback-done":
        done = desk.callback_done(args.bridge_id, args.note, actor)
    else:
        done = desk.push_done(args.bridge_id, args.ticket, args.note, actor)
    if args.json:
        return 0, json_for_terminal(json.dumps(done, ensure_ascii=False, sort_keys=True))
    return 0, "\n".join(f"{printable(k):<24} {printable(v)}" for k, v in sorted(done.items()))


RETENTION_COMMANDS = ("retention", "export", "seal")


def run_retention(args: argparse.Namespace, retention: Retention, keep_days: int
                  ) -> tuple[int, str]:
    """``retention`` (export, seal, remove what is older than ``keep_days``; trim),
    ``export --day`` and ``seal --day``."""
    try:
        if args.command == "export":
            return 0, str(retention.export(args.day))
        if args.command == "seal":
            if retention.seal(args.day):
                return 0, f"sealed {args.day}"
            return 1, "nothing sealed: no chain key (retention.chain_key_env) or no entries"
        days = args.days if args.days is not None else keep_days
        if days <= 0:
            return 1, "retention.days is 0 (keep everything): give --days N to run it"
        done = retention.run(days, datetime.now(UTC).date())
    except (OSError, RetentionError) as exc:
        return 1, f"retention stopped: {printable(exc)}"
    code = 1 if done["failed"] else 0  # cron sees a day that could not be done
    if args.json:
        return code, json.dumps(done, sort_keys=True)
    return code, (f"kept from {done['cutoff']} (UTC); exported, sealed and removed: "
                  f"{printable(', '.join(done['days'])) or 'nothing'}; not done (see above): "
                  f"{printable(', '.join(done['failed'])) or 'none'}; trimmed: " +
                  ", ".join(f"{printable(k)} {v}" for k, v in done["trimmed"].items()))


def handover_text(got: dict[str, Any]) -> str:
    """``linkgw handover`` for a person: the shift, then each list with its count."""
    shift, seen = got["shift"], got["this_shift"]
    out = [f"shift {printable(shift['label'])} until {printable(shift['until'])} "
           f"({printable(shift['time_zone'])}): {seen['keys']} key(s) pressed, "
           f"{seen['workorders_received']} work order(s) received"]
    for title, name, columns in (("work orders open", "open_workorders", WORKORDER_COLUMNS),
                                 ("work orders overdue", "overdue_workorders",
                                  WORKORDER_COLUMNS),
                                 ("feedback overdue", "overdue_bridges", SUMMARY),
                                 ("callbacks owed", "callbacks", CALLBACK_COLUMNS),
                                 ("pushes owed", "push_needed", SUMMARY)):
        total = got.get("totals", {}).get(name, len(got[name]))
        out += ["", f"{title} ({total})", _rows(got[name], total, columns, False)]
    return "\n".join(out)


def run(args: argparse.Namespace, records: Records, key: bytes = b"",
        export_dir: Path | None = None, shifts: tuple[str, ...] = ("08:00", "20:00")
        ) -> tuple[int, str]:
    """(exit code, text) for one command; ``key``: the chain key, for seals;
    ``export_dir``: where retention keeps each sealed day's manifest; ``shifts``: when
    the centre's shifts begin."""
    now = time.time()
    if args.command == "handover":
        got = records.handover(now, shifts)
        if args.json:
            return 0, json_for_terminal(json.dumps(got, ensure_ascii=False, sort_keys=True))
        return 0, handover_text(got)
    if args.command == "show":
        got = records.bridge(args.bridge_id)
        if args.json:
            return 0, json_for_terminal(json.dumps(got, ensure_ascii=False, indent=2,
                                                   sort_keys=True))
        out = [f"bridge {printable(args.bridge_id)}"]
        out += [f"  {printable(k):<24} {printable(v)}" for k, v in sorted(got["bridge"].items())]
        out.append("ticket")
        out += [f"  {printable(k):<24} {printable(v)}"
                for k, v in sorted(got["ticket"].items())] or ["  (none)"]
        out.append("events")
        out += [f"  {printable(e['id']):<17} {printable(e['record']):<30} "
                f"{printable(e['event'])}" for e in got["events"]]
        if not got.get("events_complete", True):
            out.append(f"  … the first {len(got['events'])} events found in the stream's "
                       "first entries from the bridge's start; more may follow")
        return 0, "\n".join(out)
    if args.command == "find":
        by = next(name for name in FINDERS if getattr(args, name))
        rows = records.find(by, getattr(args, by))
        return 0, _rows(rows, None, SUMMARY, args.json)
    if args.command == "overdue":
        return 0, _rows(records.overdue(now), records.totals(now)["overdue_bridges"],
                        SUMMARY, args.json)
    if args.command == "report":
        got = records.report(args.month or args.year or args.day, now)
        if args.json:
            return 0, json_for_terminal(json.dumps(got, ensure_ascii=False, sort_keys=True))
        lang = getattr(args, "lang", "zh")
        if getattr(args, "xlsx", None):
            args.xlsx.write_bytes(report_xlsx(got, lang))
            return 0, f"{printable(args.xlsx)}: {len(got['items'])} items"
        if args.csv:
            return 0, report_csv(got["items"], lang).rstrip("\r\n")
        return 0, report_text(got, lang)
    if args.command == "today":
        figures = records.day_figures(args.day or today(now, records.zone), now)
        if args.json:
            return 0, json_for_terminal(json.dumps(figures, ensure_ascii=False,
                                                   sort_keys=True))
        return 0, "\n".join(f"{k:<28} {printable(v)}" for k, v in figures.items())
    day = args.day or _today()
    manifest = read_manifest(export_dir, day) if export_dir is not None and is_day(day) \
        else None
    report = verify_day(records.client, records.prefix, day, key=key, manifest=manifest)
    if args.json:
        return (0 if report.ok else 1), json.dumps(report.__dict__ | {"ok": report.ok})
    if report.ok:
        notes = ([f"after {report.trimmed} trimmed (checkpoint)"] if report.trimmed else []) \
            + (["seal checked"] if report.sealed == "yes" else
               ["sealed, seal not checked: no key"] if report.sealed else [])
        return 0, (f"chain of {report.day}: {report.checked} events, intact"
                   + (f" ({'; '.join(notes)})" if notes else ""))
    return 1, (f"chain of {printable(report.day)}: BROKEN at {printable(report.broken_at)} "
               f"(event {report.checked} of the day): {printable(report.reason)}")
