"""Key → INVITE on the wire, through the real lab.

    python -m bench.wire [--rounds 3] [--concurrent 20] [--topology one-pbx|two-pbx]
                                                                (make bench-wire)

A lab (Asterisk 22, Redis, the gateway over FastAGI, SIPp phones) runs one-key transfers
while tcpdump captures the loopback. For each transfer the time is taken from the
capture alone: from the first RFC 4733 end packet of the key's last digit (the ``1`` of
``*1``, in the seat phone's RTP to Asterisk) to Asterisk's INVITE to the 12345 phone.
Calls are told apart by the citizen's number, which Asterisk carries into both the
INVITE to the seat (whose SDP names the RTP port the keys go to) and the INVITE to
12345. Runs: one transfer at a time and ``--concurrent`` at once, each with the key
alone and with the item code typed right after it (``*1101``). Prints p50, p99 and max.

The gateway's own share is read from the same capture: from the end of the key's AGI
request (the blank line after Asterisk's ``agi_*`` lines, on the FastAGI port) to the
AMI ``Originate`` leaving the gateway (it names the bridge the AGI session set on the
citizen's channel). It holds the gateway's work and its one read of the channels
(``GET FULL VARIABLE``, Asterisk answering), printed apart as Asterisk's answer to that
read and the gateway's own work; the rest of key → INVITE is Asterisk's (the feature,
the Gosub, starting the AGI; making the channel, sending the INVITE).

``--topology two-pbx``: 12345 is its own Asterisk behind the trunk; the INVITE timed is
110's INVITE on the trunk (``sip:12345@`` the 12345 PBX). One agent of 12345's queue
(agent1, ``ringinuse`` on, the others on a break) answers every call 0.3 s after it rings,
and the citizen speaks a 2900 Hz tone from its answer on. Two more figures per transfer,
from the same capture:

- key → the citizen's voice at the agent's phone: the first of ten 20 ms RTP packets
  in a row, from 12345's PBX to the agent, that are the tone (one packet of silence
  among them, a dropout, does not break the row; any other sound does), the call told
  apart by the RTP port 12345's PBX offered in its INVITE to the agent, whose From is
  the citizen;
- that moment less the later of the agent's answer (its 200 OK) and the end of the
  transfer notice (the key + ``notice_seconds``): the target is at most 300 ms.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from gateway.lab.capture import Capture
from gateway.lab.lab import TOPOLOGIES, Lab
from gateway.lab.peer import AGENTS, QUEUE
from gateway.lab.process import exit_on_sigterm, wait_until
from gateway.lab.rtp import tone_share, ulaw_pcm
from gateway.lab.sipp import answer_scenario, citizen_scenario

_INVITE = re.compile(rb"^INVITE sip:([^@;>\s]+)@")
_FROM_NUMBER = re.compile(rb"^(?:From|f):[^<\r\n]*<sip:([^@;>]+)@", re.M | re.I)
_MEDIA = re.compile(rb"^m=audio (\d+) ", re.M)
_BRIDGE = re.compile(rb"(\d{14}[0-9a-f]{6})")
_ACTIVE = re.compile(rb'^SET VARIABLE "SHARED\(LINKGW_ACTIVE,[^)]*\)" "(\d{14}[0-9a-f]{6})"')
_CALL_ID = re.compile(rb"^(?:Call-ID|i):\s*(\S+)", re.M | re.I)
_OK_INVITE = re.compile(rb"^CSeq:\s*\d+\s+INVITE", re.M | re.I)
STAR, ONE = 10, 1  # RFC 4733 event codes
# The citizen's "voice": a steady tone high in the telephone band, where the agent's hold
# music (which plays until the citizen joins) never stays on one pitch for long; at 440 Hz
# the lab's music held an A for three packets at the same moment of every call.
PITCH = 2900.0
VOICED = 10  # 20 ms packets in a row that are the tone (200 ms): the voice has arrived


@dataclass
class Calls:
    """What the capture shows, per citizen number, read in time order (Asterisk reuses
    RTP ports from one call to the next, so a port means the call last offered on it)."""

    on_port: dict[int, bytes] = field(default_factory=dict)  # Asterisk's RTP port → call
    star_done: set[bytes] = field(default_factory=set)
    key_at: dict[bytes, float] = field(default_factory=dict)  # the key's last digit
    invite_at: dict[bytes, float] = field(default_factory=dict)  # INVITE to 12345
    agi_in: dict[int, bytes] = field(default_factory=dict)  # AGI connection → env so far
    request_at: dict[int, float] = field(default_factory=dict)  # its env complete
    request_of: dict[bytes, float] = field(default_factory=dict)  # bridge → its request
    originate_at: dict[bytes, float] = field(default_factory=dict)  # bridge → Originate
    read_sent: dict[int, float] = field(default_factory=dict)  # AGI connection → its read
    read_back: dict[int, float] = field(default_factory=dict)  # … Asterisk's answer to it
    read_of: dict[bytes, float] = field(default_factory=dict)  # bridge → that answer's wait
    # two PBXs: what the 12345 agent's phone got
    agent_call: dict[bytes, bytes] = field(default_factory=dict)  # Call-ID → call
    agent_rtp: dict[int, bytes] = field(default_factory=dict)  # 12345 PBX's RTP port → call
    answer_at: dict[bytes, float] = field(default_factory=dict)  # the agent's 200 OK
    voiced: dict[bytes, list[float]] = field(default_factory=dict)  # tone packets in a row
    gapped: set[bytes] = field(default_factory=set)  # a run that has had its one dropout
    voice_at: dict[bytes, float] = field(default_factory=dict)  # the citizen heard

    def agi(self, t: float, from_asterisk: bool, port: int, payload: bytes) -> None:
        """One segment of a FastAGI connection (``port``: Asterisk's end of it)."""
        if from_asterisk:
            if port not in self.request_at:
                self.agi_in[port] = self.agi_in.get(port, b"") + payload
                if b"\n\n" in self.agi_in[port]:
                    self.request_at[port] = t
            elif port in self.read_sent and port not in self.read_back \
                    and payload.startswith(b"200 result="):
                self.read_back[port] = t
            return
        if payload.startswith(b"GET FULL VARIABLE") and port in self.request_at:
            self.read_sent.setdefault(port, t)
        active = _ACTIVE.match(payload)
        if active and port in self.request_at:
            self.request_of.setdefault(active.group(1), self.request_at[port])
            if port in self.read_back:
                self.read_of.setdefault(active.group(1),
                                        self.read_back[port] - self.read_sent[port])

    def ami(self, t: float, payload: bytes) -> None:
        """A segment the gateway sent to AMI."""
        for action in payload.split(b"\r\n\r\n"):
            if action.startswith(b"Action: Originate") and (bridge := _BRIDGE.search(action)):
                self.originate_at.setdefault(bridge.group(1), t)

    def gateway_ms(self) -> list[float]:
        return sorted((self.originate_at[b] - t) * 1000 for b, t in self.request_of.items()
                      if b in self.originate_at)

    def read_ms(self) -> list[float]:
        """Of the share: Asterisk answering the gateway's one read of the channels."""
        return sorted(v * 1000 for b, v in self.read_of.items() if b in self.originate_at)

    def own_ms(self) -> list[float]:
        """Of the share: the gateway's own work (the share less Asterisk's answer)."""
        return sorted((self.originate_at[b] - t - self.read_of[b]) * 1000
                      for b, t in self.request_of.items()
                      if b in self.originate_at and b in self.read_of)

    def sip(self, t: float, payload: bytes, seat: bytes, agent: bytes) -> None:
        invite = _INVITE.match(payload)
        number = _FROM_NUMBER.search(payload)
        if invite is None or number is None:
            return
        if invite.group(1) == seat and (media := _MEDIA.search(payload)):
            self.on_port[int(media.group(1))] = number.group(1)
        elif invite.group(1) == agent:
            self.invite_at.setdefault(number.group(1), t)

    def agent_sip(self, t: float, payload: bytes, agent: bytes) -> None:
        """SIP between 12345's PBX and its agent: the INVITE (the call, by its From; the
        RTP port the PBX sends from) and the agent's 200 OK to it."""
        call_id = _CALL_ID.search(payload)
        if call_id is None:
            return
        invite = _INVITE.match(payload)
        number = _FROM_NUMBER.search(payload)
        if invite and invite.group(1) == agent and number and (media := _MEDIA.search(payload)):
            self.agent_call[call_id.group(1)] = number.group(1)
            self.agent_rtp[int(media.group(1))] = number.group(1)
        elif payload.startswith(b"SIP/2.0 200") and _OK_INVITE.search(payload):
            call = self.agent_call.get(call_id.group(1))
            if call is not None:
                self.answer_at.setdefault(call, t)

    def agent_rtp_in(self, t: float, from_port: int, payload: bytes) -> None:
        """Audio from 12345's PBX to the agent: the first of ``VOICED`` tone packets. One
        packet of silence among them (a packet that came late, which the conference
        mixed as silence) does not break the run; any other sound does."""
        call = self.agent_rtp.get(from_port)
        if call is None or call in self.voice_at or len(payload) <= 12 \
                or payload[1] & 0x7F != 0:
            return
        run = self.voiced.setdefault(call, [])
        pcm = ulaw_pcm(payload[12:])
        if tone_share(pcm, PITCH) > 0.95:
            run.append(t)
            if len(run) == VOICED:
                self.voice_at[call] = run[0]
        elif run and call not in self.gapped and _silent(pcm):
            self.gapped.add(call)
        else:
            run.clear()
            self.gapped.discard(call)

    def dropouts(self) -> int:
        """Calls whose first 200 ms of voice at the agent had a packet of silence."""
        return sum(call in self.gapped for call in self.voice_at)

    def voice_ms(self) -> list[float]:
        """Key → the citizen's voice at the agent's phone."""
        return sorted((self.voice_at[n] - t) * 1000 for n, t in self.key_at.items()
                      if n in self.voice_at)

    def heard_after_ms(self, notice_s: float) -> list[float]:
        """The voice at the agent less the later of the answer and the notice's end."""
        return sorted((self.voice_at[n] - max(self.answer_at[n], t + notice_s)) * 1000
                      for n, t in self.key_at.items()
                      if n in self.voice_at and n in self.answer_at)

    def rtp(self, t: float, port: int, payload: bytes) -> None:
        """RFC 4733 events to Asterisk: the first end of ``1`` after the end of ``*``."""
        call = self.on_port.get(port)
        if call is None or call in self.key_at or len(payload) < 16 \
                or payload[1] & 0x7F != 101:
            return
        event, flags = struct.unpack("!BB", payload[12:14])
        if not flags & 0x80:
            return
        if event == STAR:
            self.star_done.add(call)
        elif event == ONE and call in self.star_done:
            self.key_at[call] = t

    def delays_ms(self) -> list[float]:
        return sorted((self.invite_at[n] - t) * 1000 for n, t in self.key_at.items()
                      if n in self.invite_at)


def _silent(pcm: bytes) -> bool:
    """16-bit audio no louder than a whisper of rounding (|x| < 64 everywhere)."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[:len(pcm) // 2 * 2])
    return max((abs(x) for x in samples), default=0) < 64


def read_capture(path: Path, sip_port: int, agi_port: int = 0, ami_port: int = 0,
                 peer_sip_port: int = 0, agent_media_port: int = 0) -> Calls:
    """``ami_port``: the port the gateway's AMI connection goes to; ``peer_sip_port`` and
    ``agent_media_port``: 12345's PBX and its agent's phone (two PBXs)."""
    calls = Calls()
    with open(path, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            try:
                udp = dpkt.ethernet.Ethernet(buf).data.data
            except (dpkt.UnpackError, AttributeError):
                continue
            if isinstance(udp, dpkt.tcp.TCP) and udp.data:
                if agi_port in (udp.sport, udp.dport):
                    calls.agi(float(ts), udp.dport == agi_port,
                              udp.sport if udp.dport == agi_port else udp.dport,
                              bytes(udp.data))
                elif udp.dport == ami_port:
                    calls.ami(float(ts), bytes(udp.data))
                continue
            if not isinstance(udp, dpkt.udp.UDP):
                continue
            if udp.sport == sip_port:
                calls.sip(float(ts), bytes(udp.data), b"seat1", b"12345")
            elif peer_sip_port and peer_sip_port in (udp.sport, udp.dport):
                calls.agent_sip(float(ts), bytes(udp.data), AGENTS[0].encode())
            elif agent_media_port and udp.dport == agent_media_port:
                calls.agent_rtp_in(float(ts), udp.sport, bytes(udp.data))
            else:
                calls.rtp(float(ts), udp.dport, bytes(udp.data))
    return calls


_rounds = iter(range(10, 100))


def run(lab: Lab, workdir: Path, calls: int, at_once: int, key: str) -> Calls:
    """``calls`` one-key transfers, ``at_once`` at a time: what the capture shows. Citizen
    numbers are new in each run (an INVITE of an earlier run that nobody answered is
    retransmitted for up to 32 s, and must not be taken for this run's)."""
    prefix = f"139{next(_rounds)}"
    ami_port = lab.ami_relay_port if lab.ami_relay is not None else lab.ami_port
    seat, citizen = lab.phone("seat1"), lab.phone("citizen")
    agent = lab.phone(AGENTS[0] if lab.two_pbx else "12345")
    # only what is read: SIP, the seat's RTP (its keys), the audio reaching the agent, the
    # FastAGI and the gateway's AMI; not the other calls' audio, which would make
    # tcpdump one more load on the machine measured
    sips = " or ".join(f"port {p}" for p in (lab.sip_port, lab.peer_sip_port) if p)
    capture = Capture(workdir / f"wire-{calls}-{at_once}-{key}-{time.time_ns()}.pcap",
                      f"(udp and ({sips} or src port {seat.media_port}"
                      f" or dst port {agent.media_port}))"
                      f" or tcp port {lab.fastagi_port} or tcp dst port {ami_port}")
    phones = [citizen, seat, agent]
    with capture:
        # 12345 stays until Asterisk releases it (the citizen hangs up 14 s in); the
        # call-taker leaves 5 s after the key
        agent.start(answer_scenario(agent.name.rsplit("-", 1)[0], ring_ms=300,
                                    hold_ms=60000),
                    calls=calls, limit=at_once, timeout_s=600)
        seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000, key=key,
                                   key_after_ms=800), calls=calls, timeout_s=600)
        citizen.start(citizen_scenario("citizen", prefix + "[call_number]", "110",
                                       hold_ms=14000, voice_hz=PITCH),
                      calls=calls, limit=at_once, rate=at_once, timeout_s=600)
        for phone in phones:
            phone.wait(600)
        time.sleep(0.2)  # the last packets reach the capture
    lab.stop_phones()
    seen = read_capture(capture.path, lab.sip_port, lab.fastagi_port, ami_port,
                        lab.peer_sip_port if lab.two_pbx else 0,
                        agent.media_port if lab.two_pbx else 0)
    probes = [p for p in (lab.probe, lab.peer_probe) if p is not None]
    wait_until(lambda: not any(p.action("CoreShowChannels")[1] for p in probes),
               60, "every call over")
    return seen


def one_agent_takes_every_call(lab: Lab) -> None:
    """12345's queue: agent1 at the desk and rung while in a call, the others on a break.
    ``ringinuse`` must be on for the queue itself: with it off, app_queue rings a member
    for one waiting caller at a time (the next one ``retry`` seconds later), however the
    member is set, and the answers of 20 calls at once would come a second apart."""
    probe, peer = lab.peer_probe, lab.peer
    assert probe is not None and peer is not None
    queues = peer.base / "etc" / "queues.conf"
    queues.write_text(queues.read_text(encoding="utf-8").replace(
        "ringinuse=no", "ringinuse=yes"), encoding="utf-8")
    peer.cli("module reload app_queue.so")
    for agent in AGENTS:
        interface = f"PJSIP/{agent}"
        probe.action("QueuePause", {"Queue": QUEUE, "Interface": interface,
                                    "Paused": "false" if agent == AGENTS[0] else "true",
                                    "Reason": "bench"})


def _pct(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it
    (of 100, p99 is the 99th; of 40, the 40th)."""
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values) - 1e-9) - 1))]


def report(name: str, delays: list[float], expected: int) -> None:
    if not delays:
        print(f"{name:<44} no transfer seen on the wire (of {expected})")
        return
    print(f"{name:<44} p50 {statistics.median(delays):6.1f} ms   p99 "
          f"{_pct(delays, 0.99):6.1f} ms   max {delays[-1]:6.1f} ms   "
          f"({len(delays)} of {expected} transfers)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wire")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--topology", choices=TOPOLOGIES, default="one-pbx")
    parser.add_argument("--keep", type=Path, help="keep the lab and its captures here")
    args = parser.parse_args(argv[1:])
    where = "on the trunk to 12345's PBX" if args.topology == "two-pbx" else "to 12345"
    print(f"key → INVITE {where}, on the wire (tcpdump on the loopback of the lab, "
          f"{args.topology})")
    print("run: make bench-wire   (or .venv/bin/python -m bench.wire "
          f"--topology {args.topology})\n")
    with tempfile.TemporaryDirectory(prefix="linkgw-wire-") as temporary:
        tmp = str(args.keep or temporary)
        measure(Path(tmp), args.rounds, args.concurrent, args.topology)
    return 0


def measure(tmp: Path, rounds: int, concurrent: int, topology: str = "one-pbx") -> None:
    with Lab(tmp, topology=topology) as lab:
        if lab.two_pbx:
            one_agent_takes_every_call(lab)
        notice_s = lab.transfer.notice_seconds
        for key, label in (("*1", "*1 alone"), ("*1101", "*1 then code 101")):
            for at_once, runs in ((1, [run(lab, tmp, rounds * 5, 1, key)]),
                                  (concurrent, [run(lab, tmp, concurrent, concurrent, key)
                                                for _ in range(rounds)])):
                expected = rounds * 5 if at_once == 1 else rounds * concurrent
                when = "1 transfer at a time" if at_once == 1 else f"{concurrent} at once"
                report(f"{label}, {when}", _all(r.delays_ms() for r in runs), expected)
                report("  of which the gateway (AGI in → Originate)",
                       _all(r.gateway_ms() for r in runs), expected)
                report("    Asterisk answering its read of the channels",
                       _all(r.read_ms() for r in runs), expected)
                report("    its own work (the rest)", _all(r.own_ms() for r in runs), expected)
                if lab.two_pbx:
                    report("  key → the citizen's voice at the agent",
                           _all(r.voice_ms() for r in runs), expected)
                    report(f"  voice − later(answer, key + {notice_s:g} s notice)",
                           _all(r.heard_after_ms(notice_s) for r in runs), expected)
                    print(f"  {'voices with one 20 ms dropout in their first 200 ms':<44}"
                          f"{sum(r.dropouts() for r in runs)} of {expected}")


def _all(parts: Iterable[list[float]]) -> list[float]:
    return sorted(v for part in parts for v in part)


if __name__ == "__main__":
    exit_on_sigterm()
    sys.exit(main(sys.argv))
