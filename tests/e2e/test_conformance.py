"""Conformance: every AGI command and AMI action the gateway uses, one by one, against
the lab's real Asterisk 22, through this project's codecs. Each check pins the reply
that the gateway's code relies on."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from typing import Any

from gateway.agi.codec import HANGUP, AgiReply, ReplyParser, format_command, parse_env
from gateway.agi.errors import AgiDeadChannel, AgiInvalidCommand, AgiUsageError
from gateway.ami.codec import AmiParser, encode_action
from gateway.lab.lab import Lab
from tests.e2e.helpers import TIMEOUT, citizen, finish, mark, wait_event

#: (command words, arguments) in the order the test's FastAGI script sends them.
HOSTILE = 'a "quoted" \\ back\\slash; EXEC Hangup'
AGI_SCRIPT: list[tuple[str, tuple[str, ...]]] = [
    ("GET VARIABLE", ("LAB_CALLER_NAME",)),
    ("GET VARIABLE", ("NO_SUCH_VARIABLE",)),
    ("SET VARIABLE", ("LAB_HOSTILE", HOSTILE)),
    ("GET VARIABLE", ("LAB_HOSTILE",)),
    ("GET FULL VARIABLE", ("${BASE64_ENCODE(=${LAB_HOSTILE})}",)),
    ("GET FULL VARIABLE", ("${IMPORT(${CHANNEL},UNIQUEID)}",)),
    ("GET DATA", ("beep", "300", "3")),
    ("NO SUCH COMMAND", ()),
    ("GET VARIABLE", ()),
]


class FastAgiOnce:
    """A one-session FastAGI server in a thread, speaking through the project's codec."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.env: dict[str, str] = {}
        self.replies: list[Any] = []
        self.hangup_line = b""
        self.after_hangup: Any = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        lines = conn.makefile("rb")
        env_lines = []
        while (line := lines.readline()) not in (b"\n", b""):
            env_lines.append(line)
        self.env = dict(parse_env(env_lines).values)
        for command, args in AGI_SCRIPT:
            conn.sendall(format_command(command, *args))
            parser = ReplyParser()
            while (parsed := parser.feed(lines.readline())) is None or parsed is HANGUP:
                pass
            self.replies.append(parsed)
        # then the citizen hangs up: Asterisk says HANGUP; GET VARIABLE still works on
        # the dead channel, GET DATA gets 511
        conn.settimeout(TIMEOUT)
        self.hangup_line = lines.readline()
        conn.sendall(format_command("GET VARIABLE", "LAB_HOSTILE"))
        self.after_hangup = [ReplyParser().feed(lines.readline())]
        conn.sendall(format_command("GET DATA", "beep", "100", "1"))
        self.after_hangup.append(ReplyParser().feed(lines.readline()))
        conn.close()
        self.server.close()


def test_agi_commands_against_asterisk(lab: Lab) -> None:
    assert lab.probe is not None
    agi = FastAgiOnce()
    lab.probe.action("Setvar", {"Variable": "LAB_CONFORMANCE_PORT", "Value": str(agi.port)})
    caller = citizen(lab, hold_ms=3000, dial="conformance", name='Wang \\"Wu\\"',
                     released_ok=True)
    agi.thread.join(TIMEOUT)
    assert not agi.thread.is_alive(), "Asterisk never ran the conformance AGI"
    assert finish(caller) == {"citizen": 0}
    assert agi.env["network_script"] == "conformance"
    assert agi.env["channel"].startswith("PJSIP/citizen-")
    r = agi.replies
    assert r[0] == AgiReply(1, 'Wang \\"Wu\\"', None, "1")  # PJSIP keeps the escapes
    assert r[1] == AgiReply(0, None, None, "0")  # unset: result=0, no data
    assert r[2] == AgiReply(1, None, None, "1")
    assert r[3] == AgiReply(1, HOSTILE, None, "1")  # quoted out, read back unchanged
    assert base64.b64decode(r[4].data).decode() == "=" + HOSTILE
    assert r[5].result == 1 and r[5].data == agi.env["uniqueid"]
    assert (r[6].result, r[6].text, r[6].data) == (0, "", "timeout")  # GET DATA, no digit
    assert isinstance(r[7], AgiInvalidCommand) and r[7].status == 510
    # 520: Asterisk 22 sends its documentation over several lines; all of it is kept
    assert isinstance(r[8], AgiUsageError) and "variablename" in r[8].reply
    assert "\n" in r[8].reply and "200 result=1 (testvariable)" in r[8].reply
    assert agi.hangup_line == b"HANGUP\n"
    assert agi.after_hangup[0] == AgiReply(1, HOSTILE, None, "1")
    assert isinstance(agi.after_hangup[1], AgiDeadChannel)


class AmiSession:
    """A plain socket speaking through the project's AMI codec."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.parser = AmiParser()
        self.pending: list[Any] = []
        self.n = 0

    def action(self, name: str, headers: dict[str, str]) -> Any:
        self.n += 1
        action_id = f"conf-{self.n}"
        self.sock.sendall(encode_action(name, action_id, headers))
        while True:
            for message in self.pending:
                if message.action_id == action_id and message.is_response:
                    self.pending.remove(message)
                    return message
            self.pending += self.parser.feed(self.sock.recv(65536))


def test_ami_actions_against_asterisk(lab: Lab) -> None:
    s = AmiSession(lab.ami_port)
    challenge = s.action("Challenge", {"AuthType": "MD5"})
    assert challenge.get("Response") == "Success" and challenge.get("Challenge")
    key = hashlib.md5((challenge.get("Challenge")
                       + lab._ami_secret).encode()).hexdigest()
    login = s.action("Login", {"AuthType": "MD5", "Username": lab.ami_user, "Key": key})
    assert (login.get("Response"), login.get("Message")) == \
        ("Success", "Authentication accepted")
    assert s.parser.banner is not None and s.parser.banner.startswith("Asterisk Call Manager/")
    gone = "PJSIP/citizen-ffffffff"
    redirect = s.action("Redirect", {"Channel": gone, "ExtraChannel": "PJSIP/seat1-x",
                                     "Context": "linkgw-join-citizen", "Exten": "1",
                                     "Priority": "1"})
    # the service reads this exact message as "the citizen is gone"
    assert (redirect.get("Response"), redirect.get("Message")) == \
        ("Error", f"Channel does not exist: {gone}")
    setvar = s.action("Setvar", {"Channel": gone, "Variable": "LINKGW_PEER", "Value": "x"})
    assert setvar.get("Response") == "Error"
    hangup = s.action("Hangup", {"Channel": gone})
    assert (hangup.get("Response"), hangup.get("Message")) == ("Error", "No such channel")
    since = mark(lab)
    originate = s.action("Originate", {
        "Channel": "Local/ringforever@lab-conformance", "Context": "linkgw-join-agent",
        "Exten": "20261128000000abcdef", "Priority": "1", "Timeout": "1000",
        "CallerID": "<13800138000>", "ChannelId": "20261128000000abcdef-a0",
        "Variable": "LINKGW_BRIDGE=20261128000000abcdef", "Async": "true"})
    assert (originate.get("Response"), originate.get("Message")) == \
        ("Success", "Originate successfully queued")
    done = wait_event(lab, since, "the OriginateResponse", Event="OriginateResponse",
                      Uniqueid="20261128000000abcdef-a0")
    # a leg that rings and is cut at the ring timeout: Failure, Reason 3 (a busy or
    # refused leg says Reason 0: the gateway reads the leg's hangup cause instead)
    assert (done.get("Response"), done.get("Reason")) == ("Failure", "3")
    conferences = s.action("ConfbridgeList", {"Conference": "linkgw-none"})
    assert conferences.get("Response") == "Error"
    channels = s.action("CoreShowChannels", {})
    assert channels.get("EventList").lower() == "start"
