"""Exceptions of the AGI layer.

A hangup is not an error: :class:`AgiHangup` stands outside :class:`AgiError` so that a
script's ``except AgiError`` never swallows the caller going away.
"""

from __future__ import annotations


class AgiHangup(Exception):
    """The channel hung up while the script ran (``HANGUP`` line or a 511 reply)."""


class AgiError(Exception):
    """Base of every AGI failure; ``code`` is a stable id for logs and metrics."""

    code = "agi_error"


class AgiProtocolError(AgiError):
    """Asterisk (or whoever connected) sent bytes that are not AGI."""

    code = "agi_protocol"

    def __init__(self, message: str, line: bytes) -> None:
        super().__init__(f"{message}: {line[:120]!r}")
        self.line = line


class UnsafeValueError(AgiError, ValueError):
    """A value cannot be put on an AGI command line without changing its meaning."""

    code = "agi_unsafe_value"

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"refused AGI argument ({reason}): {value[:60]!r}")
        self.value = value
        self.reason = reason


class AgiCommandError(AgiError):
    """Asterisk refused a command; ``reply`` is its raw text."""

    code = "agi_command"

    def __init__(self, status: int, reply: str) -> None:
        super().__init__(f"AGI {status}: {reply}")
        self.status = status
        self.reply = reply


class AgiInvalidCommand(AgiCommandError):
    """510: Asterisk does not know the command."""

    code = "agi_invalid_command"


class AgiDeadChannel(AgiCommandError):
    """511: the command is not permitted on a dead channel."""

    code = "agi_dead_channel"


class AgiUsageError(AgiCommandError):
    """520: wrong syntax; ``reply`` holds Asterisk's usage text."""

    code = "agi_usage"
