"""What the command line shows a person (pure): every value from Redis as one safe line.

A caller's name or a ticket can hold any bytes: an escape sequence (``\\x1b]0;…\\x07``
retitles the operator's terminal, ``\\x1b[2J`` clears it), an 8-bit CSI (``\\x9b``), a
line or paragraph separator, or a bidi override that shows text in another order. They
are shown as ``\\xNN`` / ``\\uNNNN`` instead, in tables and in JSON alike (where the
escape is a valid JSON escape, so a program reads back the same string).
"""

from __future__ import annotations

import re

_RAW_IN_JSON = "\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_RAW_IN_JSON}]")
_UNSAFE_IN_JSON = re.compile(f"[{_RAW_IN_JSON}]")  # JSON escapes C0; its layout stays


def printable(value: object) -> str:
    """``value`` as text with no control character a terminal would act on."""
    return _UNSAFE.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_for_terminal(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the characters it leaves raw but a
    terminal would act on (C1, separators, bidi) written as ``\\uNNNN``."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
