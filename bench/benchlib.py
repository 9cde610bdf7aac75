"""What every benchmark needs: temporary homes' passphrase, free loopback ports, node processes' environment, RSS."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class NodeProcess:
    """A node home run as a real process (`python -m node.cli run HOME`) on a loopback port, with an API token."""

    home: Path
    port: int
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.home.name}.log"

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start the node (`args` go to `run`); its output is appended to `log_path`."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "run", str(self.home), *args],
                env=node_env(self.home.parent / "pycache"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise SystemExit(f"bench: node {self.home.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout` seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def rss(self) -> float:
        return rss_mb(self.proc.pid) if self.proc is not None else 0.0

    @property
    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc is not None else 0.0
