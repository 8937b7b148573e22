"""The blocking AMI session of process mode, against a scripted AMI on a loopback socket:
events that arrive while an action waits for its response are kept, in order, for the
next reader, and an AMI that hangs up is said to be gone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from gateway.ami.errors import AmiNotConnected
from gateway.ami.sync import SyncAmi

DTMF = "Event: DTMFEnd\r\nChannel: PJSIP/seat1-00000001\r\nUniqueid: u-1\r\nDigit: {}\r\n" \
       "Direction: Received\r\n\r\n"


class ScriptedAmi:
    """Answers Login, then for Getvar sends two DTMF events before its response."""

    def __init__(self) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
            buffer = b""
            while data := conn.recv(4096):
                buffer += data
                *blocks, buffer = buffer.split(b"\r\n\r\n")
                for block in blocks:  # an action: "Key: value" lines
                    action = dict(line.split(": ", 1) for line in
                                  block.decode().split("\r\n"))
                    name, action_id = action["Action"], action["ActionID"]
                    if name == "Logoff":
                        return
                    if name == "Getvar":
                        conn.sendall((DTMF.format("1") + DTMF.format("2")).encode())
                        conn.sendall(f"Response: Success\r\nActionID: {action_id}\r\n"
                                     "Variable: LINKGW_SIDE\r\nValue: 110\r\n\r\n".encode())
                        continue
                    conn.sendall(f"Response: Success\r\nActionID: {action_id}\r\n\r\n"
                                 .encode())
                    if name == "Login":
                        conn.sendall(DTMF.format("*").encode())

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def ami() -> Iterator[ScriptedAmi]:
    scripted = ScriptedAmi()
    yield scripted
    scripted.close()


def test_events_read_while_an_action_waited_are_taken_in_order(ami: ScriptedAmi) -> None:
    session = SyncAmi("127.0.0.1", ami.port, "linkgw", "s", auth="plain", events="dtmf")
    try:
        answer = session.action("Getvar", {"Channel": "PJSIP/seat1-00000001",
                                           "Variable": "LINKGW_SIDE"})
        assert answer.get("Value") == "110"
        assert [e.get("Digit") for e in session.take_events()] == ["*", "1", "2"]
        assert session.take_events() == []
    finally:
        session.close()
    ami.thread.join(5)


def test_an_ami_that_hangs_up_is_gone_not_late(ami: ScriptedAmi) -> None:
    session = SyncAmi("127.0.0.1", ami.port, "linkgw", "s", auth="plain", events="dtmf")
    with pytest.raises(AmiNotConnected, match="closed the connection"):
        session.action("Logoff")  # the scripted AMI hangs up instead of answering
    with pytest.raises(AmiNotConnected, match="closed the connection"):
        session.pump()
    session.close()
