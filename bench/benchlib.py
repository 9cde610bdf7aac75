"""What every benchmark needs: temporary homes' passphrase, free loopback ports, node processes' environment, RSS."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from node.cli import PASSPHRASE_ENV

PASSPHRASE = "bench passphrase, temporary homes only"


def ms(seconds: float) -> float:
    return seconds * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(pycache: Path) -> dict[str, str]:
    """The node processes' environment: the passphrase, and compiled modules kept in `pycache`.

    As on an installed node, modules are compiled once and then loaded from bytecode, even where the
    environment says not to write bytecode (PYTHONDONTWRITEBYTECODE); the cache is the bench's own temporary
    directory, so nothing is written into the checkout.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, PASSPHRASE_ENV: PASSPHRASE, "PYTHONPYCACHEPREFIX": str(pycache)}


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (0 where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
