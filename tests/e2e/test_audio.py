"""Audio is proven, not assumed: the citizen speaks a 440 Hz tone from the answer to the
end of the call; what the 12345 phone received is captured on the wire (tcpdump on the
loopback) and decoded, and the recording is read back. What the citizen hears at the key
is compared with the notice's own file. Both AGI modes."""

from __future__ import annotations

import wave
from pathlib import Path

from gateway.lab.capture import Capture
from gateway.lab.lab import ONEKEY, Lab
from gateway.lab.process import wait_until
from gateway.lab.rtp import RATE, envelope, likeness, rtp_frames, tone_share, windows
from gateway.schema import epoch
from tests.e2e.helpers import (
    TIMEOUT,
    answering,
    citizen,
    events,
    finish,
    mark,
    settled,
    wait_event,
)

PITCH = 440.0


def _heard(frames: list[tuple[float, bytes]], start: float, end: float) -> list[float]:
    """The tone's share in each 200 ms window of what arrived between start and end."""
    pcm = b"".join(p for t, p in frames if start <= t <= end)
    return [tone_share(w, PITCH) for w in windows(pcm)]


def test_the_citizens_voice_reaches_12345_and_the_recording_holds_it_all(
        any_lab: Lab, tmp_path: Path) -> None:
    lab = any_lab
    since = mark(lab)
    agent = answering(lab, "12345", hold_ms=30000)
    with Capture(tmp_path / "12345.pcap", f"udp and dst port {agent.media_port}") as cap:
        seat = answering(lab, "seat1", hold_ms=8000, key=ONEKEY)
        caller = citizen(lab, hold_ms=18000, voice_hz=PITCH)
        conference = wait_event(lab, since, "the citizen in a conference",
                                Event="ConfbridgeJoin", Channel="PJSIP/citizen"
                                ).get("Conference")
        left = float(wait_event(lab, since, "the call-taker leaving",
                                Event="ConfbridgeLeave", Channel="PJSIP/seat1"
                                ).get("Timestamp"))
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    record, _ = settled(lab, conference.removeprefix("linkgw-"), "citizen_hangup")
    assert record["outcome"] == "handed_off" and record["direct_with"] == "agent"
    frames = rtp_frames(cap.path, agent.media_port)
    joined, gone = epoch(record["citizen_joined_at"]), epoch(record["citizen_hangup_at"])
    three = _heard(frames, joined + 0.5, left - 0.3)  # mixed by the conference
    after = _heard(frames, left + 1.0, gone - 0.5)  # the plain call after the hand-off
    assert len(three) >= 5 and len(after) >= 20, (len(three), len(after))
    assert sum(s > 0.8 for s in three) >= 0.8 * len(three), three
    assert sum(s > 0.8 for s in after) >= 0.9 * len(after), after
    _recording_covers_the_call(lab, record, joined, gone)


def _recording_covers_the_call(lab: Lab, record: dict[str, str], joined: float,
                               gone: float) -> None:
    """The recording starts before the citizen joins (the notice), goes on in the plain
    call, and holds the citizen's voice, not silence."""
    assert lab.asterisk is not None
    path = Path(str(lab.asterisk.root) + record["recording"])
    wait_until(lambda: path.exists() and path.stat().st_size > 44, TIMEOUT,
               f"the recording {path}")
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (RATE, 2, 1)
        seconds = wav.getnframes() / RATE
        pcm = wav.readframes(wav.getnframes())
    assert seconds >= (gone - joined) - 1.0, (seconds, gone - joined)
    shares = [tone_share(w, PITCH) for w in windows(pcm)]
    assert sum(s > 0.5 for s in shares) >= 0.7 * len(shares), shares


def _notice_pcm(lab: Lab, tmp: str) -> bytes:
    """The notice as Asterisk itself decodes its sound file (CLI ``file convert``), as
    8 kHz 16-bit PCM."""
    assert lab.asterisk is not None
    inside = f"{lab.asterisk.inside}/{tmp}.wav"
    source = lab.asterisk.sound_file(lab.transfer.notice_prompt)
    out = lab.asterisk.cli(f"file convert {source} {inside}")
    path = Path(str(lab.asterisk.root) + inside)
    assert path.exists(), out
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getsampwidth()) == (RATE, 2)
        return bytes(wav.readframes(wav.getnframes()))


def test_the_citizen_hears_the_notice_from_the_key_while_12345_is_dialled(
        any_lab: Lab, tmp_path: Path) -> None:
    """The notice plays at the key, in the key's hold, while 12345 rings and the code is
    typed; not after 12345 answers. What reached the citizen's phone from the key on has
    the notice file's shape; the call-taker's key lasts until the notice is over; the
    citizen joins the conference without hearing it again."""
    lab = any_lab
    since = mark(lab)
    notice_s = lab.transfer.notice_seconds
    assert notice_s > 0
    reference = envelope(_notice_pcm(lab, f"notice-{since}"))
    port = lab.phone("citizen").media_port
    agent = answering(lab, "12345", hold_ms=30000, ring_ms=300)  # answers during it
    with Capture(tmp_path / "citizen.pcap", f"udp and dst port {port}") as cap:
        seat = answering(lab, "seat1", hold_ms=8000, key=ONEKEY + "101")  # code in 0.6 s
        caller = citizen(lab, hold_ms=14000)
        joined = wait_event(lab, since, "the citizen in a conference",
                            Event="ConfbridgeJoin", Channel="PJSIP/citizen")
        assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    bridge_id = joined.get("Conference").removeprefix("linkgw-")
    record, _ = settled(lab, bridge_id, "notice_played")
    assert record["outcome"] == "handed_off"
    hold = events(lab, since, "MusicOnHoldStart", Channel="PJSIP/citizen")
    assert [e.get("Class") for e in hold][:1] == ["linkgw_notice"]
    start = float(hold[0].get("Timestamp"))
    stop = float(events(lab, since, "MusicOnHoldStop", Channel="PJSIP/citizen")[0]
                 .get("Timestamp"))
    answered = float(wait_event(lab, since, "12345 answered", Event="Newstate",
                                Channel="PJSIP/12345", ChannelStateDesc="Up"
                                ).get("Timestamp"))
    assert start < answered < start + notice_s  # 12345 answered while it played
    assert stop >= start + notice_s - 0.05  # the key waited it out
    assert start + notice_s - 0.05 <= epoch(record["notice_played_at"]) <= \
        epoch(record["citizen_joined_at"])
    assert events(lab, since, "Newexten", Channel="PJSIP/citizen", Application="Playback",
                  AppData=lab.transfer.notice_prompt) == []  # not twice
    pcm = b"".join(p for t, p in rtp_frames(cap.path, port) if start - 0.2 <= t <= stop)
    r, lag = likeness(envelope(pcm), reference, max_lag=25)
    assert r > 0.8, (r, lag, len(reference))
