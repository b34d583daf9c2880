"""Free loopback ports for simulated gateways (tests, benchmarks, full-stack runs)."""

from __future__ import annotations

import socket


def free_port_block(n: int, start: int = 21000, stop: int = 60000, stride: int = 211) -> int:
    """A base port with ``n`` consecutive free ports on 127.0.0.1 (checked by binding each).

    Raises ``OSError`` if no such block exists in ``[start, stop)``.
    """
    for base in range(start, stop - n, stride):
        if all(_is_free(p) for p in range(base, base + n)):
            return base
    raise OSError(f"no {n} consecutive free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
