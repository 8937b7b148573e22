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


class AmiParser:
    """Feed bytes, get whole messages. Remembers the banner (``Asterisk Call Manager/…``)."""

    def __init__(self) -> None:
        self.banner: str | None = None
        self._buffer = b""
        self._current: list[tuple[str, str]] = []

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        messages: list[AmiMessage] = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if self.banner is None:
                self.banner = line
                continue
            if line == "":
                if self._current:
                    messages.append(AmiMessage(tuple(self._current)))
                    self._current = []
                continue
            key, sep, value = line.partition(":")
            if not sep:
                # Old "Response: Follows" bodies: keep the line, never drop data.
                self._current.append(("Output", line))
                continue
            self._current.append((key.strip(), value[1:] if value.startswith(" ") else value))
        return messages
