"""What the command line shows: a value from Redis can never act on the terminal."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.records.shown import json_for_terminal, printable

UNSAFE = set(range(0x20)) | set(range(0x7F, 0xA0)) | {0x2028, 0x2029, 0x200E, 0x200F} \
    | set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))


def test_escapes_are_shown_not_sent() -> None:
    title = "张三\x1b]0;pwned\x07\x9b2J\u2028\u202eabc\r\n"
    assert printable(title) == \
        "张三\\x1b]0;pwned\\x07\\x9b2J\\u2028\\u202eabc\\x0d\\x0a"
    assert printable(42) == "42" and printable("110转 Zhang San") == "110转 Zhang San"


def test_json_keeps_its_meaning_and_loses_the_c1_and_separators() -> None:
    text = json.dumps({"name": "a\x9b\u2028\x1bb"}, ensure_ascii=False)
    safe = json_for_terminal(text)
    assert safe == '{"name": "a\\u009b\\u2028\\u001bb"}'
    assert json.loads(safe) == json.loads(text)


@given(st.text())
def test_nothing_a_terminal_acts_on_is_left(value: str) -> None:
    assert not {ord(c) for c in printable(value)} & UNSAFE
    text = json.dumps([value], ensure_ascii=False)
    safe = json_for_terminal(text)
    assert not {ord(c) for c in safe} & UNSAFE
    assert json.loads(safe) == [value]
