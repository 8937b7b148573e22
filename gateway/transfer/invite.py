"""What the INVITE to the other line carries (pure): who calls, and the 110 context.

The other line is another organisation's PBX behind a trunk. Its agent's screen can show
the bridge only if the call brings it along, in three standard-or-common forms:

- ``User-to-User`` (RFC 7433): the context as ``key=value`` pairs joined by ``&``,
  hex-encoded, with ``encoding=hex`` and a ``purpose``;
- ``X-Linkgw-*`` headers, one value each, for PBXs that drop UUI;
- ``Call-Info`` pointing at the bridge in the HTTP API (when a URL is configured);
- the display name: a configurable prefix (``110转``) and the citizen's name, with the
  citizen's number as the asserted identity (the trunk sends it as P-Asserted-Identity
  with ``send_pai=yes``).

Every value is built from what this module allows through: digits for numbers, the
bridge id's own alphabet, a few safe characters for names. A caller ID with CR LF,
quotes, U+2028 or 4 KB of text can change a value's text, never add a header or end
one (each is an AMI ``Variable`` that Asterisk splits on unescaped commas).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

from gateway.config import TransferConfig
from gateway.transfer.model import DIRECTIONS, Bridge

#: RFC 7433's ``purpose`` for this project's payload (not ``isdn-uui``: the payload is
#: not an ISDN user-user information element).
UUI_PURPOSE = "linkgw"
UUI_CONTENT = "linkgw-context"
HEADER_PREFIX = "X-Linkgw-"
#: Printable text in a display name, after the control, format and separator
#: characters are gone: no quote, backslash or angle bracket (they end the name).
_NAME_DROP = set('"\\<>')
NAME_MAX = 32  # characters of the citizen's name shown after the prefix
_TOKEN = re.compile(r"[^A-Za-z0-9_.:+-]")


def dial_number(number: str) -> str:
    """A caller number as the other line may see it: digits and a leading ``+``, at most
    32 characters."""
    digits = "".join(c for c in number if c.isascii() and c.isdigit())
    plus = "+" if number.lstrip().startswith("+") else ""
    return (plus + digits)[:32]


def display_text(text: str, limit: int = NAME_MAX) -> str:
    """``text`` safe inside a SIP display name: no control, format or separator
    characters (CR LF, U+2028, U+0085, zero-width), no quote, backslash, angle bracket
    or comma; spaces collapsed; at most ``limit`` characters."""
    kept = []
    for c in text:
        if c in _NAME_DROP or c == ",":
            continue
        category = unicodedata.category(c)
        kept.append(" " if category[0] in "CZ" else c)
    return " ".join("".join(kept).split())[:limit]


def token(value: str, limit: int = 64) -> str:
    """An identifier (seat endpoint, centre id) reduced to ``[A-Za-z0-9_.:+-]``."""
    return _TOKEN.sub("", value)[:limit]


def caller_id(bridge: Bridge, config: TransferConfig) -> str:
    """The Originate's ``CallerID``: ``"<prefix> <name>" <number>``; the exact caller ID
    stays on the record."""
    prefix = config.destination(bridge.side, bridge.handed_to).display_prefix
    name = " ".join(p for p in (display_text(prefix), display_text(bridge.citizen.name)) if p)
    number = dial_number(bridge.citizen.number)
    return f'"{name}" <{number}>' if name else f"<{number}>"


def context(bridge: Bridge, config: TransferConfig) -> dict[str, str]:
    """The 110 context the other line's agent should see, by name."""
    return {
        "bridge": token(bridge.id),
        "seat": token(bridge.seat.endpoint),
        "direction": bridge.fields.get("direction", DIRECTIONS[bridge.side]),
        "centre": token(config.centre_id),
        "caller": dial_number(bridge.citizen.number),
    }


def uui(values: dict[str, str]) -> str:
    """The ``User-to-User`` header value (RFC 7433): the pairs, hex-encoded."""
    payload = "&".join(f"{k}={quote(v, safe='+:.-_')}" for k, v in values.items())
    return (f"{payload.encode('ascii').hex()};encoding=hex;purpose={UUI_PURPOSE};"
            f"content={UUI_CONTENT}")


def parse_uui(value: str) -> dict[str, str]:
    """The pairs of a ``User-to-User`` value made by :func:`uui` (for tests and the
    peer's tools); anything else gives ``{}``."""
    hex_part, _, params = value.strip().partition(";")
    if f"purpose={UUI_PURPOSE}" not in params.split(";"):
        return {}
    try:
        text = bytes.fromhex(hex_part).decode("ascii")
    except ValueError:
        return {}
    pairs = (p.partition("=") for p in text.split("&") if p)
    return {k: unquote(v) for k, sep, v in pairs if sep}


def headers(bridge: Bridge, config: TransferConfig) -> list[tuple[str, str]]:
    """The SIP headers the leg's INVITE carries, in order; none when turned off."""
    if not config.invite_headers:
        return []
    values = context(bridge, config)
    out = [("User-to-User", uui(values))]
    out += [(HEADER_PREFIX + k.capitalize(), v) for k, v in values.items()]
    if config.call_info_url:
        url = config.call_info_url.replace("{bridge_id}", values["bridge"])
        out.append(("Call-Info", f"<{url}>;purpose=info"))
    return out
