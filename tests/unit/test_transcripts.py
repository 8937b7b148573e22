"""Transcripts recorded from the lab's real Asterisk 22, replayed through the parsers.

Recorded by hand from the lab (see the README's conformance notes): ``ami_asterisk22.txt``
is the raw AMI stream of a Challenge/MD5 login, a Redirect of a gone channel,
CoreShowChannels and an async Originate nobody answered; ``agi_asterisk22.txt`` is a
FastAGI session: the env block, then the replies to GET VARIABLE (set and unset),
GET DATA (timed out), an unknown command, a wrong usage, the HANGUP notice and a 511.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from gateway.agi.codec import HANGUP, AgiReply, ReplyParser, parse_env
from gateway.agi.errors import AgiDeadChannel, AgiInvalidCommand, AgiUsageError
from gateway.ami.client import AmiProtocol, AmiResult
from gateway.ami.codec import AmiMessage, AmiParser
from gateway.lab.fakes import null_log

HERE = Path(__file__).parent / "transcripts"


def test_ami_transcript_parses_into_whole_messages() -> None:
    raw = (HERE / "ami_asterisk22.txt").read_bytes()
    parser = AmiParser()
    messages = [m for i in range(0, len(raw), 7) for m in parser.feed(raw[i:i + 7])]
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    by_id: dict[str, AmiMessage] = {}
    for m in messages:  # OriginateResponse is an event that also says "Response:"
        if m.is_response and not m.event:
            by_id.setdefault(m.action_id, m)
    assert by_id["t-1"].get("Challenge").isdigit()
    assert by_id["t-2"].get("Message") == "Authentication accepted"
    assert (by_id["t-3"].get("Response"), by_id["t-3"].get("Message")) == \
        ("Error", "Channel does not exist: PJSIP/citizen-ffffffff")
    assert by_id["t-4"].get("EventList") == "start"
    assert by_id["t-5"].get("Message") == "Originate successfully queued"
    done = [m for m in messages if m.event == "OriginateResponse"]
    assert [(m.get("Uniqueid"), m.get("Response")) for m in done] == \
        [("20261128000000abcdef-a0", "Failure")]


class ReplayThroughTheProtocol(SynchronousTestCase):
    def test_event_list_and_error_fire_their_deferreds(self) -> None:
        """The recorded bytes fire the right Deferreds of a protocol whose ActionIDs were
        t-3 and t-4 (the ids the recording used)."""
        events: list[AmiMessage] = []
        protocol = AmiProtocol(Clock(), events.append, null_log())
        protocol.makeConnection(StringTransport())
        protocol._prefix = "t-"
        protocol._ids = iter([3, 4])  # type: ignore[assignment]
        redirect = protocol.send_action("Redirect")
        listing = protocol.send_action("CoreShowChannels")
        protocol.dataReceived((HERE / "ami_asterisk22.txt").read_bytes())
        failure = self.failureResultOf(redirect)
        assert "Channel does not exist" in str(failure.value)
        result: AmiResult = self.successResultOf(listing)
        assert result.response.get("EventList") == "start"
        assert any(e.event == "OriginateResponse" for e in events)


def test_agi_transcript_env_and_replies() -> None:
    raw = (HERE / "agi_asterisk22.txt").read_bytes()
    head, _, tail = raw.partition(b"\n\n")
    env = parse_env(head.split(b"\n"))
    assert (env.script, env.get("extension"), env.get("context")) == \
        ("conformance", "conformance", "lab-citizen")
    assert env.channel.startswith("PJSIP/citizen-") and env.get("accountcode") == ""
    parser = ReplyParser()
    replies = [r for line in tail.splitlines(keepends=True)
               if (r := parser.feed(line)) is not None]
    assert replies[0] == AgiReply(1, "Zhang San", None, "1")
    assert replies[1] == AgiReply(0, None, None, "0")
    assert replies[2] == AgiReply(0, "timeout", None, "")
    assert isinstance(replies[3], AgiInvalidCommand)
    assert isinstance(replies[4], AgiUsageError) and "variablename" in replies[4].reply
    assert replies[5] is HANGUP
    assert isinstance(replies[6], AgiDeadChannel)
