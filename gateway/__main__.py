"""Command line: ``linkgw run``, ``linkgw check-config``, ``linkgw dialplan``,
``linkgw redis-acl`` and the record commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, cast

import redis
from twisted.internet.interfaces import IReactorThreads

from gateway.app import build_queries, build_records, build_retention, load_catalogue
from gateway.bridge.acl import USERS, AclError, render
from gateway.bridge.connect import MaintenanceLogin, maintenance_redis, sync_client
from gateway.catalogue import CategoryError
from gateway.config import Config, ConfigError, load_config_file
from gateway.install.cli import add_command as add_install_command
from gateway.install.cli import run as run_install
from gateway.push.cli import add_outbox_command
from gateway.records.cli import (
    LOOP_COMMANDS,
    RETENTION_COMMANDS,
    add_commands,
    run_loop,
    run_retention,
)
from gateway.records.cli import run as run_record_command
from gateway.records.errors import RecordError
from gateway.records.shown import printable


def _push(config_path: Path) -> int:
    """The push alone (a site in process mode runs no gateway service)."""
    config = load_config_file(config_path)
    if not config.push.url:
        print("linkgw: config error: push.url is empty: nothing to push to", file=sys.stderr)
        return 2
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor

    from gateway import logs
    from gateway.app import instance_name
    from gateway.push.plugin import build_push

    logs.configure(config.log.format, config.log.level)
    import structlog

    log = structlog.get_logger("gateway")
    # one run, one owner: a second copy (an overlapping restart) waits for the lease
    owner = f"{instance_name(config)}/push/{secrets.token_hex(4)}"
    service = build_push(config, reactor, log, owner)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    log.info("push.started", url=config.push.url)
    reactor.run()
    return 0


def _duty(config_path: Path) -> int:
    """The duty phone's ringer alone (a site in process mode runs no gateway service)."""
    config = load_config_file(config_path)
    if not config.duty.numbers:
        print("linkgw: config error: duty.numbers is empty: no duty phone to ring",
              file=sys.stderr)
        return 2
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor
    from twisted.internet.endpoints import clientFromString
    from twisted.internet.threads import deferToThreadPool

    from gateway import logs
    from gateway.ami.client import AmiClient
    from gateway.duty.ringer import DutyRinger

    logs.configure(config.log.format, config.log.level)
    import structlog

    log = structlog.get_logger("gateway")
    ami = AmiClient(clientFromString(reactor, config.ami.endpoint), config.ami.username,
                    config.ami.secret, clock=reactor, log=log.bind(part="ami"),
                    auth=config.ami.auth)
    orders = build_records(config, time.time, load_catalogue(config)).workorders
    threads = cast(Any, reactor)  # the asyncio reactor runs threads and calls from them
    pool = threads.getThreadPool()
    ringer = DutyRinger(config.duty, orders, ami, reactor,
                        lambda f, *a: deferToThreadPool(threads, pool, f, *a),
                        log.bind(part="duty"))
    reactor.callWhenRunning(ami.service.startService)
    reactor.callWhenRunning(ringer.startService)
    reactor.addSystemEventTrigger("before", "shutdown", ringer.stopService)
    reactor.addSystemEventTrigger("before", "shutdown", ami.service.stopService)
    log.info("duty.started", numbers=list(config.duty.numbers))
    reactor.run()
    return 0


def _outbox(args: argparse.Namespace) -> int:
    from gateway.push.cli import run_outbox

    config = load_config_file(Path(args.config), secrets=False)
    try:
        code, text = run_outbox(args, sync_client(config.redis, decode=False),
                                config.redis.prefix, config.push.feed)
    except redis.RedisError as exc:
        print(f"linkgw: Redis: {exc}", file=sys.stderr)
        return 1
    print(text)
    return code


def _run(config_path: Path) -> int:
    config = load_config_file(config_path)
    load_catalogue(config)  # a broken list stops the start
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor

    from gateway import logs
    from gateway.service import make_service

    logs.configure(config.log.format, config.log.level)
    import structlog

    log = structlog.get_logger("gateway")
    service = make_service(config, reactor, config_path)
    service.startService()
    # the handler only wakes the reactor; the reload itself runs there, between events
    threads = cast(IReactorThreads, reactor)
    signal.signal(signal.SIGHUP, lambda *_: threads.callFromThread(service.reload))
    logs.settle_heap()
    logs.watch_gc(log.bind(part="runtime"))
    log.info("gateway.started", fastagi=config.fastagi.listen, ami=config.ami.endpoint,
             redis=config.redis.url.split("@")[-1])
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    log.info("gateway.stopped")
    return 0


RECORD_COMMANDS = ("show", "find", "overdue", "today", "report", "verify-chain", "handover",
                   *LOOP_COMMANDS, *RETENTION_COMMANDS)


def _records(args: argparse.Namespace) -> int:
    config = load_config_file(Path(args.config), secrets=False)
    if args.command in RETENTION_COMMANDS:
        try:
            maintenance_redis(config)
        except MaintenanceLogin as exc:
            print(f"linkgw {args.command}: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command in RETENTION_COMMANDS:
            retention = build_retention(config, lambda line: print(line, file=sys.stderr))
            code, text = run_retention(args, retention, config.retention.days)
        elif args.command in LOOP_COMMANDS:
            parts = build_records(config, time.time, load_catalogue(config))
            code, text = run_loop(args, parts.records, parts.workorders)
        else:
            code, text = run_record_command(args, build_queries(config),
                                            config.retention.chain_key.encode(),
                                            Path(config.retention.export_dir),
                                            config.tickets.shifts)
    except RecordError as exc:
        print(f"linkgw: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:  # retention's own client
        print(f"linkgw {args.command}: Redis: {exc}{_scan_hint(config, exc)}",
              file=sys.stderr)
        return 3
    print(text)
    return code


def _items(args: argparse.Namespace) -> int:
    from gateway.transfer.card import print_pdf, render_card

    config = load_config_file(args.config, secrets=False)
    catalogue = load_catalogue(config)
    args.card.write_text(render_card(catalogue, config.transfer.onekey,
                                     config.transfer.code_digits), encoding="utf-8")
    print(f"{printable(args.card)}: {len(catalogue.categories)} categories, "
          f"{len(catalogue.items)} items, {len(catalogue.police)} police matters")
    if args.pdf:
        why = print_pdf(args.card, args.pdf)
        if why:
            print(f"linkgw items: no PDF: {why}", file=sys.stderr)
            return 1
        print(printable(args.pdf))
    return 0


def _scan_hint(config: Config, exc: Exception) -> str:
    """What to do when listing keys was refused: the gateway's user may not SCAN."""
    if isinstance(exc, redis.exceptions.NoPermissionError) and \
            not config.retention.redis_username:
        return (" (the gateway's Redis user may not list keys: set "
                "retention.redis_username: linkgw-maintenance and its "
                "retention.redis_password_env)")
    return ""


def _check_records(config_path: Path) -> int:
    from gateway.records.check import RecordCheck

    config = load_config_file(config_path, secrets=False)  # Redis's is read when set
    try:
        report = RecordCheck(sync_client(maintenance_redis(config), decode=False),
                             config.redis.prefix).run()
    except MaintenanceLogin as exc:
        print(f"linkgw check-records: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"linkgw check-records: Redis: {exc}{_scan_hint(config, exc)}",
              file=sys.stderr)
        return 3
    for line in report.lines():
        print(printable(line))
    return 0 if report.ok else 1


def _redis_acl(args: argparse.Namespace) -> int:
    config = load_config_file(Path(args.config), secrets=False)
    passwords = {user: os.environ.get(var, "") for user, var in USERS.items()}
    for user, var in USERS.items():
        if not passwords[user]:
            print(f"linkgw: {var} is not set: {user} gets no password (cannot log in)",
                  file=sys.stderr)
    try:
        text = render(args.acl.read_text(encoding="utf-8"), config.redis.prefix, passwords)
    except (OSError, UnicodeDecodeError, AclError) as exc:
        print(f"linkgw: {args.acl}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linkgw", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway")
    run.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    dial = sub.add_parser("dialplan", help="write the dialplan snippets for this config")
    dial.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    dial.add_argument("--source", type=Path, default=Path("dialplan"))
    dial.add_argument("--out", type=Path, required=True)
    acl = sub.add_parser("redis-acl", help="write the Redis ACL file for this config "
                         "(passwords from LINKGW_REDIS_PASSWORD_GATEWAY, _12345, _SUPERVISOR)")
    acl.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    acl.add_argument("--acl", type=Path, default=Path("config/redis.acl"))
    items = sub.add_parser("items", help="the categories and items (--card: the seat's "
                           "printable item card, HTML, and PDF with --pdf)")
    items.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    items.add_argument("--card", type=Path, metavar="FILE.html", required=True,
                       help="write the card as one HTML page")
    items.add_argument("--pdf", type=Path, metavar="FILE.pdf",
                       help="also print it to PDF with Chromium (where it is installed)")
    check_records = sub.add_parser("check-records", help="say whether this release reads "
                                   "every record and event in Redis (changes nothing)")
    check_records.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    push = sub.add_parser("push", help="run only the push to the 12345 system (process "
                          "mode has no gateway service)")
    push.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    duty = sub.add_parser("duty", help="run only the duty phone's ringer (process mode "
                          "has no gateway service)")
    duty.add_argument("--config", type=Path, default=Path("config/gateway.yaml"))
    add_outbox_command(sub)
    add_install_command(sub)
    add_commands(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args.config)
        if args.command == "push":
            return _push(args.config)
        if args.command == "duty":
            return _duty(args.config)
        if args.command == "outbox":
            return _outbox(args)
        if args.command in RECORD_COMMANDS:
            return _records(args)
        if args.command == "redis-acl":
            return _redis_acl(args)
        if args.command == "install":
            return run_install(args)
        if args.command == "check-records":
            return _check_records(args.config)
        if args.command == "items":
            return _items(args)
        config = load_config_file(args.config)
        if args.command == "check-config":
            catalogue = load_catalogue(config)
            print(f"{args.config}: ok ({len(catalogue.categories)} categories, "
                  f"{len(catalogue.items)} items, {len(catalogue.police)} police matters)")
            return 0
        from gateway.dialplan import install

        for path in install(config, args.source, args.out):
            print(path)
        return 0
    except (ConfigError, CategoryError) as exc:
        print(f"linkgw: config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
