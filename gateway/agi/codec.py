"""Pure AGI codec: bytes in, values out, and values in, bytes out. No I/O here.

- :class:`EnvReader` (and :func:`parse_env` for a whole block) turns the
  ``agi_*: value`` block Asterisk sends first into an :class:`AgiEnv`.
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


#: The keys res_agi's setup_env() writes, in its order (FastAGI first adds
#: ``agi_network`` and ``agi_network_script``); then ``agi_arg_1`` … and a blank line.
ENV_ORDER: Final = (
    "agi_request", "agi_channel", "agi_language", "agi_type", "agi_uniqueid",
    "agi_version", "agi_callerid", "agi_calleridname", "agi_callingpres",
    "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid", "agi_rdnis",
    "agi_context", "agi_extension", "agi_priority", "agi_enhanced", "agi_accountcode",
    "agi_threadid",
)
MAX_ENV_BYTES: Final = 65536
MAX_ENV_LINES: Final = 512


class EnvReader:
    """The env block, a line at a time; :meth:`feed` returns the :class:`AgiEnv` once the
    block is complete.

    Asterisk writes env values unescaped, and a caller ID may carry CR LF (PJSIP turns
    ``%0D%0A`` in a URI into one), even CR LF CR LF. Asterisk also writes the keys in a
    fixed order (:data:`ENV_ORDER`), so a line is a new key only when it is the key that
    comes next; any other line, a blank one included, continues the value before it. The
    block ends at the first blank line after ``agi_threadid`` and the ``agi_arg_N``
    lines. A key that appears out of its place is therefore part of a value and can
    neither end the block early nor overwrite a key (``agi_uniqueid`` comes before the
    caller ID). More than 64 KiB or 512 lines is a protocol error.
    """

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._last: str | None = None
        self._next = 0  # index into ENV_ORDER of the key expected next
        self._args = 0
        self._size = 0
        self._lines = 0

    def _expected(self) -> tuple[str, ...]:
        if self._next == 0 and not self._values:
            return ("agi_network", "agi_request")
        if self._last == "agi_network":
            return ("agi_network_script", "agi_request")
        if self._next < len(ENV_ORDER):
            return (ENV_ORDER[self._next],)
        return (f"agi_arg_{self._args + 1}",)

    def feed(self, raw: bytes) -> AgiEnv | None:
        self._size += len(raw) + 1
        self._lines += 1
        if self._size > MAX_ENV_BYTES or self._lines > MAX_ENV_LINES:
            raise AgiProtocolError("env block too large", raw[:80])
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgiProtocolError("env line is not UTF-8", raw[:80]) from exc
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        if not line and self._next >= _ORDERED:
            return AgiEnv(MappingProxyType({k[4:]: v for k, v in self._values.items()}))
        key, sep, value = line.partition(":")
        if sep and key in self._expected():
            self._values[key] = value[1:] if value.startswith(" ") else value
            self._last = key
            position = _POSITION.get(key)
            if position is not None:
                self._next = position + 1
            elif key.startswith("agi_arg_"):
                self._args += 1
            return None
        if self._last is None:
            raise AgiProtocolError("not an AGI env line", raw[:80])
        self._values[self._last] += "\n" + line  # a value broken by a line break
        return None


_ORDERED: Final = len(ENV_ORDER)
_POSITION: Final = {key: n for n, key in enumerate(ENV_ORDER)}


def parse_env(lines: Iterable[bytes]) -> AgiEnv:
    """Parse a whole env block (with or without its closing blank line); raises
    :class:`AgiProtocolError` when it is incomplete or malformed."""
    reader = EnvReader()
    for raw in [*lines, b""]:
        env = reader.feed(raw)
        if env is not None:
            return env
    raise AgiProtocolError("env block ended before agi_threadid", b"")


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
