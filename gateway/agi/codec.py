"""Pure AGI codec: bytes in, values out, and values in, bytes out. No I/O here.

- :func:`parse_env` turns the ``agi_*: value`` block Asterisk sends first into an
  :class:`AgiEnv`.
- :func:`format_command` quotes every argument so that no value can end its command or
  start another one: backslash and double quote are escaped the way res_agi's argument
  parser undoes them; CR, LF and NUL cannot be represented and are refused.
- :class:`ReplyParser` turns reply lines into an :class:`AgiReply`, an
  :class:`~gateway.agi.errors.AgiCommandError` (510/511/520, the 520 usage text gathered
  over its lines) or :data:`HANGUP`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from gateway.agi.errors import (
    AgiCommandError,
    AgiDeadChannel,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiUsageError,
    UnsafeValueError,
)

#: res_agi reads a command into a buffer of this size (AGI_BUF_LEN); longer lines are cut.
MAX_COMMAND_BYTES: Final = 2048
_FORBIDDEN: Final = {"\r": "CR", "\n": "LF", "\x00": "NUL"}
_COMMAND_WORD = re.compile(r"[A-Z][A-Z ]*[A-Z]\Z")
_ENV_KEY = re.compile(r"agi_[a-z0-9_]+\Z")
_REPLY_200 = re.compile(
    r"200 result=(-?\d+|[0-9*#A-D]*)(?: \((.*)\))?(?: endpos=(\d+))?\s*\Z", re.S)


class _Hangup:
    """Type of :data:`HANGUP`: Asterisk's notice that the channel is gone."""

    def __repr__(self) -> str:
        return "HANGUP"


HANGUP: Final = _Hangup()


@dataclass(frozen=True)
class AgiEnv:
    """The environment block of one AGI session, keys without their ``agi_`` prefix."""

    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def channel(self) -> str:
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        return self.get("callerid")

    @property
    def calleridname(self) -> str:
        return self.get("calleridname")

    @property
    def script(self) -> str:
        """The script name routed on: ``agi_network_script`` (FastAGI) or ``agi_request``."""
        return self.get("network_script") or self.get("request")

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` … ``agi_arg_N`` in order."""
        out: list[str] = []
        while (value := self.values.get(f"arg_{len(out) + 1}")) is not None:
            out.append(value)
        return tuple(out)


def parse_env(lines: Iterable[bytes]) -> AgiEnv:
    """Parse the env block (without its closing blank line).

    Asterisk writes env values unescaped, so a caller ID carrying a line break (PJSIP
    turns ``%0D%0A`` in a URI into one) splits its line: a line that is not
    ``agi_key: value`` continues the value before it. Raises :class:`AgiProtocolError`
    when the first line is not an env line, a key is seen twice (what an injected
    ``agi_…:`` line would look like), or the bytes are not UTF-8.
    """
    values: dict[str, str] = {}
    last: str | None = None
    for raw in lines:
        line = raw.removesuffix(b"\n")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgiProtocolError("env line is not UTF-8", raw) from exc
        key, sep, value = text.partition(": ")
        if not sep:
            key, sep, value = text.partition(":")
        if not sep or not _ENV_KEY.match(key):
            if last is None:
                raise AgiProtocolError("not an AGI env line", raw)
            values[last] += "\n" + text
            continue
        name = key[len("agi_") :]
        if name in values:
            raise AgiProtocolError("env key repeated", raw)
        values[name] = value.removesuffix("\r")
        last = name
    return AgiEnv(MappingProxyType(values))


def quote(value: str) -> str:
    """Quote one argument; refuse what res_agi could not read back unchanged."""
    for char, name in _FORBIDDEN.items():
        if char in value:
            raise UnsafeValueError(value, f"contains {name}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(command: str, *args: str) -> bytes:
    """One command line, newline included: ``SET VARIABLE "name" "value"\\n``.

    ``command`` is the fixed upper-case command words; every argument is quoted.
    """
    if not _COMMAND_WORD.match(command):
        raise UnsafeValueError(command, "not an AGI command word")
    text = " ".join([command, *(quote(a) for a in args)])
    try:
        line = text.encode("utf-8") + b"\n"
    except UnicodeEncodeError as exc:
        raise UnsafeValueError(text, "not encodable as UTF-8") from exc
    if len(line) > MAX_COMMAND_BYTES:
        raise UnsafeValueError(line.decode("utf-8"), f"longer than {MAX_COMMAND_BYTES} bytes")
    return line


@dataclass(frozen=True)
class AgiReply:
    """A ``200`` reply: ``result`` is the number, ``data`` the text in parentheses.

    ``text`` is the result as sent: GET DATA answers with the digits typed (``101``,
    ``*1``, or nothing), which is not always a number.
    """

    result: int
    data: str | None = None
    endpos: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.result != -1


ParsedReply = AgiReply | AgiCommandError | _Hangup


class ReplyParser:
    """Line-by-line reply parser; holds state only across a multi-line 520."""

    def __init__(self) -> None:
        self._usage: list[str] | None = None

    def feed(self, raw: bytes) -> ParsedReply | None:
        """Take one line; return a finished reply, or ``None`` when more lines are due."""
        line = raw.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = "\n".join(self._usage), None
                return AgiUsageError(520, usage)
            self._usage.append(line)
            return None
        if line == "HANGUP":
            return HANGUP
        if line.startswith("200 "):
            match = _REPLY_200.match(line)
            if match is None:
                raise AgiProtocolError("malformed 200 reply", raw)
            text, data, endpos = match.groups()
            number = int(text) if text.lstrip("-").isdigit() else 0
            return AgiReply(number, data, int(endpos) if endpos is not None else None, text)
        if line.startswith("100 "):
            return None  # "100 result=0 Trying...": an interim line, the real reply follows
        if line.startswith("510"):
            return AgiInvalidCommand(510, line[4:])
        if line.startswith("511"):
            return AgiDeadChannel(511, line[4:])
        if line.startswith("520-"):
            self._usage = []
            return None
        if line.startswith("520"):
            return AgiUsageError(520, line[4:])
        raise AgiProtocolError("unknown AGI reply", raw)
