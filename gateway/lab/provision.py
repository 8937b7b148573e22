"""Provision Asterisk 22: a Debian sid root folder made by mmdebstrap, run with chroot.

Debian 12 has no Asterisk package; sid has 22.x. The root is built once and cached under
``$LINKGW_CACHE`` (default ``~/.cache/linkgw``), keyed by the package list, so that later
runs (and CI on the same machine) skip the ~40 s build. A build goes to a temporary
folder and is renamed into place only when complete; a lock keeps two builds apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm",
            "asterisk-moh-opsound-gsm",  # what a citizen on hold hears
            # for process-mode AGI, which runs inside Asterisk's root
            "python3", "python3-twisted", "python3-redis", "python3-structlog", "python3-yaml")
SUITE = "sid"
#: Bump to force a rebuild of every cached root (for example after a packaging change).
ROOT_FORMAT = "1"


def cache_dir() -> Path:
    base = os.environ.get("LINKGW_CACHE") or str(Path.home() / ".cache" / "linkgw")
    return Path(base)


def root_key() -> str:
    text = "\n".join([ROOT_FORMAT, SUITE, *PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def asterisk_root() -> Path:
    return cache_dir() / f"asterisk-root-{root_key()}"


def _log(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def ensure_asterisk_root() -> Path:
    """Return the cached root, building it first when it is not there."""
    root = asterisk_root()
    if (root / "usr/sbin/asterisk").exists():
        return root
    if os.geteuid() != 0:
        raise RuntimeError("building the Asterisk root needs root (mmdebstrap + chroot)")
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed: apt-get install mmdebstrap")
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "usr/sbin/asterisk").exists():
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _log(f"building the Asterisk root in {root} (once; about a minute)")
        subprocess.run(
            [
                "mmdebstrap", "--variant=apt", "--quiet",
                "--aptopt=Acquire::Check-Valid-Until \"false\"",
                f"--include={','.join(PACKAGES)}",
                SUITE, str(partial),
            ],
            check=True,
        )
        partial.rename(root)
        _log("Asterisk root ready")
    return root


def main() -> int:
    print(ensure_asterisk_root())
    return 0
