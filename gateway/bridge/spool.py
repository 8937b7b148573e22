"""The local spool: changes that could not reach Redis, on disk, in order.

Each process has a file of its own in the spool folder (``<instance>.jsonl``) and holds
an exclusive ``flock`` on it for as long as it runs, so a gateway, a second gateway and
every process-mode follower can spool side by side without touching each other's lines.
A file whose lock can be taken belongs to a process that is gone: :meth:`Spool.adopt`
moves its changes into this process's own file (fsynced) before deleting it, so nothing
a dead process accepted is lost.

The format is robust to what a crash or a full disk leaves behind:

- one JSON object per line, ASCII only, so no byte of the file is part of a multi-byte
  character and no Unicode line separator (U+2028, U+0085) can split a line;
- lines are split on ``\\n`` alone, bytes first; a line that is not one whole change
  (torn, not UTF-8, not JSON) is logged with its number and skipped, never fatal;
- before appending, a last line without its ``\\n`` (a torn write) is closed, so a new
  change is never glued to a fragment;
- the file is created 0600 (it holds citizens' numbers and names) and its folder is
  fsynced when a file appears or disappears.

The folder is trusted only when it is this user's and nobody else may write it
(:func:`secure_folder`): one that is not (a symlink, another user's) is refused with a
clear error; one of ours that is too open (an older keeper made it 0755) is closed to
0700. Files are opened without following symlinks, and only regular files are adopted,
so a planted link cannot make this process append to, or truncate, another file.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from gateway.bridge.change import Change

SUFFIX = ".jsonl"


def parse_lines(data: bytes, log: Any, path: str = "") -> list[Change]:
    """Every whole change in ``data``; anything else is logged and skipped."""
    changes = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw:
            continue
        if number == len(lines):  # no "\n" after it: torn by a crash or a full disk
            log.error("spool.torn_line", path=path, line=number, length=len(raw))
            continue
        try:
            changes.append(Change.from_json(raw.decode("utf-8")))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.error("spool.bad_line", path=path, line=number, error=str(exc)[:200])
    return changes


def secure_folder(folder: Path) -> None:
    """Make ``folder`` (0700), or check the one there: a real folder, this user's, that
    nobody else may write (one of ours that is too open is closed to 0700).
    PermissionError says what is wrong."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"spool folder {folder} is not a folder (a symlink?)")
    if st.st_uid != os.getuid():
        raise PermissionError(f"spool folder {folder} belongs to uid {st.st_uid}, "
                              f"not to this process's ({os.getuid()})")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of a file of the spool folder, 0600, never through a symlink, and only
    a regular file (a FIFO there would block)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PermissionError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """This process's spool file in ``folder``, locked while the process lives."""

    def __init__(self, folder: Path, instance: str, log: Any) -> None:
        self.folder = folder
        self.path = folder / f"{_safe(instance)}{SUFFIX}"
        self.log = log
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            secure_folder(self.folder)
            new = not self.path.exists()
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            f = os.fdopen(fd, "r+b")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                raise
            if new:
                _fsync_dir(self.folder)
            self._file = f
        return self._file

    def append(self, changes: Iterable[Change]) -> None:
        """Append and fsync; returns only once the changes are on disk."""
        data = "".join(change.to_json() + "\n" for change in changes).encode("ascii")
        if not data:
            return
        f = self._open()
        size = os.fstat(f.fileno()).st_size
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                data = b"\n" + data  # close a torn last line: never glue onto it
        f.write(data)
        f.flush()
        os.fsync(f.fileno())

    def load(self) -> list[Change]:
        """What this process's file holds (changes spooled before a restart under the
        same instance name are read too)."""
        if not self.path.exists():
            return []
        f = self._open()
        f.seek(0)
        return parse_lines(f.read(), self.log, str(self.path))

    def clear(self) -> None:
        """Every change in the file is in the store: empty it."""
        if self._file is None and not self.path.exists():
            return
        f = self._open()
        f.truncate(0)
        f.flush()
        os.fsync(f.fileno())

    def adopt(self) -> list[Change]:
        """Take over the files of processes that are gone: their changes are appended to
        this file (fsynced) and returned; their files are deleted."""
        if not self.folder.exists():
            return []
        secure_folder(self.folder)
        adopted: list[Change] = []
        for other in sorted(self.folder.glob(f"*{SUFFIX}")):
            if other == self.path:
                continue
            try:
                f = os.fdopen(open_private(other, os.O_RDONLY), "rb")
            except OSError as exc:  # gone, a symlink, a FIFO: not a spool to adopt
                self.log.warning("spool.not_adopted", path=str(other), error=str(exc))
                continue
            with f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # its process is alive
                changes = parse_lines(f.read(), self.log, str(other))
                self.append(changes)
                other.unlink()
                _fsync_dir(self.folder)
            if changes:
                self.log.warning("spool.adopted", path=str(other), changes=len(changes))
            adopted += changes
        return adopted

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _safe(instance: str) -> str:
    """An instance name as a file name: letters, digits, '-', '_', '.' only."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_"
                   for c in instance) or "gateway"
