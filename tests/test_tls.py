"""TLS: `seajust init --tls` makes a self-signed certificate, the node serves HTTPS with it, and two such nodes
(peers accepting each other's self-signed certificates with `peer_tls = "encrypt-only"`) sync over HTTPS."""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, free_port, node_env, wait_until

from crypto.keystore import read_public_node_id
from node.runtime import open_node
from node.tls import fingerprint
from node.tokens import create_token

pytestmark = pytest.mark.processes


def seajust(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=node_env(), capture_output=True, text=True, timeout=60
    )


class TlsNode:
    def __init__(self, base: Path, name: str, country: str) -> None:
        self.port = free_port()
        self.home = base / name.lower()
        made = seajust(
            "init", str(self.home), "--name", name, "--country", country, "--listen", f"127.0.0.1:{self.port}", "--tls"
        )
        assert made.returncode == 0, made.stderr
        self.printed = made.stderr
        self.node_id = read_public_node_id(self.home / "keys.json")
        opened = open_node(self.home, PASSPHRASE)
        try:
            self.token = create_token(opened.db, "tls tests")
        finally:
            opened.close()
        self.context = ssl.create_default_context(cadata=(self.home / "tls" / "cert.pem").read_text())
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", str(self.home)],
            env=node_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self.get("/healthz") == {"status": "ok"}, what="the HTTPS node")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5, context=self.context) as resp:
            return json.loads(resp.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5, context=self.context) as resp:
            return json.loads(resp.read())


@pytest.fixture
def tls_nodes(tmp_path: Path) -> Iterator[list[TlsNode]]:
    made: list[TlsNode] = []
    yield made
    for node in made:
        node.stop()


def test_a_node_serves_https_with_its_self_signed_certificate(tmp_path: Path, tls_nodes: list[TlsNode]) -> None:
    th = TlsNode(tmp_path, "Thailand", "TH")
    tls_nodes.append(th)
    cert = (th.home / "tls" / "cert.pem").read_bytes()
    shown = re.search(r"fingerprint[^:]*: ([0-9A-F:]{95})", th.printed)
    assert shown and shown.group(1) == fingerprint(cert)
    assert b"ENCRYPTED PRIVATE KEY" in (th.home / "tls" / "key.pem").read_bytes()  # sealed with the passphrase
    assert 'url = "https://127.0.0.1:' in (th.home / "seajust.toml").read_text()
    th.start()
    assert th.get("/api/v1/node")["node_id"] == th.node_id
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{th.port}/healthz", timeout=5)  # no plain HTTP on that port
    with pytest.raises(urllib.error.URLError):  # and the certificate is not one a default client trusts
        urllib.request.urlopen(th.url + "/healthz", timeout=5)


def test_two_tls_nodes_sync_over_https(tmp_path: Path, tls_nodes: list[TlsNode]) -> None:
    th, vn = TlsNode(tmp_path, "Thailand", "TH"), TlsNode(tmp_path, "Viet Nam", "VN")
    tls_nodes.extend([th, vn])
    for node in (th, vn):
        config = node.home / "seajust.toml"
        config.write_text(config.read_text() + 'peer_tls = "encrypt-only"\n')
    for holder, other in ((th, vn), (vn, th)):
        opened = open_node(holder.home, PASSPHRASE)
        try:
            opened.peers.add_card(card_of_home(other.home), actor="tests")
        finally:
            opened.close()
    th.start()
    vn.start()
    th.post("/api/v1/contacts", {"name": "Somchai"})
    wait_until(lambda: "Somchai" in {c["name"] for c in vn.get("/api/v1/contacts")}, what="sync over HTTPS")
    time.sleep(0.1)


def card_of_home(home: Path) -> str:
    opened = open_node(home, PASSPHRASE)
    try:
        return opened.card()
    finally:
        opened.close()
