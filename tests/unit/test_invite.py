"""What the INVITE to the other line carries: exact values, and hostile caller IDs that
change a value's text but never add, split or end a header (gateway/transfer/invite.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ami.codec import encode_action
from gateway.config import ConfigError, TransferConfig, load_config
from gateway.transfer import invite
from gateway.transfer.actions import originate_headers
from gateway.transfer.model import Bridge, Party
from gateway.transfer.phase import Phase

BID = "20261202201224bd1edf"
CONFIG = TransferConfig(centre_id="110-lab",
                        call_info_url="https://110-gw.example/bridges/{bridge_id}")
HOSTILE = [
    'Zhang "San"\r\nX-Injected: 1', "张三", "a\u2028b\u0085c", "x" * 4096, "\r\n\r\n",
    "<sip:evil@x>", "a,b\\c", "\x00\x1b[2J", "\u200b\ufeffhidden",
]


def bridge(number: str = "13800138000", name: str = "Zhang San", side: str = "110",
           plan: tuple[str, ...] = ("PJSIP/12345@trunk-12345",)) -> Bridge:
    return Bridge(BID, Party("PJSIP/citizen-1", "u1", number=number, name=name),
                  Party("PJSIP/seat1-2", "u2", endpoint="seat1"), side, Phase(plan=plan))


def test_the_headers_are_exactly_these() -> None:
    """UUI (hex, with its purpose), the X- headers, then Call-Info with the bridge's id
    in the configured URL."""
    payload = f"bridge={BID}&seat=seat1&direction=110-%3E12345&centre=110-lab" \
              "&caller=13800138000"
    assert invite.headers(bridge(), CONFIG) == [
        ("User-to-User", payload.encode("ascii").hex()
         + ";encoding=hex;purpose=linkgw;content=linkgw-context"),
        ("X-Linkgw-Bridge", BID), ("X-Linkgw-Seat", "seat1"),
        ("X-Linkgw-Direction", "110->12345"), ("X-Linkgw-Centre", "110-lab"),
        ("X-Linkgw-Caller", "13800138000"),
        ("Call-Info", f"<https://110-gw.example/bridges/{BID}>;purpose=info"),
    ]


def test_the_uui_reads_back_as_the_context() -> None:
    """What a 12345 desktop decodes from User-to-User is the record's values."""
    values = dict(invite.headers(bridge(), CONFIG))
    assert invite.parse_uui(values["User-to-User"]) == {
        "bridge": BID, "seat": "seat1", "direction": "110->12345", "centre": "110-lab",
        "caller": "13800138000"}
    assert invite.parse_uui("zz;encoding=hex;purpose=linkgw") == {}
    assert invite.parse_uui("6162;encoding=hex;purpose=isdn-uui") == {}


def test_the_reverse_direction_and_its_prefix() -> None:
    """A 12345 agent's key: the direction says so, and the 110 seat sees 12345转."""
    b = bridge(side="12345")
    assert dict(invite.headers(b, CONFIG))["X-Linkgw-Direction"] == "12345->110"
    assert invite.caller_id(b, CONFIG) == '"12345转 Zhang San" <13800138000>'


def test_the_display_name_is_the_prefix_and_the_name_cleaned() -> None:
    assert invite.caller_id(bridge(), CONFIG) == '"110转 Zhang San" <13800138000>'
    assert invite.caller_id(bridge(name='张"三"\r\n'), CONFIG) == '"110转 张三" <13800138000>'
    assert invite.caller_id(bridge(name=""), replace(CONFIG, display_prefix="")) == \
        "<13800138000>"
    assert invite.caller_id(bridge(number="+86 138-0013\r\n8000"), CONFIG) == \
        '"110转 Zhang San" <+8613800138000>'


def test_turned_off_or_not_pjsip_no_header_goes_out() -> None:
    """``invite_headers: false``, or a leg that is not PJSIP (PJSIP_HEADER would fail)."""
    assert invite.headers(bridge(), replace(CONFIG, invite_headers=False)) == []
    local = originate_headers(bridge(plan=("Local/12345@out",)), 0, CONFIG)
    assert not [v for k, v in local if v.startswith("PJSIP_HEADER")]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_caller_id_never_adds_or_breaks_a_header(hostile: str) -> None:
    """Each header keeps its name; no value holds a control, separator, quote or angle
    character; the Originate encodes as one AMI action (no CR LF can end it)."""
    b = bridge(number=hostile, name=hostile)
    got = invite.headers(b, CONFIG)
    assert [k for k, _ in got] == [k for k, _ in invite.headers(bridge(), CONFIG)]
    for _, value in got:
        assert value.isascii() and value.isprintable() and '"' not in value
    shown = invite.caller_id(b, CONFIG)
    name = shown.rsplit(" <", 1)[0] if shown.startswith('"') else ""
    assert shown.count('"') in (0, 2) and shown.count("<") == 1 and shown.endswith(">")
    assert all(c.isprintable() for c in shown) and "\\" not in shown and "," not in shown
    assert len(name) <= 2 + len("110转 ") + invite.NAME_MAX
    encode_action("Originate", "a1", originate_headers(b, 0, CONFIG))  # raises on CR/LF


@given(st.text(max_size=300), st.text(max_size=300))
def test_any_caller_id_gives_safe_headers(number: str, name: str) -> None:
    """Whatever the caller ID, the values are printable ASCII (the display name printable
    text) and the action encodes."""
    b = bridge(number=number, name=name)
    for _, value in invite.headers(b, CONFIG):
        assert value.isascii() and value.isprintable()
    assert invite.caller_id(b, CONFIG).isprintable()
    encode_action("Originate", "a1", originate_headers(b, 0, CONFIG))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("display_prefix", '"110"', "printable characters"),
    ("display_prefix", "110\u2028", "printable characters"),
    ("display_prefix", "x" * 17, "at most 16"),
    ("centre_id", "110 centre", "1 to 32"),
    ("call_info_url", "https://gw/b/{bridge_id}>,x", "http(s) URL"),
    ("call_info_url", "javascript:alert(1)", "http(s) URL"),
])
def test_config_refuses_values_that_would_break_the_invite(key: str, value: str,
                                                           message: str) -> None:
    text = f"transfer:\n  {key}: {json.dumps(value)}\n"  # YAML reads JSON's escapes
    with pytest.raises(ConfigError) as err:
        load_config(text, "gw.yaml", {}, secrets=False)
    assert f"gw.yaml:2: transfer.{key}:" in str(err.value) and message in str(err.value)
