"""AGI: a pure codec (``codec``), its errors (``errors``) and the FastAGI server (``server``)."""

from gateway.agi.codec import AgiEnv, AgiReply, ReplyParser, format_command, parse_env
from gateway.agi.errors import (
    AgiCommandError,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiUsageError,
    UnsafeValueError,
)

__all__ = [
    "AgiCommandError",
    "AgiDeadChannel",
    "AgiEnv",
    "AgiError",
    "AgiHangup",
    "AgiInvalidCommand",
    "AgiProtocolError",
    "AgiReply",
    "AgiUsageError",
    "ReplyParser",
    "UnsafeValueError",
    "format_command",
    "parse_env",
]
