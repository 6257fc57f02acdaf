"""A TCP port of 127.0.0.1 that nothing listens on (bound and released: free unless something takes it meanwhile)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
