"""An example 12345 receiver for the push, standard library only: what the 12345 side
writes (in any language) to be told of each bridge. The lab runs it as a real process.

    LINKGW_PUSH_SECRET=… python -m gateway.lab.receiver --port 8443 \\
        --cert server.pem --key server.key --out events.jsonl

It checks ``X-Linkgw-Signature`` (``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``)
over the raw body, in constant time, within 5 minutes of its own clock; a missing or
wrong signature, or a tampered body, is answered 401 and not kept. It dedupes by the
event's ``id`` (the push is at least once) and answers 200 for a repeat. Each event kept
is one JSON line in ``--out``.

``--mode`` plays a broken receiver for the tests: ``500`` answers 500 to everything,
``hang`` never answers, ``reset`` closes the connection without an answer.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOLERANCE = 300
MAX_BODY = 1 << 20


def signature_ok(secret: bytes, header: str, raw: bytes, now: float) -> bool:
    parts = dict(p.partition("=")[::2] for p in header.split(",") if "=" in p)
    t, given = parts.get("t", ""), parts.get("v1", "")
    if not re.fullmatch(r"[0-9]{1,12}", t) or not re.fullmatch(r"[0-9a-f]{64}", given) \
            or abs(now - int(t)) > TOLERANCE:
        return False
    expected = hmac.new(secret, t.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class Store:
    """Events kept, deduped by id, appended to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            for line in text.split("\n"):  # one event a line (not at U+2028: JSON text)
                try:
                    self.seen.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn when the receiver was killed: sent again
            if text and not text.endswith("\n"):
                with path.open("a", encoding="utf-8") as out:
                    out.write("\n")  # the next event starts a line of its own

    def keep(self, event: dict[str, object]) -> bool:
        with self.lock:
            if event["id"] in self.seen:
                return False
            self.seen.add(str(event["id"]))
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
            return True


def handler(secret: bytes, store: Store, mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # seconds a connection may sit idle (a slow sender is cut)
        protocol_version = "HTTP/1.1"  # keep-alive: one connection for many events

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length_text = self.headers.get("Content-Length") or ""
            if not re.fullmatch(r"[0-9]{1,7}", length_text) or int(length_text) > MAX_BODY:
                self.close_connection = True  # the unread body must not read as a request
                self._answer(413 if length_text.isdigit() else 411)
                return  # nothing read beyond the headers: no body is buffered unsigned
            length = int(length_text)
            raw = self.rfile.read(length)
            if mode == "hang":
                time.sleep(3600)
            if mode == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                return
            if mode == "500":
                self._answer(500)
                return
            if not signature_ok(secret, self.headers.get("X-Linkgw-Signature", ""), raw,
                                time.time()):
                self._answer(401)
                return
            try:
                event = json.loads(raw)
                event["id"]
            except (ValueError, KeyError, TypeError):
                self._answer(400)
                return
            store.keep({"received_at": time.time(), **event})
            self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.lab.receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="server certificate (PEM); none: plain http")
    parser.add_argument("--key", help="its private key (PEM)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--secret-env", default="LINKGW_PUSH_SECRET")
    parser.add_argument("--mode", choices=("ok", "500", "hang", "reset"), default="ok")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env, "").encode()
    if not secret:
        print(f"receiver: {args.secret_env} is not set", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", args.port),
                                 handler(secret, Store(args.out), args.mode))
    server.daemon_threads = True
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"receiver: listening on 127.0.0.1:{args.port} ({args.mode})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
