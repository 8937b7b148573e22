"""SIPp softphones for the lab: scenarios rendered from ``scenarios/`` and run as processes.

Scenario files use ``{{name}}`` placeholders filled here (SIPp's own ``[keyword]`` syntax
is left alone). Each phone gets its own SIP port and its own media port block (``-mp``).

A phone that presses keys does it as a real phone does: RFC 4733 events inside its RTP
stream (:mod:`gateway.lab.rtp` writes the stream as a pcap, SIPp replays it from the
call's media port). ``info_digits`` remains for SIP INFO keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.lab.process import LabError, Proc
from gateway.lab.rtp import Keys, Segment, Tone, duration_ms, write_stream

#: Ports SIPp binds from its ``-mp`` media port up: audio RTP, RTCP, video RTP, RTCP.
SIPP_MEDIA_PORTS = 4

SCENARIOS = Path(__file__).parent / "scenarios"


def render(name: str, **values: object) -> str:
    text = (SCENARIOS / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if "{{" in text.replace("{{pcap:", ""):
        start = text.replace("{{pcap:", "!!pcap:").index("{{")
        raise LabError(f"scenario {name}: no value for {text[start:text.index('}}', start)+2]}")
    return text


def info_digits(key: str, first_cseq: int = 101, gap_ms: int = 120) -> str:
    """The scenario steps that press ``key`` digit by digit as SIP INFO."""
    return "".join(
        render("info_digit.xml.part", cseq=first_cseq + i, digit=digit, gap_ms=gap_ms)
        for i, digit in enumerate(key)
    )


@dataclass(frozen=True)
class Scenario:
    """A scenario's XML and the RTP streams it plays (``{{pcap:<name>}}`` in the XML)."""

    xml: str
    streams: dict[str, tuple[Segment, ...]] = field(default_factory=dict)


def answer_scenario(user: str, ring_ms: int, hold_ms: int, key: str = "",
                    key_after_ms: int = 0,
                    presses: Sequence[tuple[int, str]] = ()) -> Scenario:
    """Ring ``ring_ms``, answer, press keys (RFC 4733 in the phone's RTP), hold until BYE
    or ``hold_ms`` after the last key, hang up.

    ``presses`` is a list of (pause in ms, digits); ``key``/``key_after_ms`` is the
    one-press shorthand. Digits of one press come 120 ms long, 60 ms apart, as a person
    types them in one go.
    """
    plan = ([(key_after_ms, key)] if key else []) + list(presses)
    if not plan:
        return Scenario(render("answer.xml", user=user, ring_ms=ring_ms, hold_ms=hold_ms,
                               key_steps=""))
    segments: list[Segment] = []
    for pause_ms, digits in plan:
        segments += [Tone(0, pause_ms), Keys(digits, 120, 60)]
    keyed_ms = duration_ms(segments)
    segments.append(Tone(0, hold_ms))
    steps = ('  <nop><action><exec play_pcap_audio="{{pcap:keys}}"/></action></nop>\n'
             f'  <pause milliseconds="{keyed_ms}"/>\n')
    return Scenario(render("answer.xml", user=user, ring_ms=ring_ms, hold_ms=hold_ms,
                           key_steps=steps), {"keys": tuple(segments)})


def refuse_scenario(code: int, reason: str) -> str:
    """Answer every INVITE with a final error (486 Busy Here, 503 Service Unavailable)."""
    return render("busy.xml", code=code, reason=reason)


def noanswer_scenario(user: str) -> str:
    """Ring until Asterisk cancels."""
    return render("noanswer.xml", user=user)


def citizen_scenario(caller: str, number: str, dial: str, hold_ms: int,
                     caller_name: str = "", released_ok: bool = True,
                     voice_hz: float = 0, keys: str = "") -> Scenario:
    """``caller`` is the endpoint (From user); ``number``/``caller_name`` the identity.

    With ``released_ok`` False the citizen must be the one who hangs up: a BYE from
    Asterisk before ``hold_ms`` fails the scenario (SIPp exits 1). ``voice_hz``: the
    citizen speaks a steady tone of that pitch from the answer on, for the whole call
    (RTP from its media port, as a phone sends its microphone). ``keys``: digits the
    citizen types half a second after the answer (RFC 4733, as a phone does).
    """
    if released_ok:
        wait = f'  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>'
    else:
        wait = f'  <pause milliseconds="{hold_ms}" next="hangup"/>\n  <recv request="BYE"/>'
    if not voice_hz and not keys:
        return Scenario(render("citizen.xml", caller=caller, number=number, dial=dial,
                               caller_name=caller_name, wait_steps=wait))
    speak = '  <nop><action><exec play_pcap_audio="{{pcap:voice}}"/></action></nop>\n'
    stream: tuple[Segment, ...] = (Tone(voice_hz, hold_ms),) if not keys else \
        (Tone(voice_hz, 500), Keys(keys), Tone(voice_hz, 500))
    return Scenario(render("citizen.xml", caller=caller, number=number, dial=dial,
                           caller_name=caller_name, wait_steps=speak + wait),
                    {"voice": stream})


def received_invite(trace: str) -> dict[str, str]:
    """The headers of the first INVITE in a SIPp message trace, by lower-case name
    (``request`` holds the request line); ``{}`` when there is none."""
    start = trace.find("INVITE sip:")
    if start < 0:
        return {}
    head = trace[start:].replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    headers = {"request": head[0].strip()}
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    return headers


_REQUEST_LINE = re.compile(r"([A-Z]+) \S+ SIP/2\.0\Z")


def requests_received(trace: str) -> list[str]:
    """The methods of the requests a SIPp phone received, in order, from its trace."""
    methods = []
    for block in re.split(r"^-{10,}.*$", trace, flags=re.MULTILINE):
        head, _, message = block.strip().partition("\n")
        request = _REQUEST_LINE.match(message.strip().split("\n", 1)[0].strip())
        if head.startswith(("UDP message received", "TCP message received")) and request:
            methods.append(request.group(1))
    return methods


@dataclass
class SippPhone:
    """One SIPp process playing one scenario once."""

    name: str
    port: int
    media_port: int
    asterisk_sip_port: int
    workdir: Path
    proc: Proc | None = None
    host: str = "127.0.0.1"  # the phone's own loopback address
    remote_host: str = "127.0.0.1"  # its PBX's

    def start(self, scenario: str | Scenario, timeout_s: int = 60, calls: int = 1,
              limit: int = 0, rate: float = 0, extra: Sequence[str] = ()) -> None:
        """Play ``scenario`` for ``calls`` calls; ``limit``: at most that many at once;
        ``rate``: new calls per second (a UAC's; SIPp's default is 10)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(scenario, str):
            scenario = Scenario(scenario)
        xml = scenario.xml
        for name, segments in scenario.streams.items():
            pcap = write_stream(self.workdir / f"{self.name}-{name}.pcap", segments)
            xml = xml.replace("{{pcap:" + name + "}}", str(pcap))
        path = self.workdir / f"{self.name}.xml"
        path.write_text(xml, encoding="utf-8")
        argv = [
            "sipp", f"{self.remote_host}:{self.asterisk_sip_port}", "-sf", str(path),
            "-i", self.host, "-p", str(self.port), "-mp", str(self.media_port),
            "-m", str(calls), *(["-l", str(limit)] if limit else []),
            *(["-r", f"{rate:g}", "-rp", "1000"] if rate else []),
            "-nostdin", "-timeout", f"{timeout_s}s", "-timeout_error",
            "-trace_err", "-trace_msg", "-message_file", str(self.workdir / f"{self.name}.msg"),
            "-error_file", str(self.workdir / f"{self.name}.err"), *extra,
        ]
        self.proc = Proc(f"sipp-{self.name}", argv, self.workdir / f"{self.name}.out",
                         cwd=self.workdir)

    def wait(self, timeout: float) -> int:
        if self.proc is None:
            raise LabError(f"{self.name}: not started")
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=3)

    def received(self) -> str:
        """Every SIP message this phone sent and received so far (SIPp's trace)."""
        msg = self.workdir / f"{self.name}.msg"
        return msg.read_text(encoding="utf-8", errors="replace") if msg.exists() else ""

    def errors(self) -> str:
        err = self.workdir / f"{self.name}.err"
        return err.read_text(errors="replace")[-2000:] if err.exists() else ""
