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

import grp
import os
import tempfile
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
    # a new file takes this file's owner and group (Asterisk's own, so that Asterisk,
    # running as its user, reads a 0640 file it is given)
    owner_of: Path | None = None
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
                         "include of linkgw's file"))
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


def _replace(write: Write) -> None:
    # a host file that is a link (to the site's own repository, say) stays a link: the
    # file it points to is the one rewritten
    path = write.path.resolve() if write.path.is_symlink() else write.path
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(write.data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, old.st_mode & 0o777 if old else write.mode)
        owner = _owner(write, old)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _owner(write: Write, old: os.stat_result | None) -> tuple[int, int] | None:
    """Who a written file belongs to: the file's own owner when it existed; else the
    owner of ``owner_of``; else root and ``group`` when that group exists; else as
    made (the installing user)."""
    if old is not None:
        return old.st_uid, old.st_gid
    if write.owner_of is not None and write.owner_of.exists():
        like = write.owner_of.stat()
        return like.st_uid, like.st_gid
    if write.group:
        try:
            return -1, grp.getgrnam(write.group).gr_gid
        except KeyError:
            return None
    return None
