"""What ``linkgw install`` writes into an Asterisk configuration folder, and writing it.

Its own files go to ``<etc>/linkgw/`` (the dialplan, features, music on hold and
confbridge snippets, rendered from the config, and an AMI user); each host file
(``extensions.conf``, ``features.conf``, ``musiconhold.conf``, ``confbridge.conf``,
``manager.conf``) gets one marked ``#include`` line where Asterisk needs it. An example
``gateway.yaml`` and the categories go to the gateway's config folder when none is
there. Nothing else is touched, and a second run finds every file as it should be and
writes nothing.
"""

from __future__ import annotations

import contextlib
import grp
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config
from gateway.dialplan import STATIC_FILES, render
from gateway.install.includes import with_include
from gateway.install.manager import manager_user

FOLDER = "linkgw"  # under the Asterisk configuration folder
HOST_INCLUDES: tuple[tuple[str, str, str], ...] = (
    ("extensions.conf", "linkgw_globals.conf", "globals"),
    ("extensions.conf", "linkgw_extensions.conf", ""),
    ("features.conf", "linkgw_features.conf", "applicationmap"),
    ("musiconhold.conf", "linkgw_musiconhold.conf", ""),
    ("confbridge.conf", "linkgw_confbridge.conf", ""),
    ("manager.conf", "linkgw_manager.conf", ""),
)


#: The group of the gateway service's user (config/systemd/linkgw.sysusers.conf): the
#: config it reads is root's, readable by that group.
SERVICE_GROUP = "linkgw"


@dataclass(frozen=True)
class Write:
    path: Path
    data: bytes
    mode: int
    why: str
    only_if_absent: bool = False  # the administrator's file once it exists
    # a new file takes this file's group (Asterisk's own, so that Asterisk, running as
    # its user, reads a 0640 file it is given; root stays its owner)
    owner_of: Path | None = None
    within: Path | None = None  # a host file's link is followed only to a file in here
    group: str = ""  # else: a new file's group, when that group exists (the service's)


@dataclass(frozen=True)
class Done:
    path: Path
    action: str  # create, update, unchanged, kept (exists; the administrator's)
    why: str


@dataclass(frozen=True)
class Sources:
    """Where the shipped files are: a checkout of this repository."""

    dialplan: Path
    config: Path
    sounds: Path

    @classmethod
    def checkout(cls, root: Path) -> Sources:
        return cls(root / "dialplan", root / "config", root / "dialplan" / "sounds")


def _read(path: Path) -> str:
    """A host file as text; bytes that are not UTF-8 (a site's GBK comments) come back
    unchanged when written (surrogateescape)."""
    return path.read_bytes().decode("utf-8", "surrogateescape") if path.exists() else ""


def asterisk_files(config: Config, sources: Sources, etc: Path, permit: str) -> list[Write]:
    """The linkgw folder's files and the includes in the host files."""
    own, like = etc / FOLDER, etc / "asterisk.conf"
    out = [Write(own / name, (sources.dialplan / name).read_bytes(), 0o644, "linkgw file",
                 owner_of=like)
           for name in STATIC_FILES]
    out += [Write(own / name, text.encode("utf-8"), 0o644, "linkgw file, from the config",
                  owner_of=like)
            for name, text in render(config).items()]
    user = manager_user(_read(sources.dialplan / "linkgw_manager.conf.example"),
                        config.ami.username, config.ami.secret, permit)
    out.append(Write(own / "linkgw_manager.conf", user.encode("utf-8"), 0o640,
                     "the gateway's AMI user (holds its secret)", owner_of=like))
    hosts: dict[str, str] = {}
    for host, name, section in HOST_INCLUDES:
        current = hosts.get(host, _read(etc / host))
        added = with_include(current, f"{FOLDER}/{name}", section)
        hosts[host] = current if added is None else added
    for host, text in hosts.items():
        mode = (etc / host).stat().st_mode & 0o777 if (etc / host).exists() else 0o640
        out.append(Write(etc / host, text.encode("utf-8", "surrogateescape"), mode,
                         "include of linkgw's file", within=etc))
    return out


def sound_files(sources: Sources, sounds: Path) -> list[Write]:
    """The prompts shipped in ``dialplan/sounds/`` (their folders kept), under ``sounds``."""
    if not sources.sounds.is_dir():
        return []
    return [Write(sounds / path.relative_to(sources.sounds), path.read_bytes(), 0o644,
                  "prompt")
            for path in sorted(sources.sounds.rglob("*.wav"))]


def config_files(sources: Sources, folder: Path) -> list[Write]:
    """An example config and the categories, for the administrator to edit."""
    return [Write(folder / name, (sources.config / name).read_bytes(), 0o640,
                  "example, yours to edit", only_if_absent=True, group=SERVICE_GROUP)
            for name in ("gateway.yaml", "categories.yaml")]


def outcome(write: Write) -> Done:
    if not write.path.exists():
        return Done(write.path, "create", write.why)
    if write.only_if_absent:
        return Done(write.path, "kept", write.why)
    same = write.path.read_bytes() == write.data
    return Done(write.path, "unchanged" if same else "update", write.why)


def apply(writes: Iterable[Write]) -> list[Done]:
    """Write what differs, each file replaced whole (a crash leaves old or new, never a
    torn file); a host file keeps its owner and mode."""
    done = []
    for write in writes:
        result = outcome(write)
        if result.action in ("create", "update"):
            _replace(write)
        done.append(result)
    return done


class InstallRefused(ValueError):
    """A file install will not write: a link where linkgw's own file goes, or a host
    file linked to somewhere outside the Asterisk folder."""


def _target(write: Write) -> Path:
    """Where a write goes. A host file that is a link (to a site's repository inside
    the Asterisk folder, say) stays a link and its target is rewritten, but only a
    target inside ``within``: whoever may write the Asterisk folder (Asterisk's own
    user, on Debian) must not make root write its files elsewhere (/etc/ld.so.preload).
    linkgw's own files are never written through a link."""
    if not write.path.is_symlink():
        return write.path
    target = write.path.resolve()
    if write.within is None or not target.is_relative_to(write.within.resolve()):
        raise InstallRefused(f"{write.path} is a link to {target}: not written (add "
                             f"the include line yourself, or replace the link by the file)")
    return target


def _replace(write: Write) -> None:
    path = _target(write)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the folder is opened once, never through a link, and everything after is done in
    # it: a folder swapped for a link meanwhile is not followed
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise InstallRefused(f"{path.parent}: {exc.strerror} (a link?): not written") \
            from exc
    try:
        try:
            old: os.stat_result | None = os.stat(path.name, dir_fd=folder,
                                                 follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise InstallRefused(f"{path} is not a regular file: not written")
        tmp = f".{path.name}.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(write.data)
                f.flush()
                os.fchmod(f.fileno(), old.st_mode & 0o777 if old else write.mode)
                owner = _owner(write, old)
                if owner is not None:
                    os.fchown(f.fileno(), *owner)
                os.fsync(f.fileno())
            os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def _owner(write: Write, old: os.stat_result | None) -> tuple[int, int] | None:
    """Who a written file belongs to: the file's own owner when it existed; else the
    owner of ``owner_of``; else root and ``group`` when that group exists; else as
    made (the installing user)."""
    if old is not None:
        return old.st_uid, old.st_gid
    if write.owner_of is not None and write.owner_of.exists():
        # root's, readable by Asterisk's group: Asterisk reads its 0640 file, and
        # cannot rewrite what root will include
        return -1, write.owner_of.stat().st_gid
    if write.group:
        try:
            return -1, grp.getgrnam(write.group).gr_gid
        except KeyError:
            return None
    return None
