"""The shipped systemd units pass ``systemd-analyze verify`` with nothing to say."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "config" / "systemd"
NAMES = ("linkgw.service", "linkgw-retention.service", "linkgw-retention.timer",
         "linkgw-duty.service")
INSTALLED = "/opt/linkgw/bin/linkgw"


def verify(folder: Path, names: tuple[str, ...]) -> str:
    """What systemd-analyze says of the units (it answers 0 even for an unknown key, so
    every line it prints counts)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is installed by make setup (Debian's systemd)"
    done = subprocess.run([analyze, "verify", "--man=no", *(f"./{n}" for n in names)],
                          cwd=folder, capture_output=True, text=True, timeout=60)
    return f"rc={done.returncode}\n{done.stdout}{done.stderr}".strip()


def copied(tmp_path: Path, edit: tuple[str, str] = ("", "")) -> Path:
    """The units with the installed program's path pointed at this venv's ``linkgw``
    (verify checks that the program exists)."""
    here = str(Path(sys.executable).parent / "linkgw")
    for name in NAMES:
        text = (UNITS / name).read_text(encoding="utf-8").replace(INSTALLED, here)
        (tmp_path / name).write_text(text.replace(*edit) if edit[0] else text,
                                     encoding="utf-8")
    return tmp_path


def test_the_units_verify_without_a_word(tmp_path: Path) -> None:
    assert verify(copied(tmp_path), NAMES) == "rc=0"


@pytest.mark.parametrize("edit", [("Type=notify", "Typo=notify"),
                                  ("ProtectSystem=strict", "ProtectSystem=sometimes")])
def test_a_broken_unit_is_caught(tmp_path: Path, edit: tuple[str, str]) -> None:
    said = verify(copied(tmp_path, edit), ("linkgw.service",))
    assert edit[1].split("=")[0] in said or edit[1].split("=")[1] in said, said


def test_the_gateway_unit_is_notify_watched_and_hardened() -> None:
    lines = set((UNITS / "linkgw.service").read_text(encoding="utf-8").splitlines())
    for wanted in ("Type=notify", "WatchdogSec=30", "ExecReload=/bin/kill -HUP $MAINPID",
                   "User=linkgw", "NoNewPrivileges=yes", "ProtectSystem=strict",
                   "ProtectHome=yes", "CapabilityBoundingSet=",
                   "StateDirectory=linkgw linkgw/spool linkgw/export", "LogsDirectory=linkgw",
                   f"ExecStart={INSTALLED} run --config /etc/linkgw/gateway.yaml"):
        assert wanted in lines, wanted


def test_retention_runs_nightly_and_catches_up() -> None:
    timer = (UNITS / "linkgw-retention.timer").read_text(encoding="utf-8").splitlines()
    assert "Persistent=true" in timer
    assert any(line.startswith("OnCalendar=*-*-* 03:") for line in timer)


def test_the_duty_ringer_runs_alone_restarted_and_hardened() -> None:
    """Process mode's duty phone ringer: `linkgw duty`, restarted when it fails, with
    the gateway's secrets file and hardening."""
    text = (UNITS / "linkgw-duty.service").read_text(encoding="utf-8")
    lines = set(text.splitlines())
    assert {"ExecStart=/opt/linkgw/bin/linkgw duty --config /etc/linkgw/gateway.yaml",
            "Restart=on-failure", "EnvironmentFile=/etc/linkgw/secrets.env",
            "User=linkgw", "ProtectSystem=strict", "NoNewPrivileges=yes",
            "CapabilityBoundingSet="} <= lines
