"""``linkgw install``: the command line around :mod:`gateway.install.plan`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.config import load_config_file
from gateway.install.includes import setting
from gateway.install.manager import ManagerError
from gateway.install.plan import (
    Done,
    InstallRefused,
    Sources,
    apply,
    asterisk_files,
    config_files,
    outcome,
    sound_files,
)


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("install", help="write linkgw's files into an existing Asterisk "
                         "(and an example config); a second run changes nothing")
    cmd.add_argument("--config", type=Path, default=Path("config/gateway.yaml"),
                     help="the config the dialplan is rendered from (its AMI secret, "
                     "from ami.secret_env, goes into the AMI user)")
    cmd.add_argument("--source", type=Path, default=Path("."),
                     help="a checkout of linkgw (its dialplan/, config/ and sounds/)")
    cmd.add_argument("--asterisk-etc", type=Path, default=Path("/etc/asterisk"))
    cmd.add_argument("--sounds", type=Path, default=Path("/usr/share/asterisk/sounds"),
                     help="Asterisk's sounds folder (the prompts go under linkgw/)")
    cmd.add_argument("--config-dir", type=Path, default=Path("/etc/linkgw"),
                     help="where an example gateway.yaml goes, if none is there")
    cmd.add_argument("--ami-permit", default="127.0.0.1",
                     help="the address or network the gateway reaches AMI from")
    cmd.add_argument("--dry-run", action="store_true", help="say what would be written")


def run(args: argparse.Namespace) -> int:
    config = load_config_file(args.config)
    if not (args.asterisk_etc / "asterisk.conf").is_file():
        print(f"linkgw install: {args.asterisk_etc} has no asterisk.conf: not an Asterisk "
              "configuration folder")
        return 2
    sources = Sources.checkout(args.source)
    try:
        writes = (asterisk_files(config, sources, args.asterisk_etc, args.ami_permit)
                  + sound_files(sources, args.sounds) + config_files(sources, args.config_dir))
    except ManagerError as exc:
        print(f"linkgw install: {exc}")
        return 2
    try:
        done = [outcome(w) for w in writes] if args.dry_run else apply(writes)
    except InstallRefused as exc:
        print(f"linkgw install: {exc}")
        return 2
    for line in report(done, args.dry_run):
        print(line)
    for line in advice(args.asterisk_etc):
        print(line)
    return 0


def report(done: list[Done], dry_run: bool) -> list[str]:
    verb = {"create": "would create", "update": "would update"} if dry_run else {}
    lines = [f"{verb.get(d.action, d.action):<12} {d.path}  ({d.why})" for d in done]
    changed = sum(d.action in ("create", "update") for d in done)
    lines.append(f"{changed} file(s) {'to write' if dry_run else 'written'}, "
                 f"{len(done) - changed} as they were")
    return lines


def advice(etc: Path) -> list[str]:
    """What the administrator still has to do, in files install does not change."""
    manager = etc / "manager.conf"
    text = manager.read_text(encoding="utf-8") if manager.exists() else ""
    out = []
    if (setting(text, "general", "enabled") or "no").lower() not in ("yes", "true", "1"):
        out.append(f"to do: AMI is off in {manager}: set enabled = yes and "
                   "bindaddr = 127.0.0.1 under [general]")
    out.append("then in Asterisk: dialplan reload, module reload res_musiconhold.so, "
               "module reload app_confbridge.so, manager reload")
    return out
