"""The socket a server listens on, bound before anything else starts, with a plain
reason when it cannot be (the command line shows it without a traceback)."""

from __future__ import annotations

import errno
import socket


class PortInUse(Exception):
    """The address to listen on cannot be bound; the message says which and why."""


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"cannot listen on {shown}: the address is already in use") from None
        raise PortInUse(f"cannot listen on {shown}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
