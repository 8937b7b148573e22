"""The process-mode digit keeper: its book, its socket protocol (real Unix sockets, a
fake AMI on a socket pair), hostile questions, and the window a program builds from
what it answers."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ami.codec import AmiMessage, AmiParser, HeaderItems
from gateway.ami.errors import AmiActionError, AmiTimeout
from gateway.process.keeper import MAX_QUESTION, DigitBook, Keeper, _listen, _take_lock
from gateway.process.keeper_client import KeeperFeed
from gateway.process.keeper_wire import parse_question, paths
from gateway.transfer.code import KEY_LAG, window_from_history

T = 1_795_895_437.0
REPO = Path(__file__).resolve().parents[2]
SEAT = "PJSIP/seat1-00000001"


class FakeAmi:
    """The keeper's AMI session: bytes written to the other end of a socket pair; the
    channels in ``armed`` have LINKGW_SIDE set, those in ``gone`` no longer exist."""

    def __init__(self) -> None:
        self.ours, self.asterisk = socket.socketpair()
        self.parser = AmiParser()
        self.armed = {SEAT}
        self.gone: set[str] = set()
        self.slow: set[str] = set()  # Asterisk does not answer about these in time
        self.asked: list[str] = []

    def action(self, name: str, headers: HeaderItems = (),
               timeout: float | None = None) -> AmiMessage:
        fields = dict(headers)
        assert (name, fields["Variable"]) == ("Getvar", "LINKGW_SIDE")
        channel = fields["Channel"]
        self.asked.append(channel)
        if channel in self.slow:
            raise AmiTimeout("Getvar: no response in time")
        if channel in self.gone:
            raise AmiActionError(name, AmiMessage((("Response", "Error"),
                                                   ("Message", "No such channel"))))
        value = "110" if channel in self.armed else ""
        return AmiMessage((("Response", "Success"), ("Variable", "LINKGW_SIDE"),
                           ("Value", value)))

    def take_events(self) -> list[AmiMessage]:
        return []

    def fileno(self) -> int:
        return self.ours.fileno()

    def pump(self) -> list[AmiMessage]:
        data = self.ours.recv(65536)
        if not data:
            raise ConnectionError("AMI closed the connection")
        return [m for m in self.parser.feed(data) if m.event]

    def digit(self, uniqueid: str, digit: str, direction: str = "Received",
              channel: str = "") -> None:
        self.asterisk.sendall(
            f"Event: DTMFEnd\r\nChannel: {channel or SEAT}\r\nUniqueid: {uniqueid}\r\n"
            f"Digit: {digit}\r\nDirection: {direction}\r\nDurationMs: 120\r\n\r\n"
            .encode())


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Keeper, FakeAmi, Path, Clock]]:
    ami, clock = FakeAmi(), Clock()
    _, socket_path = paths(str(tmp_path))
    server = _listen(socket_path)
    keeper = Keeper(ami, server, clock=clock, idle_exit=3600.0)
    yield keeper, ami, socket_path, clock
    for client_id in list(keeper.clients):
        keeper._drop(client_id)
    server.close()
    ami.ours.close()
    ami.asterisk.close()


def _client(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    sock.connect(str(path))
    return sock


def _ask(keeper: Keeper, path: Path, question: bytes) -> tuple[socket.socket, bytes]:
    sock = _client(path)
    keeper.step(2.0)  # accepts
    sock.sendall(question)
    keeper.step(2.0)  # reads the question, answers
    return sock, sock.recv(4096)


def test_the_book_keeps_the_last_digits_of_the_channels_typing_last() -> None:
    book = DigitBook(keep_digits=3, keep_channels=2)
    for n, digit in enumerate("*1101"):
        book.digit("u-1", digit, T + n)
    book.digit("u-2", "5", T)
    book.digit("u-3", "6", T)  # u-1 typed least recently: forgotten
    assert list(book.typed) == ["u-2", "u-3"]
    book.digit("u-2", "7", T + 1)
    assert book.ask(9, "u-2") == [("5", T), ("7", T + 1)] and book.waiting == {"u-2": {9}}
    # what is not a digit a channel can type is not kept
    for junk in ("", "12", "x", "张", "\u2028", "\r"):
        assert book.digit("u-2", junk, T) == set()
    assert book.digit("u-2", "#", T + 2) == {9}
    book.gone(9)
    assert book.waiting == {}


def test_the_book_forgets_a_channels_digits_a_minute_after_its_last() -> None:
    """Every channel's digits reach the keeper (a PIN typed into voicemail too): none is
    kept longer than a key's program could need them."""
    book = DigitBook()
    book.digit("voicemail-pin", "4", T)
    book.digit("seat", "*", T + 30)
    book.forget(T + 60)
    assert list(book.typed) == ["voicemail-pin", "seat"]
    book.digit("seat", "1", T + 61)  # a new digit forgets what is older too
    assert list(book.typed) == ["seat"]
    book.forget(T + 121.5)
    assert book.typed == {} and book.ask(1, "seat") == []


@pytest.mark.parametrize("line", [b"u-1\n", b"linkgw-a582951b-1795934916.33\r\n"])
def test_a_question_is_a_uniqueid_on_one_line(line: bytes) -> None:
    assert parse_question(line) == line.strip().decode()


@pytest.mark.parametrize("line", [
    b"\n", b"u 1\n", b"u\r\nEXEC\n", "张三\n".encode(), "a\u2028b\n".encode(),
    "a\u0085b\n".encode(), b"u\xff\xfe\n", b"u\x00\n", b"x" * 101 + b"\n"])
def test_anything_else_is_not_a_question(line: bytes) -> None:
    assert parse_question(line) is None


def test_the_keeper_answers_what_the_channel_typed_then_each_new_digit(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    keeper, ami, path, clock = rig
    for digit in "*11":
        ami.digit("u-seat", digit)
        clock.now += 0.18
    ami.digit("u-seat", "9", direction="Sent")  # what the channel played, not typed
    ami.digit("u-other", "5")
    keeper.step(2.0)
    sock, answer = _ask(keeper, path, b"u-seat\n")
    assert answer == b"H * 1795895437.540\nH 1 1795895437.540\nH 1 1795895437.540\n.\n"
    clock.now += 0.2
    ami.digit("u-seat", "0")
    ami.digit("u-other", "6")
    keeper.step(2.0)
    assert sock.recv(4096) == b"D 0 1795895437.740\n"
    sock.close()
    keeper.step(2.0)  # the program hung up: forgotten as a listener
    assert keeper.clients == {} and keeper.book.waiting == {}


def test_only_the_digits_of_channels_linkgw_armed_are_kept(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    """A channel's first digit asks Asterisk whether [linkgw-armed] ran on it; a caller
    typing a PIN in someone else's menu, or a channel already gone, is not kept. Each
    channel is asked once while its answer is remembered."""
    keeper, ami, path, clock = rig
    ami.gone.add("PJSIP/trunk-00000009")
    ami.digit("u-pin", "4", channel="PJSIP/bank-00000002")
    ami.digit("u-pin", "2", channel="PJSIP/bank-00000002")
    ami.digit("u-gone", "7", channel="PJSIP/trunk-00000009")
    ami.digit("u-seat", "*")
    ami.digit("u-seat", "1")
    keeper.step(2.0)
    assert ami.asked == ["PJSIP/bank-00000002", "PJSIP/trunk-00000009", SEAT]
    assert list(keeper.book.typed) == ["u-seat"]
    for uniqueid in ("u-pin", "u-gone"):
        sock, answer = _ask(keeper, path, uniqueid.encode() + b"\n")
        assert answer == b".\n"
        sock.close()
    clock.now += 61  # the answer is forgotten with the digits: asked again
    ami.digit("u-seat", "0")
    keeper.step(2.0)
    assert ami.asked[3:] == [SEAT]


def test_no_answer_about_a_channel_keeps_its_digits_until_an_answer_says(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    """Asterisk slow to answer about the seat (a loaded machine): its digit is held, and
    it is asked again at the next one; the key and its code typed in one go are whole.
    A channel that turns out not to be linkgw's loses what was held."""
    keeper, ami, _, _ = rig
    ami.slow.add(SEAT)
    ami.digit("u-seat", "*")
    keeper.step(2.0)
    assert (keeper.book.ask(0, "u-seat")[0][0], ami.asked) == ("*", [SEAT])
    ami.slow.clear()
    for digit in "1101":
        ami.digit("u-seat", digit)
    keeper.step(2.0)
    assert ami.asked == [SEAT, SEAT]  # asked again once, then remembered
    assert "".join(d for d, _ in keeper.book.ask(0, "u-seat")) == "*1101"
    other = "PJSIP/bank-00000002"
    ami.slow.add(other)
    ami.digit("u-pin", "4", channel=other)
    keeper.step(2.0)
    assert "u-pin" in keeper.book.typed
    ami.slow.clear()
    ami.digit("u-pin", "2", channel=other)
    keeper.step(2.0)
    assert "u-pin" not in keeper.book.typed  # not linkgw's: nothing of it kept


def test_a_question_torn_across_writes_is_put_together(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    keeper, ami, path, _ = rig
    ami.digit("u-123", "7")
    keeper.step(2.0)
    sock = _client(path)
    keeper.step(2.0)
    sock.sendall(b"u-1")
    keeper.step(2.0)
    sock.sendall(b"23\n")
    keeper.step(2.0)
    assert sock.recv(4096) == b"H 7 1795895437.000\n.\n"
    sock.close()


@pytest.mark.parametrize("question", [
    b"u\r\nEXEC Hangup\n", "张三\n".encode(), b"\xc3\n", "a\u2028b\n".encode(),
    b"x" * (MAX_QUESTION + 1)])
def test_a_hostile_question_is_refused_and_the_keeper_goes_on(
        rig: tuple[Keeper, FakeAmi, Path, Clock], question: bytes) -> None:
    keeper, ami, path, _ = rig
    sock, answer = _ask(keeper, path, question)
    assert answer == b"ERR\n"
    assert sock.recv(10) == b""  # closed
    ami.digit("u-1", "4")
    keeper.step(2.0)
    good, answer = _ask(keeper, path, b"u-1\n")
    assert answer == b"H 4 1795895437.000\n.\n"
    good.close()


def test_the_keeper_stops_when_ami_goes_or_nobody_asks(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    keeper, ami, _, clock = rig
    clock.now += 3601
    assert keeper.step(0.0) == "idle"
    clock.now = T
    keeper.last_question = T
    ami.asterisk.close()
    assert keeper.step(2.0).startswith("AMI gone")


def test_one_keeper_per_spool_directory(tmp_path: Path) -> None:
    lock_path, _ = paths(str(tmp_path))
    held = _take_lock(lock_path)
    assert held is not None
    assert _take_lock(lock_path) is None  # a second keeper goes away
    held.close()
    again = _take_lock(lock_path)
    assert again is not None
    again.close()


def test_a_program_reads_the_keepers_answer(tmp_path: Path) -> None:
    _, socket_path = paths(str(tmp_path))
    server = _listen(socket_path)
    assert oct(socket_path.stat().st_mode & 0o777) == "0o600"
    server.setblocking(True)
    asked: list[bytes] = []
    keeper_side: list[socket.socket] = []

    def keeper() -> None:  # answers, torn at a byte, in two writes
        sock, _ = server.accept()
        keeper_side.append(sock)
        asked.append(sock.recv(100))
        sock.sendall(b"H * 1795895437.000\nH 1 17958954")
        sock.sendall(b"37.180\n.\nD 1 1795895437.400\n")

    thread = threading.Thread(target=keeper)
    thread.start()
    feed = KeeperFeed.ask(str(tmp_path), "u-seat", timeout=5.0)
    thread.join()
    assert asked == [b"u-seat\n"] and feed is not None
    assert feed.history == [("*", T), ("1", T + 0.18)]
    assert feed.next(time.monotonic() + 5) == ("1", T + 0.4)
    keeper_side[0].close()
    with pytest.raises(OSError):
        feed.next(time.monotonic() + 5)  # the keeper went
    feed.close()
    server.close()


def _answered(tmp_path: Path, *writes: bytes) -> KeeperFeed | None:
    """What a program makes of a keeper (a thread here) that writes ``writes``."""
    _, socket_path = paths(str(tmp_path))
    server = _listen(socket_path)
    server.setblocking(True)

    def keeper() -> None:
        sock, _ = server.accept()
        sock.recv(100)
        for data in writes:
            sock.sendall(data)
        sock.close()

    thread = threading.Thread(target=keeper)
    thread.start()
    feed = KeeperFeed.ask(str(tmp_path), "u-seat", timeout=5.0)
    thread.join()
    server.close()
    return feed


@pytest.mark.parametrize("answer", [
    "H 张 1795895437.000\n.\n".encode(),            # Chinese where a digit goes
    "H 1 1795895437.000\u2028\n.\n".encode(),      # U+2028 after the time
    "H 1\u0085 1795895437.000\n.\n".encode(),      # U+0085 after the digit
    b"H \xc3 1795895437.000\n.\n",                 # not UTF-8
    b"H 1 1795895437.000\r\n.\n",                  # CR LF
    b"H 1 nan\n.\n", b"H 1 1e9\n.\n",              # float() would take these
    "H 1 1795895437.000\n张".encode()[:-1],          # torn mid-character, then gone
])
def test_a_keeper_answer_that_is_not_the_protocol_is_no_answer(
        tmp_path: Path, answer: bytes) -> None:
    assert _answered(tmp_path, answer) is None


def test_a_digit_line_torn_mid_way_is_put_together(tmp_path: Path) -> None:
    feed = _answered(tmp_path, b".\nD 4 17958", b"95437.250\n")
    assert feed is not None and feed.history == []
    assert feed.next(time.monotonic() + 5) == ("4", T + 0.25)
    feed.close()


def test_no_keeper_is_no_answer(tmp_path: Path) -> None:
    assert KeeperFeed.ask(str(tmp_path), "u-seat") is None


@pytest.mark.parametrize(("history", "code", "closed", "pending"), [
    # the key and the whole code came before the program could ask
    ([("*", T), ("1", T + .2), ("1", T + .4), ("0", T + .6), ("1", T + .8)], "101", True, ""),
    # the key and one digit; the rest is still to come
    ([("*", T), ("1", T + .2), ("1", T + .4)], "1", False, ""),
    # the key's last digit not reported yet: it is skipped when it comes
    ([("*", T)], "", False, "1"),
    # an earlier press long ago is not this press: the whole key is still to come
    ([("*", T - 60), ("1", T - 60), ("1", T - 60), ("0", T - 60), ("4", T - 60)],
     "", False, "*1"),
])
def test_the_window_starts_after_this_press_of_the_key(
        history: list[tuple[str, float]], code: str, closed: bool, pending: str) -> None:
    window = window_from_history("*1", history, started=T + 0.3, digits=3, timeout=1.5,
                                 now=100.0)
    assert (window.code, window.closed, window.pending) == (code, closed, pending)
    assert KEY_LAG < 60


def test_a_program_that_starts_seconds_after_the_key_counts_from_the_key() -> None:
    """A loaded machine: the key's program began 3 s after the key (Python, imports,
    config). Counted from the program's start, the key's digits look like an earlier
    press and the code typed with it was lost (CI saw it); counted from the key's time,
    which the dialplan notes (LINKGW_KEY_AT), the code is whole."""
    from gateway.process.desk import ProcessDesk
    from gateway.transfer.model import KeyPress, Party

    history = [("*", T), ("1", T + .15), ("1", T + .3), ("0", T + .45), ("1", T + .6)]
    late = window_from_history("*1", history, started=T + 3.0, digits=3, timeout=1.5,
                               now=100.0)
    assert late.code == ""  # the bug, counted from the program's start
    desk = ProcessDesk.__new__(ProcessDesk)
    desk.started = T + 3.0
    party = Party("PJSIP/seat1-1", "u-seat")
    pressed = KeyPress(party, party, key_at=T + 0.15)
    assert desk._key_at(pressed) == T + 0.15
    window = window_from_history("*1", history, started=desk._key_at(pressed), digits=3,
                                 timeout=1.5, now=100.0)
    assert (window.code, window.closed) == ("101", True)
    # no key time, or one that is not this key's: the program's start
    for key_at in (0.0, T + 4.0, T - 60.0):
        assert desk._key_at(KeyPress(party, party, key_at=key_at)) == T + 3.0


def test_the_keeper_starts_isolated_from_the_folder_and_the_python_variables(
        tmp_path: Path) -> None:
    """Started from a folder holding a planted ``gateway`` package, with PYTHONPATH and
    PYTHONSTARTUP pointing at it: the keeper's command imports this package only (here
    it stops at once: its config file is missing, which it says)."""
    import subprocess

    from gateway.process.keeper import keeper_command

    planted = tmp_path / "gateway"
    (planted / "process").mkdir(parents=True)
    for init in (planted / "__init__.py", planted / "process" / "__init__.py"):
        init.write_text("print('PLANTED')\n")
    (planted / "process" / "keeper.py").write_text("print('PLANTED')\n")
    (tmp_path / "startup.py").write_text("print('PLANTED')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path),
           "PYTHONSTARTUP": str(tmp_path / "startup.py"),
           "LINKGW_CONFIG": str(tmp_path / "missing.yaml")}
    done = subprocess.run(keeper_command(), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "PLANTED" not in done.stdout + done.stderr
    assert done.returncode != 0 and "missing.yaml" in done.stderr


def test_the_keepers_environment_holds_no_redis_password() -> None:
    from gateway.process.keeper import keeper_env

    environ = {"LINKGW_CONFIG": "/etc/linkgw/gateway.yaml", "LINKGW_AMI_SECRET": "ami-s",
               "LINKGW_REDIS_PASSWORD": "redis-s", "OTHER_NAME": "redis-s", "PATH": "/bin"}
    assert keeper_env(environ, ("redis-s", "")) == {
        "LINKGW_CONFIG": "/etc/linkgw/gateway.yaml", "LINKGW_AMI_SECRET": "ami-s",
        "PATH": "/bin"}
    assert keeper_env(environ, ("",)) == environ  # no password: nothing withheld


def test_a_connection_that_does_not_ask_or_stays_too_long_is_closed(rig: tuple[
        Keeper, FakeAmi, Path, Clock]) -> None:
    """A full table of silent connections cannot lock the programs out: each must ask
    within QUESTION_WAIT, and is closed ANSWER_LIFE after its question."""
    from gateway.process.keeper import ANSWER_LIFE, QUESTION_WAIT

    keeper, _, path, clock = rig
    silent = _client(path)
    keeper.step(2.0)
    asking, answer = _ask(keeper, path, b"u-1\n")
    assert (answer, len(keeper.clients)) == (b".\n", 2)
    clock.now += QUESTION_WAIT
    keeper.step(0.0)
    assert silent.recv(10) == b"" and len(keeper.clients) == 1  # the silent one went
    clock.now += ANSWER_LIFE
    keeper.step(0.0)
    assert asking.recv(10) == b"" and keeper.clients == {}
    silent.close()
    asking.close()


def test_a_planted_lock_link_is_refused_and_the_peer_is_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 5: the lock is never opened through a link (its target would be
    overwritten with the keeper's pid); a program tells a keeper served by another user
    nothing (no uniqueid), and a keeper checks who connects (SO_PEERCRED)."""
    import os

    from gateway.process import keeper_client
    from gateway.process.keeper_wire import peer_uid

    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    lock_path, socket_path = paths(str(spool))
    lock_path.symlink_to(target)
    with pytest.raises(OSError):
        _take_lock(lock_path)
    assert target.read_text() == "keep me\n"
    a, b = socket.socketpair()
    assert peer_uid(a) == os.getuid()
    a.close()
    b.close()
    server = _listen(socket_path)
    monkeypatch.setattr(keeper_client, "trusted_peer", lambda sock: False)
    assert KeeperFeed.ask(str(spool), "u-1") is None
    asked, _ = server.accept()
    asked.settimeout(1.0)
    assert asked.recv(100) == b""  # closed without a word
    asked.close()
    server.close()


def test_the_keys_path_loads_only_the_standard_library_and_the_keepers_wire() -> None:
    """What a key's program imports to ask the keeper: not the keeper's server, not AMI,
    Redis, Twisted, structlog or YAML."""
    probe = ("import sys; import gateway.process.keeper_client; "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('gateway') or "
             "m.split('.')[0] in ('twisted', 'redis', 'structlog', 'yaml'))))")
    done = subprocess.run([sys.executable, "-I", "-c",
                           f"import sys; sys.path.insert(0, {str(REPO)!r}); {probe}"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["gateway", "gateway.process", "gateway.process.keeper_client",
                                   "gateway.process.keeper_wire"]


def test_the_process_package_imports_itself_in_no_circle() -> None:
    """Every import between gateway.process modules, those inside functions too."""
    folder = REPO / "gateway/process"
    edges: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges[path.stem] = {n.module.rsplit(".", 1)[1] for n in ast.walk(tree)
                            if isinstance(n, ast.ImportFrom) and n.module
                            and n.module.startswith("gateway.process.")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    assert sorted(m for m in edges if reaches(m, m, set())) == []


def test_what_the_keeper_sent_before_the_deadline_is_read_after_it() -> None:
    """The program may be busy playing the code prompt past the window's deadline: the
    digits the keeper sent meanwhile are still read (then the window judges them by
    when they were typed); only waiting stops at the deadline."""
    ours, keeper = socket.socketpair()
    feed = KeeperFeed(ours, [], b"")
    keeper.sendall(f"D 1 {T:.3f}\nD 0 {T + 0.2:.3f}\n".encode())
    past = time.monotonic() - 1.0
    assert feed.next(past) == ("1", T)
    assert feed.next(past) == ("0", round(T + 0.2, 3))
    assert feed.next(past) is None  # nothing more there
    keeper.close()
    feed.close()
