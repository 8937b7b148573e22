"""``linkgw outbox list|retry|drop``: what the push has not delivered, read and handled
with a blocking Redis client."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.push.outbox import GROUP
from gateway.schema import Keys

SHOWN = ("dead_reason", "dead_tries", "record", "event", "id", "at", "outbox_id")


def add_outbox_command(sub: Any) -> None:
    p = sub.add_parser("outbox", help="the push's undelivered and dead-letter events")
    p.add_argument("--config", default="config/gateway.yaml")
    p.add_argument("action", choices=("list", "retry", "drop"))
    p.add_argument("ids", nargs="*", help="dead-letter ids (retry, drop); none: all")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def run_outbox(args: argparse.Namespace, client: Any, prefix: str, feed: str) -> tuple[int, str]:
    keys = Keys(prefix)
    dead = keys.push("dead", feed)
    if args.action == "list":
        return 0, _list(client, keys, feed)
    wanted = list(dict.fromkeys(args.ids))  # the same id twice is one
    entries = client.xrange(dead) if not wanted else \
        [e for i in wanted for e in client.xrange(dead, i, i)]
    if wanted and len(entries) != len(wanted):
        found = {_text(i) for i, _ in entries}
        return 1, "no such dead letter: " + ", ".join(i for i in wanted if i not in found)
    for entry_id, fields in entries:
        if args.action == "retry":  # keeps its first outbox_id: the body says redelivered
            again = {k: v for k, v in fields.items()
                     if _text(k) not in ("dead_reason", "dead_tries")}
            client.xadd(keys.push("retry", feed), again)
        client.xdel(dead, entry_id)
    verb = "queued again" if args.action == "retry" else "dropped"
    return 0, f"{len(entries)} dead letter(s) {verb}"


def _list(client: Any, keys: Keys, feed: str) -> str:
    stream = keys.feed(feed)
    lines = [f"outbox {stream}, group {GROUP}:"]
    groups = {_text(g["name"]): g for g in client.xinfo_groups(stream)} \
        if client.exists(stream) else {}
    group = groups.get(GROUP)
    if group is None:
        lines.append("  not read yet (no push has run)")
    else:
        lines.append(f"  waiting: {group.get('lag')}  in flight: {group.get('pending')}  "
                     f"last delivered: {_text(group.get('last-delivered-id'))}")
    lines.append(f"  sent again first: {client.xlen(keys.push('retry', feed))}")
    dead = client.xrange(keys.push("dead", feed))
    lines.append(f"dead letters ({len(dead)}):")
    for entry_id, fields in dead:
        text = {_text(k): _text(v) for k, v in fields.items()}
        lines.append(f"  {_text(entry_id)}  " + "  ".join(
            f"{k}={text[k][:80]!r}" for k in SHOWN if k in text))
    return "\n".join(lines)
