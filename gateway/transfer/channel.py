"""What the AGI scripts read from Asterisk's channels, in one round trip each.

A script asks for every value it needs in one ``GET FULL VARIABLE``: an expression of
``BASE64_ENCODE(=…)`` terms joined by commas. Base64 keeps caller IDs with CR, LF,
quotes or commas from forging a reply line or splitting the list, and the record gets
their exact bytes; the ``=`` before each value keeps ``BASE64_ENCODE`` of an empty value
from logging a warning.

The citizen's channel name comes to the key's AGI as an argument (the dialplan passes
``${BRIDGEPEER}``) and is checked with :func:`channel_name` before it is written into an
expression Asterisk evaluates (``IMPORT``, ``SHARED``) or into an AMI action.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Sequence
from typing import Protocol

from gateway.transfer.model import DIRECTIONS, KeyPress, Party, dialplan_time
from gateway.transfer.phase import Mode

#: Channel names as Asterisk makes them (``PJSIP/seat1-0000002a``,
#: ``Local/110@ctx-00000001;1``): no comma, parenthesis, brace, dollar, quote or space.
_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_.@:+;=~#*-]{1,200}\Z")


class Session(Protocol):
    """What the scripts need from an AGI session (FastAGI or process mode)."""

    @property
    def env_channel(self) -> str: ...

    @property
    def env_uniqueid(self) -> str: ...

    @property
    def env_args(self) -> tuple[str, ...]: ...

    async def get_full_variable(self, expression: str) -> str | None: ...

    async def set_variable(self, name: str, value: str) -> None: ...

    async def stream_file(self, sound: str) -> None: ...


class ChannelReadError(Exception):
    """Asterisk's answer to a composite read did not have the expected shape."""

    code = "channel_read"


def channel_name(value: str) -> str | None:
    """``value`` if it is a channel name as Asterisk makes them, else None."""
    return value if _CHANNEL.match(value) else None


def _terms(inner: Sequence[str], channel: str | None = None) -> list[str]:
    def of(expr: str) -> str:
        if channel and expr.startswith("SHARED("):
            return f"{expr[:-1]},{channel})"
        return f"IMPORT({channel},{expr})" if channel else expr

    return [f"${{BASE64_ENCODE(=${{{of(expr)}}})}}" for expr in inner]


#: A party's values. The dialplan keeps a citizen's caller ID exactly as received in
#: SHARED(LINKGW_CALLER) (base64) before it cleans the channel's own (AMI events carry
#: CALLERID unescaped: a CR LF in it would split them); the record takes the exact one.
PARTY = ("UNIQUEID", "CHANNEL(linkedid)", "CHANNEL(endpoint)", "CALLERID(num)",
         "CALLERID(name)", "SHARED(LINKGW_CALLER)")


def _decode(value: str) -> str:
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError) as exc:
        raise ChannelReadError(f"not base64: {value[:40]!r}") from exc
    if not text.startswith("="):
        raise ChannelReadError(f"value without its '=': {text[:40]!r}")
    return text[1:]


async def read(session: Session, terms: list[str]) -> list[str]:
    """Evaluate ``terms`` in one round trip; their values, decoded, in order.

    The first term is a fresh random token that Asterisk echoes back: a reply that does
    not carry it was not Asterisk's answer to this read (a reply line forged inside an
    env value), and is refused."""
    token = secrets.token_hex(8)
    reply = await session.get_full_variable(",".join([f"${{BASE64_ENCODE(={token})}}",
                                                      *terms]))
    values = (reply or "").split(",")
    if len(values) != len(terms) + 1:
        raise ChannelReadError(f"asked for {len(terms)} values, got {len(values) - 1}")
    decoded = [_decode(v) for v in values]
    if decoded[0] != token:
        raise ChannelReadError("the reply does not carry this read's token")
    return decoded[1:]


def _party(values: list[str], channel: str) -> Party:
    uniqueid, linkedid, endpoint, number, name, exact = values
    kept_num, sep, kept_name = exact.partition("|")
    if sep:
        try:
            number, name = _decode(kept_num), _decode(kept_name)
        except ChannelReadError:
            pass  # not what the dialplan writes: the channel's own caller ID stands
    return Party(channel, uniqueid, linkedid, number, name, endpoint)


def decoded(values: Sequence[str]) -> list[str]:
    """Values as the dialplan writes them (``BASE64_ENCODE(=…)``), decoded; raises
    :class:`ChannelReadError` on one that is not."""
    return [_decode(v) for v in values]


def party_of(values: Sequence[str], channel: str) -> Party:
    """A party from its :data:`PARTY` values, decoded (as a read gives them)."""
    return _party(list(values), channel)


async def read_own(session: Session) -> Party:
    """The AGI's own channel (a citizen's call reaching a line)."""
    party = _party(await read(session, _terms(PARTY)), session.env_channel)
    if not party.uniqueid:
        return Party(party.channel, session.env_uniqueid, party.linkedid, party.number,
                     party.name, party.endpoint)
    return party


async def read_arrival(session: Session, headers: Sequence[str]) -> tuple[Party, list[str]]:
    """The AGI's own channel (a call arriving over the trunk) and the values of the SIP
    ``headers`` its INVITE carried ("" for each one absent), exactly as received."""
    values = await read(session, _terms((*PARTY, *(f"PJSIP_HEADER(read,{h})"
                                                   for h in headers))))
    party = _party(values[:len(PARTY)], session.env_channel)
    if not party.uniqueid:
        party = Party(party.channel, session.env_uniqueid, party.linkedid, party.number,
                      party.name, party.endpoint)
    return party, values[len(PARTY):]


async def read_endpoint(session: Session) -> str:
    """The AGI's own channel's endpoint (the seat that answered)."""
    return (await read(session, _terms(("CHANNEL(endpoint)",))))[0]


async def read_key(session: Session, peer: str, mode: Mode) -> KeyPress:
    """Both parties of the key-presser's call and the citizen's flags."""
    own = _terms((*PARTY, "LINKGW_SIDE", "LINKGW_KEY_AT"))
    theirs = _terms(PARTY, peer)
    shared = _terms([f"SHARED({name},{peer})" for name in
                     ("LINKGW_EMERGENCY", "LINKGW_ACTIVE", "LINKGW_LAST")])
    values = await read(session, own + theirs + shared)
    seat = _party(values[0:6], session.env_channel)
    side = values[6] if values[6] in DIRECTIONS else "110"
    citizen = _party(values[8:14], peer)
    emergency, active, last = values[14:17]
    return KeyPress(citizen, seat, side, mode, emergency, active, last,
                    key_at=dialplan_time(values[7]) or 0.0)


def answer(result: str, bridge_id: str = "", prompt: str = "", code: str = "",
           opened: bool = False) -> tuple[str, str]:
    """The one variable a script sets for the dialplan:
    ``RESULT|bridge id|prompt|code|opened``."""
    return "LINKGW_ANSWER", f"{result.upper()}|{bridge_id}|{prompt}|{code}|{int(opened)}"
