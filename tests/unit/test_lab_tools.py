"""The lab's own tools: RTP written and read back, the relay that cuts AMI links."""

from __future__ import annotations

from pathlib import Path

from gateway.lab.rtp import (
    Keys,
    Tone,
    envelope,
    likeness,
    rtp_frames,
    tone_share,
    windows,
    write_stream,
)


def test_a_tone_written_as_rtp_reads_back_as_the_same_tone(tmp_path: Path) -> None:
    pcap = write_stream(tmp_path / "t.pcap", [Tone(440, 1000), Keys("1"), Tone(0, 400)])
    frames = rtp_frames(pcap, 6002)
    assert len(frames) == 50 + 4 + 20  # 20 ms frames; the key is events, its gap audio
    assert round(frames[1][0] - frames[0][0], 6) == 0.02
    tone = b"".join(p for _, p in frames[:50])
    assert [round(tone_share(w, 440), 2) for w in windows(tone)] == [1.0] * 5
    assert max(tone_share(w, 1000) for w in windows(tone)) < 0.01
    assert tone_share(b"".join(p for _, p in frames[-20:]), 440) == 0.0


def test_the_lab_relay_keeps_an_idle_link_open() -> None:
    """An AMI link idle for longer than the relay's connect timeout stays up."""
    import socket

    from gateway.lab.proxy import Relay

    target = socket.create_server(("127.0.0.1", 0))
    relay = Relay(0, target.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", relay.port))
    upstream, _ = target.accept()
    client.sendall(b"ping")
    assert upstream.recv(4) == b"ping"
    upstream.sendall(b"pong")
    assert client.recv(4) == b"pong"
    # the pumps that carried those bytes start only once the pair is registered
    relay_upstream = next(iter(relay._pairs))[1]
    assert relay_upstream.gettimeout() is None  # nothing times an idle link out
    relay.close()
    for s in (client, upstream, target):
        s.close()


def test_the_wire_benchmarks_percentile_is_the_nearest_rank() -> None:
    """It once took p99 of 100 delays as the largest (round() rounds 99.5 to even)."""
    from bench.wire import _pct

    hundred = [float(v) for v in range(1, 101)]
    assert (_pct(hundred, 0.99), _pct(hundred, 0.5), _pct(hundred, 1.0)) == (99.0, 50.0, 100.0)
    forty = [float(v) for v in range(1, 41)]
    assert (_pct(forty, 0.99), _pct(forty, 0.5)) == (40.0, 20.0)


def test_a_long_garbage_collection_is_logged_with_its_generation() -> None:
    import gc

    from gateway.logs import watch_gc

    class Log:
        def __init__(self) -> None:
            self.lines: list[tuple[str, dict[str, object]]] = []

        def warning(self, event: str, **fields: object) -> None:
            self.lines.append((event, fields))

    log = Log()
    callback = watch_gc(log, threshold=0.0)  # every collection counts as long here
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
    assert [(e, f["generation"]) for e, f in log.lines] == [("gc.pause", 2)]
    assert isinstance(log.lines[0][1]["seconds"], float)


TRACE = (
    "----------------------------------------------- 2026-12-02 20:12:27.001\n"
    "UDP message received [812] bytes :\n\n"
    "INVITE sip:agent2@127.0.0.2:40753 SIP/2.0\n"
    'From: "110转 张\u2028三" <sip:13800138000@127.0.0.2>;tag=a\n'
    "X-Linkgw-Bridge: 20261202201224bd1edf\n"
    "X-Linkgw-Bridge: second-is-ignored\n"
    "User-to-User: 6162;encoding=hex;purpose=linkgw\n"
    "Content-Length: 0\n\n"
    "v=0\nX-Not-A-Header: in the body\n\n"
    "----------------------------------------------- 2026-12-02 20:12:27.002\n"
    "UDP message sent (300 bytes):\n\n"
    "BYE sip:127.0.0.2 SIP/2.0\n\n"
    "----------------------------------------------- 2026-12-02 20:12:29.002\n"
    "UDP message received [300] bytes :\n\n"
    "BYE sip:agent2@127.0.0.2 SIP/2.0\n\n"
    "----------------------------------------------- 2026-12-02 20:12:29.003\n"
    "UDP message received [30] bytes :\n\n"
    "SIP/2.0 200 OK\n\n"
)


def test_the_agents_invite_is_read_from_its_trace_head_only() -> None:
    """The first INVITE's headers, by lower-case name, the first of a repeated one;
    nothing from the body; a Chinese name with U+2028 kept as received."""
    from gateway.lab.sipp import received_invite

    got = received_invite(TRACE)
    assert got["request"] == "INVITE sip:agent2@127.0.0.2:40753 SIP/2.0"
    assert got["from"] == '"110转 张\u2028三" <sip:13800138000@127.0.0.2>;tag=a'
    assert got["x-linkgw-bridge"] == "20261202201224bd1edf"
    assert "x-not-a-header" not in got
    assert received_invite("no invite here\r\n\x00\xff") == {}
    crlf = received_invite(TRACE.replace("\n", "\r\n"))
    assert crlf["user-to-user"] == "6162;encoding=hex;purpose=linkgw"


def test_requests_received_are_told_from_requests_sent_and_responses() -> None:
    from gateway.lab.sipp import requests_received

    assert requests_received(TRACE) == ["INVITE", "BYE"]
    torn = TRACE[:TRACE.index("BYE sip:agent2") + 2]  # a trace cut mid-word
    assert requests_received(torn) == ["INVITE"]
    assert requests_received("\udcff\u0085garbage") == []


def test_the_shipped_trunk_examples_get_the_labs_addresses() -> None:
    """The lab loads the files a site copies, with only the addresses and the
    transport's name changed: every example address is replaced."""
    from gateway.lab.peer import EXAMPLE_110, EXAMPLE_12345, with_lab_addresses

    repo = Path(__file__).resolve().parents[2] / "dialplan"
    for path in (repo / "linkgw_trunk.conf.example",
                 repo / "peer/linkgw_peer_pjsip.conf.example"):
        text = with_lab_addresses(path.read_text(encoding="utf-8"), "127.0.0.1", 5070,
                                  "127.0.0.2", 5080)
        assert EXAMPLE_110 not in text and EXAMPLE_12345 not in text
        assert "transport=lab-udp" in text and "transport-udp" not in text
    trunk = with_lab_addresses((repo / "linkgw_trunk.conf.example").read_text("utf-8"),
                               "127.0.0.1", 5070, "127.0.0.2", 5080)
    assert "contact=sip:127.0.0.2:5080\n" in trunk and "match=127.0.0.2\n" in trunk


def test_an_envelope_is_found_again_inside_a_longer_one_at_its_lag() -> None:
    """The notice test's matcher: a loudness shape found at the frame it starts, even
    scaled (another level after codecs); a flat stretch or a different shape is not."""
    shape = [0.0, 5.0, 9.0, 2.0, 0.0, 7.0, 8.0, 1.0, 0.0, 3.0]
    heard = [1.0] * 4 + [2 * x + 10 for x in shape] + [1.0] * 6
    r, lag = likeness(heard, shape, max_lag=10)
    assert (round(r, 6), lag) == (1.0, 4)
    assert likeness([4.0] * 30, shape, max_lag=10) == (0.0, 0)
    assert likeness(heard[:5], shape, max_lag=10) == (0.0, 0)  # too short
    other = [9.0, 0.0, 1.0, 8.0, 9.0, 0.0, 2.0, 9.0, 8.0, 0.0]
    assert likeness(other, shape, max_lag=0)[0] < 0.5


def test_an_envelope_is_the_loudness_of_each_20_ms() -> None:
    loud = b"\x00\x10" * 160  # 4096 in every sample
    quiet = b"\x00\x00" * 160
    assert envelope(loud + quiet + loud[:100]) == [4096.0, 0.0]  # a torn frame is left out


def _rtp(pcm: bytes) -> bytes:
    import audioop

    return bytes([0x80, 0x00]) + b"\x00\x01" + b"\x00" * 8 + audioop.lin2ulaw(pcm, 2)


def test_the_wire_bench_dates_the_citizens_voice_at_the_agent_after_200_ms_of_it() -> None:
    """The agent's INVITE names the call (From) and the PBX's RTP port; its 200 OK dates
    the answer; the voice is the first of ten tone packets in a row from that port (a
    shorter run, as hold music may make, does not count); another port is another call."""
    import math
    import struct

    from bench.wire import PITCH, Calls

    tone = struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * PITCH * i / 8000))
                                  for i in range(160)))
    other = struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * 700 * i / 8000))
                                   for i in range(160)))
    invite = (b"INVITE sip:agent1@127.0.0.2:5070 SIP/2.0\r\n"
              b"From: \"110\xe8\xbd\xac Zhang\" <sip:139101@127.0.0.2>;tag=a\r\n"
              b"Call-ID: abc@x\r\nCSeq: 1 INVITE\r\n\r\n"
              b"v=0\r\nc=IN IP4 127.0.0.2\r\nm=audio 20010 RTP/AVP 0\r\n")
    ok = b"SIP/2.0 200 OK\r\nCall-ID: abc@x\r\nCSeq: 1 INVITE\r\n\r\n"
    calls = Calls()
    calls.key_at[b"139101"] = 100.0
    calls.agent_sip(100.01, invite, b"agent1")
    calls.agent_sip(100.40, ok, b"agent1")
    for i, pcm in enumerate([tone] * 9 + [other] + [tone] * 10):
        calls.agent_rtp_in(100.5 + i * 0.02, 20010, _rtp(pcm))
        calls.agent_rtp_in(100.5 + i * 0.02, 20012, _rtp(tone))  # not this call's port
    assert calls.answer_at == {b"139101": 100.40}
    assert calls.voice_at == {b"139101": 100.5 + 10 * 0.02}
    assert [round(v, 3) for v in calls.voice_ms()] == [700.0]
    assert [round(v, 3) for v in calls.heard_after_ms(0.5)] == [200.0]  # after the notice
    assert [round(v, 3) for v in calls.heard_after_ms(0.1)] == [300.0]  # after the answer


def test_one_dropout_inside_the_voice_does_not_date_it_later_but_two_do() -> None:
    """A packet the conference mixed as silence (it came late) inside the tone: the voice
    arrived at the first tone packet; a second dropout in the same row starts it again."""
    import math
    import struct

    from bench.wire import PITCH, Calls

    tone = struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * PITCH * i / 8000))
                                  for i in range(160)))
    silence = struct.pack("<160h", *([3, -2] * 80))
    invite = (b"INVITE sip:agent1@127.0.0.2:5070 SIP/2.0\r\n"
              b"From: <sip:139102@127.0.0.2>;tag=a\r\nCall-ID: d@x\r\nCSeq: 1 INVITE\r\n"
              b"\r\nv=0\r\nm=audio 20020 RTP/AVP 0\r\n")
    calls = Calls()
    calls.key_at[b"139102"] = 100.0
    calls.agent_sip(100.01, invite, b"agent1")
    for i, pcm in enumerate([tone] * 4 + [silence] + [tone] * 6):
        calls.agent_rtp_in(100.5 + i * 0.02, 20020, _rtp(pcm))
    assert calls.voice_at == {b"139102": 100.5} and calls.dropouts() == 1
    calls = Calls()
    calls.agent_sip(100.01, invite, b"agent1")
    for i, pcm in enumerate([tone] * 3 + [silence, tone, silence] + [tone] * 10):
        calls.agent_rtp_in(100.5 + i * 0.02, 20020, _rtp(pcm))
    assert calls.voice_at == {b"139102": 100.5 + 6 * 0.02}


def test_the_wire_bench_splits_the_gateways_share_into_asterisks_answer_and_its_own() -> None:
    """On one AGI connection: the env complete (the share begins), the gateway's read,
    Asterisk's answer, the SET VARIABLE naming the bridge; then the Originate leaves."""
    from bench.wire import Calls

    bridge = b"20261204001500abcdef"
    calls = Calls()
    calls.agi(10.000, True, 40001, b"agi_network: yes\nagi_request: agi://x/onekey\n")
    calls.agi(10.001, True, 40001, b"agi_arg_1: transfer\n\n")
    calls.agi(10.003, False, 40001, b'GET FULL VARIABLE "${BASE64_ENCODE(=${UNIQUEID})}"\n')
    calls.agi(10.011, True, 40001, b"200 result=1 (PXU=)\n")
    calls.ami(10.014, b"Action: Originate\r\nChannelId: " + bridge + b"-a0\r\n\r\n")
    calls.agi(10.020, False, 40001,
              b'SET VARIABLE "SHARED(LINKGW_ACTIVE,PJSIP/citizen-1)" "' + bridge + b'"\n')
    assert [round(v, 3) for v in calls.gateway_ms()] == [13.0]
    assert [round(v, 3) for v in calls.read_ms()] == [8.0]
    assert [round(v, 3) for v in calls.own_ms()] == [5.0]


def test_a_lab_program_stopped_with_sigterm_runs_its_cleanup(tmp_path: Path) -> None:
    """SIGTERM (kill, a CI timeout) becomes SystemExit: a `with Lab` block (here a
    finally) stops what it started, and the exit code says which signal (128 + 15)."""
    import signal
    import subprocess
    import sys

    marker = tmp_path / "cleaned"
    program = ("import sys, time\nfrom gateway.lab.process import exit_on_sigterm\n"
               "exit_on_sigterm()\ntry:\n    print('ready', flush=True)\n"
               "    time.sleep(60)\nfinally:\n"
               f"    open({str(marker)!r}, 'w').write('yes')\n")
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert marker.read_text() == "yes"
