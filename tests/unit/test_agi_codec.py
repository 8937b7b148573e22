"""The AGI codec: exact bytes out, exact values in, and no way to smuggle a command."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.agi.codec import (
    HANGUP,
    MAX_COMMAND_BYTES,
    AgiReply,
    EnvReader,
    ReplyParser,
    format_command,
    parse_env,
    quote,
)
from gateway.agi.errors import (
    AgiDeadChannel,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiUsageError,
    UnsafeValueError,
)
from gateway.lab.fakes import agi_env

# An env block as Asterisk 22 sends it (every key, in res_agi's order; see the recorded
# transcript in transcripts/agi_asterisk22.txt), with two arguments.
ENV = b"""agi_network: yes
agi_network_script: incoming
agi_request: agi://127.0.0.1:4573/incoming
agi_channel: PJSIP/citizen-00000000
agi_language: en
agi_type: PJSIP
agi_uniqueid: lab-1795895437.0
agi_version: 22.10.1
agi_callerid: 13800138000
agi_calleridname: Zhang San
agi_callingpres: 0
agi_callingani2: 0
agi_callington: 0
agi_callingtns: 0
agi_dnid: 110
agi_rdnis: unknown
agi_context: linkgw-110
agi_extension: 110
agi_priority: 3
agi_enhanced: 0.0
agi_accountcode:\x20
agi_threadid: 140352384509632
agi_arg_1: first
agi_arg_2: second, with comma
""".splitlines()


def res_agi_parse_args(line: str) -> list[str]:
    """A transcription of res_agi.c parse_args(): how Asterisk splits a command line."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = whitespace = False
    started = False
    for ch in line:
        if ch in " \t" and not quoted and not escaped:
            if started and not whitespace:
                args.append("".join(current))
                current = []
                started = False
            whitespace = True
            continue
        whitespace = False
        if ch == "\\" and not escaped:
            escaped = True
            started = True
            continue
        if ch == '"' and not escaped:
            quoted = not quoted
            started = True
            continue
        escaped = False
        current.append(ch)
        started = True
    if started:
        args.append("".join(current))
    return args


def test_env_block_parses_every_key_and_the_args() -> None:
    """Every agi_* key lands without its prefix; agi_arg_N become args in order."""
    env = parse_env(ENV)
    assert env.channel == "PJSIP/citizen-00000000"
    assert env.uniqueid == "lab-1795895437.0"
    assert env.callerid == "13800138000"
    assert env.calleridname == "Zhang San"
    assert env.script == "incoming"
    assert env.get("accountcode") == ""
    assert env.args == ("first", "second, with comma")
    assert len(env.values) == 24


@pytest.mark.parametrize("line", [
    b"agi_channel PJSIP/x",  # no colon
    b"evil: 1",  # not an agi_ key
    b"200 result=1",  # a reply where the env belongs
    b"agi_callerid: 1",  # a key out of its place
])
def test_env_must_start_with_an_env_line(line: bytes) -> None:
    """Garbage where the env block starts is a protocol error naming the line."""
    with pytest.raises(AgiProtocolError) as info:
        parse_env([line, b"agi_channel: PJSIP/a-1"])
    assert info.value.line == line


def test_env_line_broken_by_a_caller_id_continues_its_value() -> None:
    """As Asterisk 22 sent it for a caller ID of ``13800138000%0D%0AEXEC Hangup``."""
    env = parse_env(agi_env(callerid="13800138000\r\nEXEC Hangup").splitlines())
    assert env.callerid == "13800138000\nEXEC Hangup"
    assert env.get("dnid") == "110"


def test_a_blank_line_inside_a_caller_id_does_not_end_the_env() -> None:
    """CR LF CR LF in the asserted identity, then a forged reply: before agi_threadid a
    blank line is part of a value, so the env is whole and the forged line is data."""
    evil = "1\r\n\r\n200 result=1 (evil)\r\nagi_uniqueid: forged"
    env = parse_env(agi_env(callerid=evil, args=("110",)).splitlines())
    assert env.callerid == "1\n\n200 result=1 (evil)\nagi_uniqueid: forged"
    assert (env.uniqueid, env.get("dnid"), env.args) == ("u-1", "110", ("110",))


def test_a_key_out_of_its_place_cannot_end_the_env_or_overwrite_a_key() -> None:
    """agi_threadid + a blank line forged inside the caller name: still a value."""
    evil = "x\nagi_threadid: 1\n\nagi_arg_1: 12345\n\n200 result=1 (=)"
    env = parse_env(agi_env(calleridname=evil, args=("110",)).splitlines())
    assert env.calleridname == evil and env.args == ("110",)
    assert env.get("threadid") == "140352384509632"


def test_env_reader_ends_at_the_blank_line_after_the_args() -> None:
    reader = EnvReader()
    lines = agi_env(args=("transfer", "PJSIP/citizen-00000000")).splitlines()
    results = [reader.feed(line) for line in [*lines, b""]]
    assert all(r is None for r in results[:-2])
    env = results[-2] or results[-1]
    assert env is not None and env.args == ("transfer", "PJSIP/citizen-00000000")


def test_env_larger_than_64_kib_is_refused() -> None:
    reader = EnvReader()
    reader.feed(b"agi_network: yes")
    with pytest.raises(AgiProtocolError, match="too large"):
        for _ in range(20):
            reader.feed(b"x" * 4000)


def test_env_rejects_bytes_that_are_not_utf8() -> None:
    with pytest.raises(AgiProtocolError, match="not UTF-8"):
        parse_env([b"agi_request: x", b"agi_channel: PJSIP/a-\xff1"])


def test_env_missing_its_end_is_refused() -> None:
    with pytest.raises(AgiProtocolError, match="before agi_threadid"):
        parse_env([b"agi_request: x", b"agi_channel: PJSIP/a-1"])


def test_format_quotes_every_argument() -> None:
    assert format_command("GET VARIABLE", "BRIDGEPEER") == b'GET VARIABLE "BRIDGEPEER"\n'
    assert format_command("SET VARIABLE", "X", 'say "hi" \\ ok') == \
        b'SET VARIABLE "X" "say \\"hi\\" \\\\ ok"\n'
    assert format_command("ANSWER") == b"ANSWER\n"


@pytest.mark.parametrize("value,reason", [
    ("a\nANSWER", "LF"), ("a\r\nHANGUP", "CR"), ("nul\x00", "NUL"),
])
def test_format_refuses_line_breaks(value: str, reason: str) -> None:
    with pytest.raises(UnsafeValueError, match=reason):
        format_command("SET VARIABLE", "X", value)


def test_format_refuses_a_line_longer_than_asterisk_reads() -> None:
    with pytest.raises(UnsafeValueError, match="longer than 2048"):
        format_command("SET VARIABLE", "X", "x" * MAX_COMMAND_BYTES)


def test_format_refuses_a_command_word_that_is_not_one() -> None:
    with pytest.raises(UnsafeValueError):
        format_command("HANGUP\nEXEC", "x")


@given(st.text())
def test_no_value_yields_a_second_command_line(value: str) -> None:
    """Whatever the value, the output is one line, or the value is refused."""
    try:
        line = format_command("SET VARIABLE", "V", value)
    except UnsafeValueError:
        assert any(c in value for c in "\r\n\x00") or not value.isprintable() \
            or len(value.encode("utf-8", "surrogatepass")) > 2000
        return
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert b"\r" not in line


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n\x00",
                                               blacklist_categories=("Cs",))),  # type: ignore[arg-type]
                max_size=4))
def test_asterisk_reads_back_exactly_what_was_quoted(values: list[str]) -> None:
    """format → res_agi's own splitting gives the command words and the exact values."""
    line = format_command("EXEC", *values).decode().rstrip("\n")
    assert res_agi_parse_args(line) == ["EXEC", *values]


def test_quote_escapes_backslash_then_quote() -> None:
    assert quote('\\"') == '"\\\\\\""'


def feed_all(lines: list[bytes]) -> list[object]:
    parser = ReplyParser()
    return [r for r in (parser.feed(line) for line in lines) if r is not None]


def test_replies_200_with_data_and_endpos() -> None:
    assert feed_all([b"200 result=1 (PJSIP/citizen-00000000)\n"]) == \
        [AgiReply(1, "PJSIP/citizen-00000000", None, "1")]
    assert feed_all([b"200 result=0\n"]) == [AgiReply(0, None, None, "0")]
    assert feed_all([b"200 result=-1\n"]) == [AgiReply(-1, None, None, "-1")]
    assert feed_all([b"200 result=0 endpos=10560\n"]) == [AgiReply(0, None, 10560, "0")]
    assert feed_all([b"200 result=1 (a (nested) value) endpos=7\n"]) == \
        [AgiReply(1, "a (nested) value", 7, "1")]


def test_get_data_replies_keep_the_digits_as_typed() -> None:
    """GET DATA: ``result`` is the digits (leading zeros and * kept in ``text``)."""
    assert feed_all([b"200 result=007\n"]) == [AgiReply(7, None, None, "007")]
    assert feed_all([b"200 result=*1 (timeout)\n"]) == [AgiReply(0, "timeout", None, "*1")]
    assert feed_all([b"200 result= (timeout)\n"]) == [AgiReply(0, "timeout", None, "")]
    assert not AgiReply(-1).ok


def test_reply_errors_and_hangup() -> None:
    got = feed_all([
        b"510 Invalid or unknown command\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"HANGUP\n",
    ])
    assert isinstance(got[0], AgiInvalidCommand) and got[0].status == 510
    assert isinstance(got[1], AgiDeadChannel) and "dead channel" in got[1].reply
    assert got[2] is HANGUP


def test_reply_520_gathers_its_usage_text() -> None:
    """A 520 spans lines until ``520 End of proper usage.``; the usage is kept."""
    got = feed_all([
        b"520-Invalid command syntax.  Proper usage follows:\n",
        b" Usage: GET VARIABLE <variablename>\n",
        b"520 End of proper usage.\n",
    ])
    assert len(got) == 1 and isinstance(got[0], AgiUsageError)
    assert got[0].reply == " Usage: GET VARIABLE <variablename>"


def test_reply_100_trying_is_interim() -> None:
    assert feed_all([b"100 result=0 Trying...\n", b"200 result=0\n"]) == \
        [AgiReply(0, None, None, "0")]


@pytest.mark.parametrize("line", [b"300 what\n", b"200 result=abc\n", b"\n"])
def test_unknown_reply_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        ReplyParser().feed(line)
