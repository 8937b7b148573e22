"""Process mode's check that the citizen is still there before 12345 is dialled: only
Asterisk's own "No such channel" means gone; anything else (no answer in time, AMI gone,
another error) is unknown, and the program goes on as if the citizen were there, so a
key always leaves its record."""

from __future__ import annotations

from typing import Any, cast

import pytest

from gateway.ami.codec import AmiMessage
from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout
from gateway.process.desk import _on_the_line
from gateway.transfer.model import Party

CITIZEN = Party("PJSIP/citizen-00000001", "u-cit")


class Ami:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[tuple[str, dict[str, str]]] = []

    def action(self, name: str, headers: dict[str, str]) -> AmiMessage:
        self.asked.append((name, headers))
        if self.error is not None:
            raise self.error
        return AmiMessage((("Response", "Success"), ("Value", "u-cit")))


def _error(message: str) -> AmiActionError:
    return AmiActionError("Getvar", AmiMessage((("Response", "Error"),
                                                ("Message", message))))


@pytest.mark.parametrize("error,there", [
    (None, True), (_error("No such channel"), False), (_error("Permission denied"), True),
    (AmiTimeout("Getvar: no response in time"), True), (AmiNotConnected("gone"), True),
    (ConnectionResetError(), True)])
def test_only_no_such_channel_means_the_citizen_is_gone(error: Exception | None,
                                                        there: bool) -> None:
    ami = Ami(error)
    assert _on_the_line(cast(Any, ami), CITIZEN) is there
    assert ami.asked == [("Getvar", {"Channel": "u-cit", "Variable": "UNIQUEID"})]


def test_without_a_uniqueid_the_channel_name_is_asked() -> None:
    ami = Ami(None)
    assert _on_the_line(cast(Any, ami), Party("PJSIP/citizen-00000001", ""))
    assert ami.asked == [("Getvar", {"Channel": "PJSIP/citizen-00000001",
                                     "Variable": "UNIQUEID"})]
