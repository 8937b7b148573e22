"""The lab's own tools: RTP written and read back, the relay that cuts AMI links."""

from __future__ import annotations

from pathlib import Path

from gateway.lab.rtp import Keys, Tone, rtp_frames, tone_share, windows, write_stream


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
