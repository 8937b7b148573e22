"""A TCP relay for the lab, so a test can cut a link (the gateway's AMI connection)
without touching either end."""

from __future__ import annotations

import socket
import threading


class Relay:
    def __init__(self, listen_port: int, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.port = self.server.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self.cuts = 0
        self.blocked = False  # while set, new connections are closed at once
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
            except OSError:
                client.close()
                continue
            # the 5 s was for connecting only: left on the socket, a link idle for 5 s
            # timed out in recv() and was closed (the gateway saw AMI drop every 5 s)
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:  # this link is over: a cut only counts the live ones
            self._pairs = [p for p in self._pairs if src not in p]

    def cut(self) -> int:
        """Close every relayed connection now; new ones are accepted as before."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self.cuts += 1
        return len(pairs)

    def block(self) -> int:
        """The link is down: cut what is connected and refuse reconnections."""
        self.blocked = True
        return self.cut()

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self.server.close()
        self.cut()
