"""The digit keeper of process mode: every digit a channel types, kept from before the
key's program starts.

A process-mode AGI program starts per key press; Python needs 100–250 ms before it can
log in to AMI, and meanwhile res_agi reads (and drops) the channel's frames. An item
code typed in one go with the key (``*1101``) would lose its first digits. FastAGI does
not lose them because its AMI session is always there; the keeper is that session for
process mode: one small process per host (a lock in the spool directory makes it one),
logged in to AMI for DTMF only, which remembers the last digits of each channel linkgw
armed (the seats' and agents' channels: ``LINKGW_SIDE`` set by ``[linkgw-armed]``; it asks
Asterisk once per channel, on its first digit) and answers on a Unix socket beside the
lock (mode 0600, in the spool directory). Nobody else's digits are kept (while Asterisk
has not answered about a channel in time, its digits are held until it does).

The detached process of every AGI program makes sure it runs (:func:`ensure_running`),
so from a host's first call on it is there before any key. It exits when AMI goes (an
Asterisk restart; the next call starts it again) or after :data:`IDLE_EXIT` seconds
without a question. Standard library only (and this project's AMI codec): it must not
cost the host what a gateway service costs.

The protocol, ASCII lines: the program sends ``<uniqueid>\\n``; the keeper answers with
``H <digit> <epoch>\\n`` for each digit it holds of that channel, oldest first, then
``.\\n``, then ``D <digit> <epoch>\\n`` for each new digit until the program hangs up.
Anything else is answered ``ERR\\n`` and the connection closed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import socket
import subprocess
import sys
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from gateway.ami.codec import AmiMessage, HeaderItems
from gateway.ami.errors import AmiActionError, AmiError, AmiTimeout
from gateway.process.keeper_wire import (
    DIGITS,
    encode_digit,
    parse_question,
    paths,
    trusted_peer,
)

#: Digits kept per channel, channels kept (the least recently typing goes first).
KEEP_DIGITS = 16
KEEP_CHANNELS = 20_000
#: A channel's digits are forgotten this long after its last one: a key's program asks
#: within seconds, and nobody else's digits are kept for longer than that.
KEEP_SECONDS = 60.0
#: Seconds without a question after which the keeper exits.
IDLE_EXIT = 6 * 3600.0
#: At most this many programs connected at once; a question is at most this long.
MAX_CLIENTS = 256
#: A connection must ask within this many seconds, and is closed this long after it
#: asked (a key's code window is seconds long): idle connections cannot fill the table.
QUESTION_WAIT = 2.0
ANSWER_LIFE = 120.0
MAX_QUESTION = 128
#: Set by ``[linkgw-armed]`` on every channel that may press linkgw's keys.
SIDE_VARIABLE = "LINKGW_SIDE"
#: Seconds the keeper waits for Asterisk's answer about a channel (a program waits 1 s
#: for the keeper's).
ASK_WAIT = 0.5

@dataclass
class DigitBook:
    """The last digits of each channel, and who is waiting for more (pure)."""

    keep_digits: int = KEEP_DIGITS
    keep_channels: int = KEEP_CHANNELS
    keep_seconds: float = KEEP_SECONDS
    # uniqueid → its digits and when each came (compact: a full book is a few MiB)
    typed: OrderedDict[str, tuple[str, array[float]]] = field(default_factory=OrderedDict)
    waiting: dict[str, set[int]] = field(default_factory=dict)  # uniqueid → client ids

    def digit(self, uniqueid: str, digit: str, at: float) -> set[int]:
        """A digit AMI reported; the clients to tell."""
        if digit not in DIGITS or not uniqueid:
            return set()
        digits, times = self.typed.pop(uniqueid, ("", array("d")))
        times.append(at)
        if len(times) > self.keep_digits:
            del times[0]
        self.typed[uniqueid] = ((digits + digit)[-self.keep_digits:], times)
        while len(self.typed) > self.keep_channels:
            self.typed.popitem(last=False)
        self.forget(at)
        return set(self.waiting.get(uniqueid, ()))

    def forget(self, now: float) -> None:
        """Drop the channels whose last digit is older than ``keep_seconds`` (the book
        is in the order of each channel's last digit)."""
        while self.typed:
            _, (_, times) = next(iter(self.typed.items()))
            if times[-1] >= now - self.keep_seconds:
                return
            self.typed.popitem(last=False)

    def drop(self, uniqueid: str) -> None:
        """Forget a channel's digits (it is not linkgw's after all)."""
        self.typed.pop(uniqueid, None)

    def ask(self, client: int, uniqueid: str) -> list[tuple[str, float]]:
        self.waiting.setdefault(uniqueid, set()).add(client)
        digits, times = self.typed.get(uniqueid, ("", array("d")))
        return list(zip(digits, times, strict=True))

    def gone(self, client: int) -> None:
        for uniqueid in [u for u, c in self.waiting.items() if client in c]:
            self.waiting[uniqueid].discard(client)
            if not self.waiting[uniqueid]:
                del self.waiting[uniqueid]


def digit_of(message: AmiMessage) -> tuple[str, str] | None:
    """(uniqueid, digit) of a digit the channel received, else None."""
    if message.event != "DTMFEnd" or message.get("Direction") != "Received":
        return None
    return message.get("Uniqueid"), message.get("Digit")


# -- the keeper process ------------------------------------------------------------------
class _Ami(Protocol):
    """What the keeper needs of its AMI session (:class:`gateway.ami.sync.SyncAmi`)."""

    def fileno(self) -> int: ...

    def pump(self) -> list[AmiMessage]: ...

    def take_events(self) -> list[AmiMessage]: ...

    def action(self, name: str, headers: HeaderItems = (),
               timeout: float | None = None) -> AmiMessage: ...


@dataclass
class ArmedChannels:
    """Which channels linkgw armed, each asked of Asterisk once (pure but for ``ask``):
    the answer is kept as long as a channel's digits would be, so a keeper holds no
    digit of a channel that is not a seat's or an agent's."""

    ask: Callable[[str], bool | None]  # channel → LINKGW_SIDE set on it? (None: no answer)
    keep_seconds: float = KEEP_SECONDS
    keep_channels: int = KEEP_CHANNELS
    known: OrderedDict[str, tuple[bool, float]] = field(default_factory=OrderedDict)

    def armed(self, uniqueid: str, channel: str, now: float) -> bool | None:
        """Whether to keep this channel's digit; None: Asterisk did not answer in time
        (a loaded machine). That is not remembered: the next digit asks again, and the
        digit is kept meanwhile (the key and its code are typed in one go; dropping them
        lost the code), until an answer says the channel is not linkgw's."""
        found = self.known.pop(uniqueid, None)
        if found is None or found[1] < now - self.keep_seconds:
            answer = self.ask(channel) if channel else False
            if answer is None:
                return None
            found = (answer, now)
        self.known[uniqueid] = (found[0], now)
        while len(self.known) > self.keep_channels:
            self.known.popitem(last=False)
        return found[0]


@dataclass
class _Client:
    sock: socket.socket
    until: float  # when it is closed: no question by then, or followed long enough
    buffer: bytes = b""
    asked: str = ""


class Keeper:
    """The keeper's loop: AMI events in, questions in, digits out."""

    def __init__(self, ami: _Ami, server: socket.socket,
                 clock: Callable[[], float] = time.time,
                 idle_exit: float = IDLE_EXIT) -> None:
        self.ami, self.server, self.clock, self.idle_exit = ami, server, clock, idle_exit
        self.book = DigitBook()
        self.armed = ArmedChannels(self._linkgw_channel)
        self.backlog: list[AmiMessage] = []  # events read, not handled yet
        self.clients: dict[int, _Client] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(ami.fileno(), selectors.EVENT_READ, "ami")
        self.selector.register(server, selectors.EVENT_READ, "server")
        self.last_question = clock()

    def run(self) -> str:
        """Until AMI goes or nobody asked for ``idle_exit`` seconds; why it stopped."""
        while True:
            stopped = self.step(60.0)
            if stopped:
                return stopped

    def step(self, timeout: float) -> str:
        """One wait for input (at most ``timeout`` s) and what it brought; why the
        keeper must stop, or ""."""
        now = self.clock()
        if now - self.last_question > self.idle_exit:
            return "idle"
        self.book.forget(now)
        for client_id in [i for i, c in self.clients.items() if c.until <= now]:
            self._drop(client_id)
        if self.clients:
            timeout = max(0.0, min(timeout, min(c.until for c in self.clients.values()) - now))
        for key, _ in self.selector.select(timeout=0.0 if self.backlog else timeout):
            if key.data == "ami":
                try:
                    self.backlog += self.ami.pump()
                except (AmiError, OSError) as exc:
                    return f"AMI gone: {exc}"
            elif key.data == "server":
                self._accept()
            else:
                self._read(key.data)
        # one batch a step, then the sockets again: a flood of digits from new channels
        # (each asked of Asterisk) cannot keep the programs' questions waiting
        batch, self.backlog = self.backlog, []
        try:
            for event in batch:
                self._event(event)
        except (AmiError, OSError) as exc:
            return f"AMI gone: {exc}"
        self.backlog += self.ami.take_events()  # read while Asterisk was asked
        return ""

    def _event(self, message: AmiMessage) -> None:
        found = digit_of(message)
        if found is None:
            return
        uniqueid, digit = found
        at = self.clock()
        if self.armed.armed(uniqueid, message.get("Channel"), at) is False:
            self.book.drop(uniqueid)  # what was kept while unsure is not a seat's
            return
        for client in self.book.digit(uniqueid, digit, at):
            self._send(client, encode_digit("D", digit, at))

    def _linkgw_channel(self, channel: str) -> bool | None:
        """Did ``[linkgw-armed]`` run on ``channel``? A channel gone is no; an AMI that
        does not answer within :data:`ASK_WAIT` is no answer (None)."""
        try:
            answer = self.ami.action("Getvar", {"Channel": channel, "Variable": SIDE_VARIABLE},
                                     timeout=ASK_WAIT)
        except AmiActionError:
            return False
        except AmiTimeout:
            return None
        return answer.get("Value") != ""

    def _accept(self) -> None:
        try:
            sock, _ = self.server.accept()
        except OSError:
            return
        if len(self.clients) >= MAX_CLIENTS or not trusted_peer(sock):
            sock.close()
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = _Client(sock, self.clock() + QUESTION_WAIT)
        self.selector.register(sock, selectors.EVENT_READ, sock.fileno())

    def _read(self, client_id: int) -> None:
        client = self.clients.get(client_id)
        if client is None:
            return
        try:
            data = client.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or client.asked:  # gone, or a second question: one per connection
            self._drop(client_id)
            return
        client.buffer += data
        if b"\n" not in client.buffer:
            if len(client.buffer) > MAX_QUESTION:
                self._refuse(client_id)
            return
        line, rest = client.buffer.split(b"\n", 1)
        uniqueid = parse_question(line) if len(line) <= MAX_QUESTION and not rest else None
        if uniqueid is None:
            self._refuse(client_id)
            return
        client.asked, client.buffer = uniqueid, b""
        self.last_question = self.clock()
        client.until = self.last_question + ANSWER_LIFE
        held = self.book.ask(client_id, uniqueid)
        self._send(client_id, b"".join(encode_digit("H", d, at) for d, at in held) + b".\n")

    def _send(self, client_id: int, data: bytes) -> None:
        client = self.clients.get(client_id)
        if client is None:
            return
        try:
            client.sock.sendall(data)
        except OSError:  # a program that does not read its answers is dropped
            self._drop(client_id)

    def _refuse(self, client_id: int) -> None:
        self._send(client_id, b"ERR\n")
        self._drop(client_id)

    def _drop(self, client_id: int) -> None:
        client = self.clients.pop(client_id, None)
        if client is None:
            return
        self.book.gone(client_id)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(client.sock)
        client.sock.close()


def _take_lock(lock_path: Path) -> TextIO | None:
    """The keeper's lock, held for its life; None when another keeper holds it. The
    folder must be safe and the lock a regular file of ours (never through a link)."""
    from gateway.bridge.spool import open_private, secure_folder

    secure_folder(lock_path.parent)
    handle = os.fdopen(open_private(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a",
                       encoding="ascii")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return handle


def _listen(socket_path: Path) -> socket.socket:
    """The keeper's socket, 0600 (only the user Asterisk runs as may ask)."""
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # a dead keeper's; we hold the lock, so nobody else's
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        server.bind(str(socket_path))
    finally:
        os.umask(old)
    server.listen(64)
    server.setblocking(False)
    return server


def main() -> int:
    """``python -m gateway.process.keeper`` (config: ``$LINKGW_CONFIG``)."""
    from gateway.ami.sync import SyncAmi, endpoint_address
    from gateway.config import load_config_file
    from gateway.process.logfile import log_line, log_path

    config = load_config_file(Path(os.environ.get("LINKGW_CONFIG",
                                                  "/etc/linkgw/gateway.yaml")),
                              secrets=False, process_mode=True)  # the Redis one is withheld
    if not config.ami.secret:
        raise SystemExit("linkgw keeper: the AMI secret is not set")
    lock_path, socket_path = paths(config.redis.spool_dir)
    lock = _take_lock(lock_path)
    if lock is None:
        return 0  # another keeper runs
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")  # who holds it, for an operator (and the benchmark)
    lock.flush()
    host, port = endpoint_address(config.ami.endpoint)
    try:
        ami = SyncAmi(host, port, config.ami.username, config.ami.secret, config.ami.auth,
                      timeout=5.0, events="dtmf")
        server = _listen(socket_path)
    except (AmiError, OSError) as exc:
        log_line(log_path(config), "keeper.failed", error=str(exc))
        return 1
    try:
        why = Keeper(ami, server).run()
    finally:
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        server.close()
        ami.close()
    log_line(log_path(config), "keeper.stopped", why=why)
    return 0


def ensure_running(spool_dir: str, withhold: tuple[str, ...] = ()) -> bool:
    """Start a keeper unless one holds the lock (called by detached processes, never on
    the way to an AGI answer). True when one was started.

    It runs isolated (``python -I``: no ``PYTHON*`` variable, no user site, not the
    working directory on its path; the package is taken from where this one was), from
    ``/``, and without the environment variables whose values are in ``withhold`` (the
    Redis password: the keeper talks to AMI only)."""
    lock_path, _ = paths(spool_dir)
    held = _take_lock(lock_path)
    if held is None:
        return False
    held.close()  # free again: the keeper takes it (two starting at once: one stays)
    devnull = subprocess.DEVNULL
    subprocess.Popen(keeper_command(), stdin=devnull, stdout=devnull, stderr=devnull,
                     start_new_session=True, close_fds=True, cwd="/",
                     env=keeper_env(os.environ, withhold))
    return True


def keeper_command() -> list[str]:
    """``python -I``, with this package's folder (and only it) put on the path."""
    root = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-c",
            f"import sys; sys.path.insert(0, {root!r}); "
            "from gateway.process.keeper import main; sys.exit(main())"]


def keeper_env(environ: Mapping[str, str], withhold: tuple[str, ...]) -> dict[str, str]:
    """The environment without any variable that holds one of ``withhold``'s values."""
    secrets = {v for v in withhold if v}
    return {k: v for k, v in environ.items() if v not in secrets}


if __name__ == "__main__":
    sys.exit(main())
