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
(``GET FULL VARIABLE``, Asterisk answering); the rest of key → INVITE is Asterisk's
(the feature, the Gosub, starting the AGI; making the channel, sending the INVITE).

``--topology two-pbx``: 12345 is its own Asterisk behind the trunk; the INVITE timed is
110's INVITE on the trunk (``sip:12345@`` the 12345 PBX). Nobody answers in 12345's queue
(its agents' phones are not running): what is measured ends at that INVITE.
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
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from gateway.lab.capture import Capture
from gateway.lab.lab import TOPOLOGIES, Lab
from gateway.lab.process import wait_until
from gateway.lab.sipp import answer_scenario, citizen_scenario

_INVITE = re.compile(rb"^INVITE sip:([^@;>\s]+)@")
_FROM_NUMBER = re.compile(rb"^(?:From|f):[^<\r\n]*<sip:([^@;>]+)@", re.M | re.I)
_MEDIA = re.compile(rb"^m=audio (\d+) ", re.M)
_BRIDGE = re.compile(rb"(\d{14}[0-9a-f]{6})")
_ACTIVE = re.compile(rb'^SET VARIABLE "SHARED\(LINKGW_ACTIVE,[^)]*\)" "(\d{14}[0-9a-f]{6})"')
STAR, ONE = 10, 1  # RFC 4733 event codes


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

    def agi(self, t: float, from_asterisk: bool, port: int, payload: bytes) -> None:
        """One segment of a FastAGI connection (``port``: Asterisk's end of it)."""
        if from_asterisk:
            if port not in self.request_at:
                self.agi_in[port] = self.agi_in.get(port, b"") + payload
                if b"\n\n" in self.agi_in[port]:
                    self.request_at[port] = t
            return
        active = _ACTIVE.match(payload)
        if active and port in self.request_at:
            self.request_of.setdefault(active.group(1), self.request_at[port])

    def ami(self, t: float, payload: bytes) -> None:
        """A segment the gateway sent to AMI."""
        for action in payload.split(b"\r\n\r\n"):
            if action.startswith(b"Action: Originate") and (bridge := _BRIDGE.search(action)):
                self.originate_at.setdefault(bridge.group(1), t)

    def gateway_ms(self) -> list[float]:
        return sorted((self.originate_at[b] - t) * 1000 for b, t in self.request_of.items()
                      if b in self.originate_at)

    def sip(self, t: float, payload: bytes, seat: bytes, agent: bytes) -> None:
        invite = _INVITE.match(payload)
        number = _FROM_NUMBER.search(payload)
        if invite is None or number is None:
            return
        if invite.group(1) == seat and (media := _MEDIA.search(payload)):
            self.on_port[int(media.group(1))] = number.group(1)
        elif invite.group(1) == agent:
            self.invite_at.setdefault(number.group(1), t)

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


def read_capture(path: Path, sip_port: int, agi_port: int = 0, ami_port: int = 0) -> Calls:
    """``ami_port``: the port the gateway's AMI connection goes to."""
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
            else:
                calls.rtp(float(ts), udp.dport, bytes(udp.data))
    return calls


_rounds = iter(range(10, 100))


def run(lab: Lab, workdir: Path, calls: int, at_once: int, key: str
        ) -> tuple[list[float], list[float]]:
    """``calls`` one-key transfers, ``at_once`` at a time; key → INVITE in ms, and the
    gateway's share (AGI request → Originate) in ms. Citizen
    numbers are new in each run (an INVITE of an earlier run that nobody answered is
    retransmitted for up to 32 s, and must not be taken for this run's)."""
    prefix = f"139{next(_rounds)}"
    ami_port = lab.ami_relay_port if lab.ami_relay is not None else lab.ami_port
    capture = Capture(workdir / f"wire-{calls}-{at_once}-{key}-{time.time_ns()}.pcap",
                      f"udp or tcp port {lab.fastagi_port} or tcp dst port {ami_port}")
    seat, citizen = lab.phone("seat1"), lab.phone("citizen")
    phones = [citizen, seat]
    with capture:
        # 12345 stays until Asterisk releases it (the citizen hangs up 14 s in); the
        # call-taker leaves 5 s after the key
        if not lab.two_pbx:
            agent = lab.phone("12345")
            agent.start(answer_scenario("12345", ring_ms=300, hold_ms=60000), calls=calls,
                        timeout_s=600)
            phones.append(agent)
        seat.start(answer_scenario("seat1", ring_ms=200, hold_ms=5000, key=key,
                                   key_after_ms=800), calls=calls, timeout_s=600)
        citizen.start(citizen_scenario("citizen", prefix + "[call_number]", "110",
                                       hold_ms=14000), calls=calls, limit=at_once,
                      rate=at_once, timeout_s=600)
        for phone in phones:
            phone.wait(600)
        time.sleep(0.2)  # the last packets reach the capture
    lab.stop_phones()
    seen = read_capture(capture.path, lab.sip_port, lab.fastagi_port, ami_port)
    probes = [p for p in (lab.probe, lab.peer_probe) if p is not None]
    wait_until(lambda: not any(p.action("CoreShowChannels")[1] for p in probes),
               60, "every call over")
    return seen.delays_ms(), seen.gateway_ms()


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
        for key, label in (("*1", "*1 alone"), ("*1101", "*1 then code 101")):
            one, gateway = run(lab, tmp, rounds * 5, 1, key)
            report(f"{label}, 1 transfer at a time", one, rounds * 5)
            report("  of which the gateway (AGI in → Originate)", gateway, rounds * 5)
            many: list[float] = []
            share: list[float] = []
            for _ in range(rounds):
                delays, gateway = run(lab, tmp, concurrent, concurrent, key)
                many += delays
                share += gateway
            report(f"{label}, {concurrent} at once", sorted(many), rounds * concurrent)
            report("  of which the gateway (AGI in → Originate)", sorted(share),
                   rounds * concurrent)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
