"""Pure AMI codec: :func:`encode_action` for the way out, :class:`AmiParser` for the way in.

An AMI message is ``Key: Value`` lines closed by an empty line, CRLF throughout. Keys may
repeat (``Variable``), so a message keeps its headers in order. No header may carry CR or
LF: one that did would end the action early and start a forged one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.ami.errors import AmiError

_KEY: Final = re.compile(r"[A-Za-z0-9_\-()]+\Z")


class UnsafeHeaderError(AmiError, ValueError):
    """A header key or value that cannot be sent without changing the message."""

    code = "ami_unsafe_header"


HeaderItems = Iterable[tuple[str, str]] | Mapping[str, str]


def _items(headers: HeaderItems) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def encode_action(action: str, action_id: str, headers: HeaderItems = ()) -> bytes:
    """``Action: X`` + ``ActionID`` + the headers, CRLF-closed. Refuses CR, LF and NUL."""
    lines = [("Action", action), ("ActionID", action_id), *_items(headers)]
    out: list[str] = []
    for key, value in lines:
        if not _KEY.match(key):
            raise UnsafeHeaderError(f"bad AMI header key {key[:40]!r}")
        if any(c in value for c in "\r\n\x00"):
            raise UnsafeHeaderError(f"AMI header {key} carries CR, LF or NUL: {value[:40]!r}")
        out.append(f"{key}: {value}\r\n")
    try:
        return ("".join(out) + "\r\n").encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeHeaderError(f"AMI action {action} is not encodable as UTF-8") from exc


@dataclass(frozen=True)
class AmiMessage:
    """One message from Asterisk: a response or an event."""

    headers: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str = "") -> str:
        lowered = key.lower()
        for k, v in self.headers:
            if k.lower() == lowered:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        lowered = key.lower()
        return [v for k, v in self.headers if k.lower() == lowered]

    @property
    def event(self) -> str:
        return self.get("Event")

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    @property
    def is_response(self) -> bool:
        """A response to an action (OriginateResponse is an event with a Response: header)."""
        return bool(self.get("Response")) and not self.event

    def as_dict(self) -> dict[str, str]:
        """Last value wins; for logs and tests."""
        return dict(self.headers)


#: A channel's caller-ID values in an event and the header Asterisk always writes right
#: after each (the same with a prefix: ``DestCallerIDNum`` … ``DestLanguage``). Events
#: built from a channel snapshot all have them in this order; OriginateResponse has its
#: own (the caller ID the Originate gave, CallerIDName last) and is read as it is.
_CALLER_ID_NEXT: Final = {"CallerIDNum": "CallerIDName", "CallerIDName": "ConnectedLineNum",
                          "ConnectedLineNum": "ConnectedLineName",
                          "ConnectedLineName": "Language"}
_CALLER_ID_KEY: Final = re.compile(
    r"(?P<prefix>\w*?)(?P<field>CallerIDNum|CallerIDName|ConnectedLineNum|ConnectedLineName)\Z")
#: A channel snapshot's keys: Asterisk writes each once per event (a second snapshot in
#: one event has a prefix: DestUniqueid …). Seen twice, an event was forged in a value
#: and the real event's tail was glued to it.
_SNAPSHOT: Final = frozenset({
    "channel", "channelstate", "channelstatedesc", "language", "accountcode", "context",
    "exten", "priority", "uniqueid", "linkedid"})
MAX_LINE: Final = 65536  # bytes of one line (a 4 KB caller name is cut to 79 by Asterisk)
MAX_MESSAGE: Final = 1 << 20  # bytes of one message
#: Caller-ID continuation lines (and their bytes) held while the header that must follow
#: has not come. More is no split caller ID (PJSIP cuts a name to 79 characters, seen in
#: the lab): the lines are read again as lines of their own, so an event without the
#: expected header (another Asterisk version, a client's own UserEvent) cannot swallow
#: the stream, and a line is read again at most a few times.
MAX_CALLER_ID: Final = 1024
MAX_CALLER_ID_LINES: Final = 16
_STARTS: Final = ("event", "response")


class AmiParser:
    """Feed bytes, get whole messages. Remembers the banner (``Asterisk Call Manager/…``).

    Asterisk writes caller IDs into events unescaped, so a caller ID with CR LF (or CR LF
    CR LF) breaks its line, or seems to end the event. Caller-ID values come in a fixed
    order, each followed by a known header, so the lines up to that header continue the
    value, blank ones included. What a caller ID could still forge (it can fake the
    headers that follow it) is caught by the real event's tail: glued to the forged
    event, it repeats a snapshot key (Uniqueid …); after a blank line, it is a block that
    is no message (it does not start with ``Event:``/``Response:``), and the message just
    before it in the same read is the forged one. Either way it is dropped
    (:attr:`injected` counts them). Lines over 64 KiB and messages over 1 MiB are cut
    and counted (:attr:`oversized`); a continuation that outgrows any caller ID is read
    again as lines of its own; nothing here grows without a bound, and each byte is
    scanned a bounded number of times.
    """

    def __init__(self, starts: tuple[str, ...] = _STARTS) -> None:
        """``starts``: the first header a message may begin with (lower case); a parser
        reading actions (a test's Asterisk) takes ``("action",)``."""
        self.starts = starts
        self.banner: str | None = None
        self.injected = 0
        self.oversized = 0
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._current: list[tuple[str, str]] = []
        self._size = 0
        self._open: tuple[int, str] | None = None  # (index of the value, next header)
        self._held: list[str] = []  # lines that may continue the open caller-ID value
        self._held_size = 0
        self._skipping = False  # inside an orphan block: until the next blank line
        self._dropping = False  # the current line is too long: until its newline

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        messages: list[AmiMessage] = []
        start = 0  # lines before it are read; the buffer is cut once, at the end
        while True:
            at = self._buffer.find(b"\n", max(start, self._scanned))
            if at < 0:
                del self._buffer[:start]
                self._scanned = len(self._buffer)
                if self._scanned > MAX_LINE:
                    self.oversized += 1
                    self._dropping = True
                    del self._buffer[:]
                    self._scanned = 0
                return messages
            raw = bytes(self._buffer[start:at]).rstrip(b"\r")
            start = at + 1
            if self._dropping:  # the tail of a line that was too long
                self._dropping = False
                continue
            self._line(raw.decode("utf-8", errors="replace"), messages)

    def _line(self, line: str, messages: list[AmiMessage]) -> None:
        if self.banner is None:
            # "Asterisk Call Manager/…"; a server that sends none (or a proxy that ate
            # it) starts with a message, and its first line is read as one
            key = line.partition(":")[0].strip().lower()
            self.banner = "" if key in self.starts else line
            if self.banner:
                return
        if self._skipping:
            self._skipping = line != ""
            return
        if self._open is not None:
            index, expected = self._open
            if not line.startswith(expected + ":"):
                self._hold(line, messages)
                return
            if self._held:
                key, value = self._current[index]
                self._current[index] = (key, "\n".join((value, *self._held)))
            self._open, self._held, self._held_size = None, [], 0
        if line == "":
            if self._current:
                self._finish(messages)
            return
        if not self._current and line.partition(":")[0].strip().lower() not in self.starts:
            self._orphan(messages)
            return
        self._size += len(line)
        if self._size > MAX_MESSAGE:
            self.oversized += 1
            self._current, self._size, self._skipping = [], 0, True
            return
        key, sep, value = line.partition(":")
        if not sep:
            # Old "Response: Follows" bodies: keep the line, never drop data.
            self._current.append(("Output", line))
            return
        key = key.strip()
        self._current.append((key, value[1:] if value.startswith(" ") else value))
        match = _CALLER_ID_KEY.match(key)
        if match and self._current[0] != ("Event", "OriginateResponse"):
            nxt = match.group("prefix") + _CALLER_ID_NEXT[match.group("field")]
            self._open = (len(self._current) - 1, nxt)

    def _hold(self, line: str, messages: list[AmiMessage]) -> None:
        """A line that continues the open caller-ID value, unless too much came."""
        self._held.append(line)
        self._held_size += len(line) + 1
        if self._held_size <= MAX_CALLER_ID and len(self._held) <= MAX_CALLER_ID_LINES:
            return
        again = self._held
        self._open, self._held, self._held_size = None, [], 0
        for held in again:
            self._line(held, messages)

    def _finish(self, messages: list[AmiMessage]) -> None:
        keys = [k.lower() for k, _ in self._current if k.lower() in _SNAPSHOT]
        if len(keys) != len(set(keys)):
            self.injected += 1  # an event forged in a value, the real tail glued to it
        else:
            messages.append(AmiMessage(tuple(self._current)))
        self._current, self._size = [], 0

    def _orphan(self, messages: list[AmiMessage]) -> None:
        """Lines where a message should start: the tail of an event that a value split.
        The message just before it (in this read) was forged inside that value."""
        self.injected += 1
        if messages:
            messages.pop()
        self._skipping = True
