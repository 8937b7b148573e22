"""RTP for the lab's softphones: what a real phone sends, as a pcap SIPp replays.

A real softphone sends audio all the time (an RTP packet every 20 ms) and sends keys as
RFC 4733 telephone events inside that stream. SIPp's ``play_pcap_audio`` replays a pcap
with its original pacing; :func:`write_stream` makes one: G.711 µ-law audio (a tone or
silence) and key presses at given times, with rising sequence numbers and timestamps
throughout (two separate pcaps would restart them, and Asterisk ignores the second).

:func:`rtp_payloads` reads the audio of one RTP stream back out of a capture, for tests
that check what a phone received.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dpkt

with warnings.catch_warnings():  # stdlib until 3.13, then the audioop-lts package
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000
FRAME = 160  # samples per 20 ms packet
PCMU, EVENT = 0, 101  # payload types, as in the lab scenarios' SDP
_EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


@dataclass(frozen=True)
class Tone:
    hz: float  # 0: silence
    ms: int
    level: float = 0.3  # of full scale


@dataclass(frozen=True)
class Keys:
    """Key presses: each ``digit_ms`` long, ``gap_ms`` apart (audio in the gaps)."""

    digits: str
    digit_ms: int = 120
    gap_ms: int = 80


Segment = Tone | Keys


def _pcm(hz: float, samples: int, start: int, level: float) -> bytes:
    if hz <= 0:
        return b"\x00\x00" * samples
    amplitude = int(32767 * level)
    return b"".join(struct.pack("<h", int(amplitude * math.sin(
        2 * math.pi * hz * (start + n) / RATE))) for n in range(samples))


class _Stream:
    def __init__(self) -> None:
        self.seq = 1000
        self.ts = 8000
        self.t = 0.0  # seconds from the start
        self.samples = 0
        self.packets: list[tuple[float, bytes]] = []
        self.first = True

    def _packet(self, pt: int, payload: bytes, marker: bool) -> None:
        rtp = dpkt.rtp.RTP(version=2, m=int(marker), pt=pt, seq=self.seq & 0xFFFF,
                           ts=self.ts & 0xFFFFFFFF, ssrc=0x4C494E4B, data=payload)
        self.packets.append((self.t, bytes(rtp)))
        self.seq += 1

    def audio(self, tone: Tone) -> None:
        for _ in range(max(1, tone.ms // 20)):
            pcm = _pcm(tone.hz, FRAME, self.samples, tone.level)
            self._packet(PCMU, audioop.lin2ulaw(pcm, 2), self.first)
            self.first = False
            self.samples += FRAME
            self.ts += FRAME
            self.t += 0.02

    def key(self, digit: str, ms: int) -> None:
        """RFC 4733: one event, its packets every 20 ms with a growing duration and one
        timestamp (the event's start); the end packet three times."""
        code = _EVENT_CODES[digit]
        steps = max(1, ms // 20)
        start_ts = self.ts
        for n in range(1, steps + 1):
            self._event(code, n * FRAME, end=False, marker=n == 1, ts=start_ts)
            self.t += 0.02
        for _ in range(3):
            self._event(code, steps * FRAME, end=True, marker=False, ts=start_ts)
        self.ts += steps * FRAME
        self.samples += steps * FRAME

    def _event(self, code: int, duration: int, end: bool, marker: bool, ts: int) -> None:
        payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
        saved, self.ts = self.ts, ts
        self._packet(EVENT, payload, marker)
        self.ts = saved


def write_stream(path: Path, segments: Sequence[Segment]) -> Path:
    """A pcap of one RTP stream: audio and key presses, in order."""
    stream = _Stream()
    for segment in segments:
        if isinstance(segment, Tone):
            stream.audio(segment)
        else:
            for i, digit in enumerate(segment.digits):
                stream.key(digit, segment.digit_ms)
                if i < len(segment.digits) - 1 or segment.gap_ms:
                    stream.audio(Tone(0, segment.gap_ms))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for t, rtp in stream.packets:
            udp = dpkt.udp.UDP(sport=6000, dport=6002, data=rtp)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01",
                            p=dpkt.ip.IP_PROTO_UDP, data=udp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
            writer.writepkt(bytes(eth), ts=1_700_000_000 + t)
    return path


def duration_ms(segments: Iterable[Segment]) -> int:
    total = 0
    for s in segments:
        total += s.ms if isinstance(s, Tone) else len(s.digits) * (s.digit_ms + s.gap_ms)
    return total


def rtp_frames(capture: Path, port: int, payload_type: int = PCMU
               ) -> list[tuple[float, bytes]]:
    """The µ-law audio sent to UDP ``port`` in a capture: (arrival time in epoch seconds,
    linear 16-bit PCM) per packet, in arrival order."""
    frames: list[tuple[float, bytes]] = []
    with open(capture, "rb") as f:
        for ts, buf in dpkt.pcap.Reader(f):
            udp = _udp(buf)
            if udp is None or udp.dport != port:
                continue
            try:
                rtp = dpkt.rtp.RTP(udp.data)
            except dpkt.UnpackError:
                continue
            if rtp.pt == payload_type:
                frames.append((float(ts), ulaw_pcm(rtp.data)))
    return frames


def ulaw_pcm(payload: bytes) -> bytes:
    """G.711 µ-law bytes as 16-bit linear PCM."""
    return audioop.ulaw2lin(payload, 2)


def _udp(buf: bytes) -> dpkt.udp.UDP | None:
    """The UDP datagram of a captured frame (Ethernet, or Linux cooked on "any")."""
    try:
        eth = dpkt.ethernet.Ethernet(buf)
        udp = eth.data.data
    except (dpkt.UnpackError, AttributeError):
        return None
    return udp if isinstance(udp, dpkt.udp.UDP) else None


def rtp_payloads(capture: Path, port: int, payload_type: int = PCMU) -> bytes:
    """The audio sent to UDP ``port`` in a capture (linear PCM, 16-bit), in order."""
    return b"".join(pcm for _, pcm in rtp_frames(capture, port, payload_type))


def tone_share(pcm: bytes, hz: float) -> float:
    """How much of a stretch of 8 kHz 16-bit audio's power is at ``hz`` (Goertzel), 0..1;
    0 for silence."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[:len(pcm) // 2 * 2])
    n = len(samples)
    total = sum(x * x for x in samples)
    if n == 0 or total < n * 4:  # silence (or a whisper of rounding)
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * hz / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return float(min(1.0, 2 * power / (n * total)))


def windows(pcm: bytes, ms: int = 200) -> list[bytes]:
    """Cut 8 kHz 16-bit audio into whole windows of ``ms``."""
    size = RATE * ms // 1000 * 2
    return [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]


def envelope(pcm: bytes, ms: int = 20) -> list[float]:
    """The loudness (RMS) of 8 kHz 16-bit audio in frames of ``ms``: what speech looks
    like once codecs have changed every sample."""
    return [float(audioop.rms(w, 2)) for w in windows(pcm, ms)]


def likeness(heard: Sequence[float], reference: Sequence[float], max_lag: int
             ) -> tuple[float, int]:
    """How alike two envelopes are (Pearson correlation, -1..1) at the lag, in frames
    from 0 to ``max_lag``, where ``reference`` best matches a stretch of ``heard``; and
    that lag. (0.0, 0) when ``heard`` is too short or either is flat."""
    n = len(reference)
    best = (0.0, 0)
    for lag in range(0, max_lag + 1):
        part = heard[lag:lag + n]
        if len(part) < n:
            break
        r = _pearson(part, reference)
        if r > best[0]:
            best = (r, lag)
    return best


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    if n < 2:
        return 0.0
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else 0.0
