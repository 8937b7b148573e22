"""Free loopback ports for one lab, chosen by the kernel."""

from __future__ import annotations

import socket


def free_ports(count: int, kind: int = socket.SOCK_STREAM) -> list[int]:
    """``count`` distinct ports free for TCP and UDP on 127.0.0.1 right now."""
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                udp.close()
                continue
            held += [tcp, udp]
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports
