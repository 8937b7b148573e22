"""The AMI codec and client on fake transports and a fake clock."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from gateway.ami.client import AmiClient, AmiProtocol, AmiResult, EventBus
from gateway.ami.codec import (
    MAX_CALLER_ID_LINES,
    AmiMessage,
    AmiParser,
    UnsafeHeaderError,
    encode_action,
)
from gateway.ami.errors import AmiActionError, AmiNotConnected, AmiTimeout

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def test_encode_exact_bytes() -> None:
    assert encode_action("Redirect", "a1", [("Channel", "PJSIP/c-1"), ("Exten", "s")]) == (
        b"Action: Redirect\r\nActionID: a1\r\nChannel: PJSIP/c-1\r\nExten: s\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["x\r\nAction: Hangup", "x\nChannel: y", "nul\x00"])
def test_encode_refuses_crlf_in_values(value: str) -> None:
    with pytest.raises(UnsafeHeaderError):
        encode_action("Originate", "a1", {"CallerID": value})


def test_encode_refuses_bad_keys() -> None:
    with pytest.raises(UnsafeHeaderError):
        encode_action("Originate", "a1", {"Caller ID": "1"})


@given(st.dictionaries(st.from_regex(r"[A-Za-z]{1,10}", fullmatch=True), st.text(), max_size=5))
def test_no_value_starts_a_second_action(headers: dict[str, str]) -> None:
    """Any header values: one message out (one blank line at its end), or refused."""
    try:
        data = encode_action("Setvar", "a1", headers)
    except UnsafeHeaderError:
        assert any(any(c in v for c in "\r\n\x00") or not v.isprintable()
                   for v in headers.values())
        return
    assert data.count(b"\r\n\r\n") == 1 and data.endswith(b"\r\n\r\n")
    messages = AmiParser(starts=("action",)).feed(BANNER + data)
    assert len(messages) == 1 and messages[0].get("Action") == "Setvar"


def test_parser_keeps_banner_order_and_repeated_keys() -> None:
    parser = AmiParser()
    assert parser.feed(BANNER + b"Response: Success\r\nAction") == []
    got = parser.feed(b"ID: 1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\nEvent: X\r\n\r\n")
    assert parser.banner == "Asterisk Call Manager/9.0.0"
    assert got[0].action_id == "1" and got[0].get_all("Variable") == ["A=1", "B=2"]
    assert got[1].event == "X" and not got[1].is_response


def _protocol() -> tuple[AmiProtocol, StringTransport, Clock, list[AmiMessage]]:
    clock = Clock()
    events: list[AmiMessage] = []
    protocol = AmiProtocol(clock, events.append, log=_NullLog())
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(BANNER)
    return protocol, transport, clock, events


class _NullLog:
    def __getattr__(self, name: str) -> object:
        return lambda *a, **k: None


class ProtocolTests(SynchronousTestCase):
    def test_response_fires_the_action_by_its_id(self) -> None:
        protocol, transport, _, _ = _protocol()
        d = protocol.send_action("Ping")
        action_id = AmiParser(starts=("action",)).feed(BANNER + transport.value())[0].action_id
        protocol.dataReceived(f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n"
                              .encode())
        result = self.successResultOf(d)
        assert result.response.get("Ping") == "Pong"

    def test_error_response_fails_with_its_message(self) -> None:
        protocol, transport, _, _ = _protocol()
        d = protocol.send_action("Redirect", {"Channel": "PJSIP/gone-1"})
        action_id = AmiParser(starts=("action",)).feed(BANNER + transport.value())[0].action_id
        protocol.dataReceived(f"Response: Error\r\nActionID: {action_id}\r\n"
                              "Message: Channel does not exist: PJSIP/gone-1\r\n\r\n".encode())
        failure = self.failureResultOf(d, AmiActionError)
        assert "Channel does not exist" in str(failure.value)

    def test_event_list_collects_until_complete(self) -> None:
        protocol, transport, _, _events = _protocol()
        d = protocol.send_action("ConfbridgeList", {"Conference": "c"})
        aid = AmiParser(starts=("action",)).feed(BANNER + transport.value())[0].action_id
        protocol.dataReceived(
            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
            f"Event: ConfbridgeList\r\nActionID: {aid}\r\nChannel: A\r\n\r\n"
            f"Event: ConfbridgeList\r\nActionID: {aid}\r\nChannel: B\r\n\r\n".encode())
        assert not d.called
        protocol.dataReceived(f"Event: ConfbridgeListComplete\r\nActionID: {aid}\r\n"
                              "EventList: Complete\r\nListItems: 2\r\n\r\n".encode())
        result: AmiResult = self.successResultOf(d)
        assert [e.get("Channel") for e in result.events] == ["A", "B"]

    def test_unsolicited_events_go_to_the_bus(self) -> None:
        protocol, _, _, events = _protocol()
        protocol.dataReceived(b"Event: ConfbridgeJoin\r\nConference: linkgw-1\r\n\r\n")
        assert [e.event for e in events] == ["ConfbridgeJoin"]

    def test_timeout_on_the_injected_clock(self) -> None:
        protocol, _, clock, _ = _protocol()
        d = protocol.send_action("Ping", timeout=3.0)
        clock.advance(2.9)
        assert not d.called
        clock.advance(0.2)
        self.failureResultOf(d, AmiTimeout)
        assert protocol.pending == {}

    def test_connection_loss_fails_every_pending_action(self) -> None:
        protocol, _, clock, _ = _protocol()
        d1 = protocol.send_action("Ping")
        d2 = protocol.send_action("Originate")
        protocol.connectionLost()
        self.failureResultOf(d1, AmiNotConnected)
        self.failureResultOf(d2, AmiNotConnected)
        assert clock.getDelayedCalls() == []

    def test_a_list_completed_before_its_response_keeps_the_link(self) -> None:
        protocol, transport, _, _ = _protocol()
        d = protocol.send_action("CoreShowChannels")
        action_id = AmiParser(starts=("action",)).feed(BANNER + transport.value())[0].action_id
        protocol.dataReceived(f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\n"
                              "EventList: Complete\r\nListItems: 0\r\n\r\n".encode())
        result = self.successResultOf(d)
        assert result.events == () and not transport.disconnecting
        late = protocol.send_action("Ping")
        ping_id = AmiParser(starts=("action",)).feed(BANNER + transport.value())[1].action_id
        protocol.dataReceived(f"Response: Success\r\nActionID: {ping_id}\r\n\r\n".encode())
        self.successResultOf(late)

    def test_crlf_in_a_header_sends_nothing(self) -> None:
        protocol, transport, _, _ = _protocol()
        with pytest.raises(UnsafeHeaderError):
            protocol.send_action("Originate", {"CallerID": "a\r\nAction: Hangup"})
        assert transport.value() == b"" and protocol.pending == {}


class _Endpoint:
    """A client endpoint that connects each protocol to a StringTransport at once."""

    def __init__(self) -> None:
        self.protocols: list[AmiProtocol] = []
        self.transports: list[StringTransport] = []

    def connect(self, factory: object) -> defer.Deferred[AmiProtocol]:
        protocol = factory.buildProtocol(None)  # type: ignore[attr-defined]
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.protocols.append(protocol)
        self.transports.append(transport)
        return defer.succeed(protocol)


class _Refusing:
    """An endpoint where nothing listens."""

    def __init__(self) -> None:
        self.tries = 0

    def connect(self, factory: object) -> defer.Deferred[AmiProtocol]:
        self.tries += 1
        return defer.fail(ConnectionRefusedError("Connection was refused by other side"))


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def __getattr__(self, level: str) -> object:
        return lambda event, **kw: self.lines.append((event, kw))

    def events(self) -> list[str]:
        return [event for event, _ in self.lines]


class ClientTests(SynchronousTestCase):
    def _client(self, auth: str, endpoint: object = None, log: object = None
                ) -> tuple[AmiClient, _Endpoint, Clock]:
        clock, endpoint = Clock(), endpoint or _Endpoint()
        client = AmiClient(endpoint, "linkgw", "s3cret", clock=clock,  # type: ignore[arg-type]
                           log=log or _NullLog(), auth=auth)
        client.service.startService()
        return client, endpoint, clock  # type: ignore[return-value]

    def test_nothing_listening_is_logged_once_while_it_lasts(self) -> None:
        log, refusing = _Log(), _Refusing()
        _, _, clock = self._client("md5", refusing, log)
        for _ in range(20):
            clock.advance(10)
        assert refusing.tries > 5
        assert log.events().count("ami.connect_failed") == 1
        assert "refused" in str(log.lines[0][1]["error"])

    def test_a_rejected_secret_is_logged(self) -> None:
        log = _Log()
        _, endpoint, _ = self._client("plain", log=log)
        login = self._sent(endpoint)[0]
        endpoint.protocols[0].dataReceived(
            BANNER + f"Response: Error\r\nActionID: {login.action_id}\r\n"
            "Message: Authentication failed\r\n\r\n".encode())
        assert log.events() == ["ami.login_failed"]
        assert "Authentication failed" in str(log.lines[0][1]["error"])

    def test_a_server_without_a_banner_still_logs_in(self) -> None:
        """The challenge's answer is the first line: it is a message, not the banner."""
        client, endpoint, _ = self._client("md5")
        protocol = endpoint.protocols[0]
        challenge = self._sent(endpoint)[0]
        protocol.dataReceived(f"Response: Success\r\nActionID: {challenge.action_id}\r\n"
                              "Challenge: 1\r\n\r\n".encode())
        login = self._sent(endpoint)[1]
        protocol.dataReceived(f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n"
                              .encode())
        assert client.connected and protocol.parser.banner == ""

    def test_no_answer_to_the_login_is_logged_with_what_the_server_said(self) -> None:
        log = _Log()
        client, endpoint, clock = self._client("md5", log=log)
        endpoint.protocols[0].dataReceived(b"SSH-2.0-OpenSSH_9.2\r\n")
        clock.advance(5)
        assert not client.connected
        assert log.events() == ["ami.login_failed"]
        assert "SSH-2.0" in str(log.lines[0][1]["error"])

    @staticmethod
    def _sent(endpoint: _Endpoint, index: int = -1) -> list[AmiMessage]:
        return AmiParser(starts=("action",)).feed(BANNER + endpoint.transports[index].value())

    def test_md5_login_then_actions(self) -> None:
        """Challenge → Login with md5(challenge + secret) → connected."""
        client, endpoint, _ = self._client("md5")
        protocol = endpoint.protocols[0]
        protocol.dataReceived(BANNER)
        challenge = self._sent(endpoint)[0]
        assert challenge.get("Action") == "Challenge"
        protocol.dataReceived(f"Response: Success\r\nActionID: {challenge.action_id}\r\n"
                              "Challenge: 840415273\r\n\r\n".encode())
        login = self._sent(endpoint)[1]
        assert login.get("Key") == hashlib.md5(b"840415273s3cret").hexdigest()
        assert login.get("Secret") == ""
        assert not client.connected
        protocol.dataReceived(f"Response: Success\r\nActionID: {login.action_id}\r\n"
                              "Message: Authentication accepted\r\n\r\n".encode())
        assert client.connected

    def test_action_without_connection_fails_at_once(self) -> None:
        client, _, _ = self._client("plain")
        self.failureResultOf(client.action("Ping"), AmiNotConnected)

    def test_reconnects_after_loss(self) -> None:
        """Connection lost → not connected, pending fail → ClientService connects again."""
        client, endpoint, clock = self._client("plain")
        protocol = endpoint.protocols[0]
        login = self._sent(endpoint)[0]
        protocol.dataReceived(BANNER + f"Response: Success\r\nActionID: {login.action_id}\r\n\r\n"
                              .encode())
        assert client.connected
        pending = client.action("Ping")
        protocol.connectionLost(Failure(ConnectionLost("manager restarted")))
        self.failureResultOf(pending, AmiNotConnected)
        assert not client.connected
        clock.advance(15)
        assert len(endpoint.protocols) == 2


def test_event_bus_filters_by_name_and_by_channel_or_linkedid() -> None:
    bus = EventBus(_NullLog())
    by_name: list[str] = []
    by_call: list[str] = []
    bus.subscribe(lambda m: by_name.append(m.event), ["Hangup"])
    bus.subscribe(lambda m: by_call.append(m.event), where={"Linkedid": "1795.0"})
    for event, linkedid in (("Newchannel", "1795.0"), ("Hangup", "1795.9"),
                            ("Hangup", "1795.0")):
        bus.publish(AmiMessage((("Event", event), ("Linkedid", linkedid))))
    assert by_name == ["Hangup", "Hangup"]
    assert by_call == ["Newchannel", "Hangup"]


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    bus = EventBus(_NullLog())
    got: list[str] = []

    def broken(message: AmiMessage) -> None:
        raise RuntimeError("bug in a subscriber")

    bus.subscribe(broken)
    bus.subscribe(lambda m: got.append(m.event))
    bus.publish(AmiMessage((("Event", "X"),)))
    assert got == ["X"]


# A Hangup as Asterisk 22 wrote it for a caller ID with CR LF CR LF (seen in the lab).
SPLIT_HANGUP = (b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: PJSIP/citizen-00000000\r\n"
                b"ChannelState: 6\r\nChannelStateDesc: Up\r\n"
                b"CallerIDNum: 1\r\n\r\n200 result=1 (forged)\r\nCallerIDName: \xe5\xbc\xa0\r\n"
                b"ConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\n"
                b"Language: en\r\nAccountCode: \r\nContext: linkgw-110\r\nExten: 110\r\n"
                b"Priority: 1\r\nUniqueid: u-1\r\nLinkedid: u-1\r\nCause: 16\r\n\r\n")


def test_a_caller_id_with_line_breaks_stays_inside_its_event() -> None:
    """Caller-ID values continue up to the header Asterisk always writes next: the
    blank line inside one ends nothing, and the event keeps its tail (Uniqueid)."""
    parser = AmiParser()
    got = parser.feed(BANNER + SPLIT_HANGUP)
    assert len(got) == 1 and parser.injected == 0
    assert got[0].get("CallerIDNum") == "1\n\n200 result=1 (forged)"
    assert (got[0].get("CallerIDName"), got[0].get("Uniqueid")) == ("张", "u-1")


def test_an_event_forged_inside_a_caller_id_is_dropped() -> None:
    """The caller ID fakes the rest of the snapshot and a whole Hangup of someone else;
    the real tail of the event then arrives as a block that is no message: the forged
    event is dropped, the tail skipped, the next real event read."""
    forged = (b"1\r\nCallerIDName: x\r\nConnectedLineNum: x\r\nConnectedLineName: x\r\n"
              b"Language: en\r\n\r\nEvent: Hangup\r\nPrivilege: call,all\r\nUniqueid: victim\r\n"
              b"Cause: 16")
    real = SPLIT_HANGUP.replace(b"1\r\n\r\n200 result=1 (forged)", forged)
    parser = AmiParser()
    got = parser.feed(BANNER + real + b"Event: Newexten\r\nUniqueid: u-2\r\n\r\n")
    assert "victim" not in [m.get("Uniqueid") for m in got]
    assert got[-1].get("Uniqueid") == "u-2" and parser.injected == 1


def test_bytes_without_a_newline_are_bounded() -> None:
    """32 MB without a newline: never held whole; the line is counted and dropped, and
    what follows its end is read again."""
    parser = AmiParser()
    parser.feed(BANNER)
    chunk = b"x" * (1 << 20)
    for _ in range(32):
        parser.feed(chunk)
        assert len(parser._buffer) <= (1 << 20) + 65536
    assert parser.oversized >= 1
    got = parser.feed(b"tail\r\n\r\nEvent: X\r\n\r\n")
    assert [m.event for m in got] == ["X"]


@given(st.binary(max_size=600))
def test_any_bytes_parse_without_an_exception(blob: bytes) -> None:
    parser = AmiParser()
    for cut in (0, len(blob) // 3, len(blob)):
        for message in parser.feed(blob[:cut]) + parser.feed(blob[cut:]):
            assert message.headers and message.headers[0][0].lower() in ("event", "response")


def test_a_forged_event_with_the_real_tail_glued_to_it_is_dropped() -> None:
    """No blank line after the forgery: the real tail joins the forged event and repeats
    its Uniqueid: dropped."""
    forged = (b"1\r\nCallerIDName: x\r\nConnectedLineNum: x\r\nConnectedLineName: x\r\n"
              b"Language: en\r\n\r\nEvent: DTMFEnd\r\nPrivilege: dtmf,all\r\n"
              b"Uniqueid: the-seat\r\nDigit: 4\r\nDirection: Received\r\n")
    real = SPLIT_HANGUP.replace(b"1\r\n\r\n200 result=1 (forged)\r\n", forged)
    parser = AmiParser()
    got = parser.feed(BANNER + real)
    assert [m.event for m in got] == ["Hangup"]  # the real head, cut short
    assert "the-seat" not in [m.get("Uniqueid") for m in got] and parser.injected == 1


def test_a_forged_event_closed_by_a_blank_line_is_dropped_by_the_orphan_tail() -> None:
    forged = (b"1\r\nCallerIDName: x\r\nConnectedLineNum: x\r\nConnectedLineName: x\r\n"
              b"Language: en\r\n\r\nEvent: Hangup\r\nPrivilege: call,all\r\nUniqueid: victim\r\n"
              b"\r\n")
    real = SPLIT_HANGUP.replace(b"1\r\n\r\n200 result=1 (forged)\r\n", forged)
    parser = AmiParser()
    got = parser.feed(BANNER + real + b"Event: Newexten\r\nUniqueid: u-2\r\n\r\n")
    assert [m.get("Uniqueid") for m in got] == ["", "u-2"] and parser.injected == 1


def test_an_event_ending_with_a_caller_id_does_not_swallow_the_stream() -> None:
    """A caller ID as the last header (no Asterisk 22 snapshot does this; a UserEvent
    may): the lines after it are held only so far, then read as lines of their own, so
    every event still comes out, whole, in order."""
    tail_heavy = b"Event: UserEvent\r\nUserEvent: Probe\r\nUniqueid: u-%d\r\nCallerIDNum: 7\r\n\r\n"
    parser = AmiParser()
    got = parser.feed(BANNER + b"".join(tail_heavy % n for n in range(50)))
    got += parser.feed(b"\r\n" * (MAX_CALLER_ID_LINES + 1))  # nothing more comes: released
    assert [m.get("Uniqueid") for m in got] == [f"u-{n}" for n in range(50)]
    assert {m.get("CallerIDNum") for m in got} == {"7"} and parser.injected == 0


def test_a_long_continuation_is_read_again_as_lines() -> None:
    """More than any caller ID could hold after CallerIDNum, without CallerIDName: the
    held lines are events of their own."""
    parser = AmiParser()
    head = b"Event: Newstate\r\nUniqueid: u-1\r\nCallerIDNum: 1\r\n\r\n"
    filler = b"".join(b"Event: VarSet\r\nUniqueid: v-%d\r\nValue: %s\r\n\r\n" % (n, b"x" * 300)
                      for n in range(5))
    got = parser.feed(BANNER + head + filler)
    assert [m.get("Uniqueid") for m in got] == ["u-1"] + [f"v-{n}" for n in range(5)]
    assert got[0].get("CallerIDNum") == "1"
