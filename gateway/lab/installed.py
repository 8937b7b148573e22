"""An Asterisk configured as a distribution ships it, for ``linkgw install`` to write
into and for Asterisk then to load: the root's own ``/etc/asterisk`` (Debian's),
copied to a folder of its own inside the root.

``boot()`` changes only what running it in the lab needs, never what install wrote:
the folders in ``asterisk.conf`` point into the copy, the lab's ``NOLOAD`` modules stay
unloaded (nothing listens beyond loopback), AMI moves to a free loopback port, and the
messages log records warnings. ``problems()`` is every WARNING and ERROR line Asterisk
logged since its last boot. A distribution's own configuration is not silent (Debian's
loads voicemail twice, an AEL example, LDAP without a host): a test compares a boot
before ``linkgw install`` with one after.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

from gateway.lab.asterisk import NOLOAD, asterisk_cli, boot_chrooted
from gateway.lab.ports import free_ports
from gateway.lab.process import LabError, Proc

_DIRS = {"astetcdir": "etc", "astrundir": "run", "astlogdir": "log",
         "astspooldir": "spool", "astdbdir": "db", "astkeydir": "lib", "astcachedir": "cache"}
_PROBLEM = re.compile(r"^\[[^\]]*\] (WARNING|ERROR)\[")


class DistributionAsterisk:
    def __init__(self, root: Path, log_dir: Path) -> None:
        self.root, self.log_dir = root, log_dir
        self.inside = Path("/srv/linkgw-lab") / f"install-{secrets.token_hex(4)}"
        self.base = root / self.inside.relative_to("/")
        self.etc = self.base / "etc"
        self.proc: Proc | None = None
        self._prepared, self._since = False, 0
        shutil.copytree(root / "etc/asterisk", self.etc, symlinks=True)
        for sub in _DIRS.values():
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "lib/keys").mkdir(exist_ok=True)

    def prepare(self) -> None:
        """The lab's changes (asterisk.conf's folders, modules, the AMI port), once."""
        if not self._prepared:
            self._harness()
            self._prepared = True

    def _harness(self) -> None:
        conf = self.etc / "asterisk.conf"
        # Debian marks the section a template, "[directories](!)", so that the compiled-in
        # folders hold; the copy needs its own
        text = re.sub(r"(?m)^\[directories\]\(!\)", "[directories]",
                      conf.read_text(encoding="utf-8"))
        for key, sub in _DIRS.items():
            text, n = re.subn(rf"(?m)^{key}\s*=>.*$", f"{key} => {self.inside}/{sub}", text)
            if n != 1:
                raise LabError(f"{conf}: no single {key} line to point into the copy")
        conf.write_text(text, encoding="utf-8")
        modules = self.etc / "modules.conf"
        noload = "".join(f"noload => {m}.so\n" for m in NOLOAD)
        text, n = re.subn(r"(?m)^\[modules\]\s*$", "[modules]\n; the lab: nothing that "
                          "would listen beyond loopback\n" + noload.rstrip("\n"),
                          modules.read_text(encoding="utf-8"), count=1)
        if n != 1:
            raise LabError(f"{modules}: no [modules] section")
        modules.write_text(text, encoding="utf-8")
        manager = self.etc / "manager.conf"
        port = free_ports(1)[0]
        manager.write_text(re.sub(r"(?m)^port\s*=.*$", f"port = {port}",
                                  manager.read_text(encoding="utf-8")), encoding="utf-8")

    def boot(self) -> None:
        """Start (the harness's changes the first time); ``problems()`` counts from here."""
        self.prepare()
        self._since = len(self.messages().splitlines())
        self.proc = boot_chrooted(self.root, self.inside, self.base,
                                  self.log_dir / "installed-asterisk.out")

    def cli(self, command: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        return asterisk_cli(self.root, self.inside, command, timeout)

    def messages(self) -> str:
        path = self.base / "log/messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def problems(self) -> list[str]:
        """The WARNING and ERROR lines since the last boot, without their time, thread
        and the copy's folder, so that two boots' lines compare."""
        lines = self.messages().splitlines()[self._since:]
        return [re.sub(r"\[\d+\]", "", line.split("] ", 1)[1]).replace(str(self.inside), "")
                for line in lines if _PROBLEM.match(line)]

    def halt(self) -> None:
        if self.proc is not None and self.proc.alive():
            try:
                self.cli("core stop now", timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.proc.stop(timeout=10)

    def stop(self) -> None:
        self.halt()
        kept = self.base / "log/messages.log"
        if kept.exists():
            shutil.copyfile(kept, self.log_dir / "installed-asterisk-messages.log")
        shutil.rmtree(self.base, ignore_errors=True)
