"""``linkgw install`` into an Asterisk configured as Debian ships it (the lab root's own
``/etc/asterisk``): a dry run writes nothing, the first run adds the linkgw folder and one
marked include per host file and nothing else, the second run writes nothing at all, and
Asterisk then loads it all without one warning that Debian's configuration does not
already give by itself, and reloads it without any; every application and function
the linkgw dialplan calls is one Asterisk has. This is the dialplan's lint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.install.includes import MARK
from gateway.lab.installed import DistributionAsterisk
from gateway.lab.process import wait_until
from gateway.lab.provision import asterisk_root

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"LINKGW_AMI_SECRET": "lab-only-ami-secret", "LINKGW_API_TOKEN": "t" * 32}
OWN = ("linkgw_extensions.conf", "linkgw_confbridge.conf", "linkgw_globals.conf",
       "linkgw_features.conf", "linkgw_musiconhold.conf", "linkgw_manager.conf")
HOSTS = ("extensions.conf", "features.conf", "musiconhold.conf", "confbridge.conf",
         "manager.conf")
SOUNDS = sorted(str(p.relative_to(REPO / "dialplan/sounds"))
                for p in (REPO / "dialplan/sounds").rglob("*.wav"))
FILES = len(OWN) + len(HOSTS) + len(SOUNDS) + 2  # + the example config and categories

Snapshot = dict[str, tuple[bytes, int, int]]


def snapshot(*folders: Path) -> Snapshot:
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                st = path.stat()
                out[str(path)] = (path.read_bytes(), st.st_mtime_ns, st.st_mode & 0o777)
    return out


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionAsterisk]:
    asterisk = DistributionAsterisk(asterisk_root(), tmp_path)
    try:
        yield asterisk
    finally:
        asterisk.stop()


def install(asterisk: DistributionAsterisk, config_dir: Path, *extra: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "install", "--config",
         str(REPO / "config/gateway.yaml"), "--source", str(REPO),
         "--asterisk-etc", str(asterisk.etc), "--sounds", str(asterisk.base / "sounds"),
         "--config-dir", str(config_dir), *extra],
        capture_output=True, text=True, timeout=60, env=dict(os.environ) | SECRETS)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def test_install_is_idempotent_and_the_distributions_asterisk_loads_it_without_a_warning(
        distribution: DistributionAsterisk, tmp_path: Path) -> None:
    etc, config_dir = distribution.etc, tmp_path / "linkgw"
    distribution.prepare()
    shipped = snapshot(etc)
    distribution.boot()  # as Debian ships it: what it says without linkgw
    distribution.halt()  # pbx_config warns from its own thread, after "fully booted"
    baseline = distribution.problems()
    assert snapshot(etc) == shipped

    said = install(distribution, config_dir, "--dry-run")
    assert snapshot(etc) == shipped and not config_dir.exists()
    assert f"{FILES} file(s) to write, 0 as they were" in said

    said = install(distribution, config_dir)
    sounds = distribution.base / "sounds"
    first = snapshot(etc, config_dir, sounds)
    written = sorted(p for p in first if shipped.get(p) != first[p])
    assert written == sorted([str(etc / "linkgw" / n) for n in OWN]
                             + [str(etc / n) for n in HOSTS]
                             + [str(sounds / n) for n in SOUNDS]
                             + [str(config_dir / n) for n in ("categories.yaml",
                                                              "gateway.yaml")])
    assert SOUNDS and all(first[str(sounds / n)][0] ==
                          (REPO / "dialplan/sounds" / n).read_bytes() for n in SOUNDS)
    for host in HOSTS:  # only marked include lines were added, nothing else changed
        old = shipped[str(etc / host)][0].decode().splitlines()
        new = first[str(etc / host)][0].decode().splitlines()
        added = [line for line in new if line not in old]
        assert added and all(line.startswith("#include linkgw/") and line.endswith(MARK)
                             for line in added), added
        assert [line for line in new if line not in added] == old
        assert first[str(etc / host)][2] == shipped[str(etc / host)][2]  # its mode kept
    assert first[str(etc / "linkgw/linkgw_manager.conf")][2] == 0o640
    asterisk_group = (etc / "asterisk.conf").stat().st_gid  # Debian's: asterisk:asterisk
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (etc / "linkgw").iterdir()} == \
        {(0, asterisk_group)}  # root's, readable by Asterisk, not rewritable by it

    said = install(distribution, config_dir)
    assert f"0 file(s) written, {FILES} as they were" in said
    assert snapshot(etc, config_dir, sounds) == first  # not one byte, not one mtime

    distribution.boot()
    wait_until(lambda: len(distribution.problems()) >= len(baseline), 20,
               "as many warnings as Debian's own configuration gives")
    assert [line for line in distribution.problems() if line not in baseline] == []
    assert sorted(distribution.problems()) == sorted(baseline)
    booted = len(distribution.problems())
    for command in ("dialplan reload", "module reload res_musiconhold.so",
                    "module reload app_confbridge.so", "manager reload"):
        distribution.cli(command)
    assert distribution.problems()[booted:] == []

    shown = distribution.cli("dialplan show linkgw-onekey").stdout
    assert "'s' =>" in shown, shown
    assert "linkgw_onekey" in distribution.cli("features show").stdout
    assert "linkgw_notice" in distribution.cli("moh show classes").stdout
    decline = distribution.cli("dialplan show linkgw-decline-menu").stdout
    assert "CONFBRIDGE(menu," in decline, decline
    assert "username: linkgw" in distribution.cli("manager show user linkgw").stdout.lower()
    used_apps, used_functions = set(), set()
    for name in OWN[:1]:
        text = (etc / "linkgw" / name).read_text(encoding="utf-8")
        used_apps |= set(re.findall(r"(?m)^\s*(?:exten|same)\s*=>[^,]*,[^,]*,\s*(\w+)\(", text))
        used_functions |= set(re.findall(r"\$\{([A-Z_]+)\(", text))
    apps = distribution.cli("core show applications").stdout.lower()
    functions = distribution.cli("core show functions").stdout
    assert {a for a in used_apps if f" {a.lower()}:" not in apps} == set()
    assert {f for f in used_functions if not re.search(rf"(?m)^\s*{f}\s", functions)} == set()
    assert len(used_apps) > 10 and len(used_functions) > 5
