"""Real node processes on loopback for multi-node tests: create homes, introduce them, run them.

Each node is `python -m node.cli run HOME` in its own process, talking to the others over
127.0.0.1 exactly as deployed nodes do; the test drives them through their HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from crypto.authorship import sign_update
from crypto.keystore import load_keyfile
from node.cli import main as cli_main
from node.crdt import CrdtDocument, DocumentChange
from node.runtime import Node, open_node
from node.tokens import create_token
from sync.messages import SignedUpdate, Updates
from sync.protocol import HelloCache, PeerKeys, Role, SyncSession
from sync.transport import SYNC_PATH

PASSPHRASE = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SEAJUST_PASSPHRASE"] = PASSPHRASE
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class NodeProc:
    home: Path
    name: str
    country: str
    port: int
    node_id: str = ""
    token: str = ""
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.log_path = self.home.parent / f"{self.home.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> NodeProc:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", str(self.home)],
            env=node_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"node {self.name} did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token if token is None else token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            with exc:  # an unclosed error response is a ResourceWarning, an error under filterwarnings
                raw = exc.read()
            raise ApiError(exc.code, json.loads(raw) if raw else None) from None

    def contacts(self) -> list[dict[str, Any]]:
        result = self.api("GET", "/api/v1/contacts")
        assert isinstance(result, list)
        return result


def init_node(base: Path, name: str, country: str, role: str = "authority") -> NodeProc:
    port = free_port()
    home = base / name.lower().replace(" ", "-")
    code = cli_main(
        ["init", str(home), "--name", name, "--country", country, "--role", role, "--listen", f"127.0.0.1:{port}"]
    )
    assert code == 0
    node = NodeProc(home=home, name=name, country=country, port=port)
    opened = open_node(home, PASSPHRASE)
    try:
        node.node_id = opened.node_id
        node.token = create_token(opened.db, "tests")
    finally:
        opened.close()
    return node


THREE_AUTHORITIES = (("Thailand", "TH"), ("Viet Nam", "VN"), ("Philippines", "PH"))


def open_trusting(homes: list[Path]) -> list[Node]:
    """The nodes of these homes opened in process, each having added every other's card."""
    nodes = [open_node(home, PASSPHRASE) for home in homes]
    cards = {n.node_id: n.card() for n in nodes}
    for opened in nodes:
        for node_id, card in cards.items():
            if node_id != opened.node_id:
                opened.peers.add_card(card, actor="tests")
    return nodes


def card_of(node: NodeProc) -> str:
    opened = open_node(node.home, PASSPHRASE)
    try:
        return opened.card()
    finally:
        opened.close()


def introduce(a: NodeProc, b: NodeProc) -> None:
    """Each node trusts the other's card (done offline, before the nodes run)."""
    for holder, other in ((a, b), (b, a)):
        opened = open_node(holder.home, PASSPHRASE)
        try:
            opened.peers.add_card(card_of(other), actor="tests")
        finally:
            opened.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (ApiError, OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def inject_updates(target: NodeProc, impostor_home: Path, entries: list[SignedUpdate], doc_id: str) -> None:
    """Dial `target` as the node in `impostor_home` (a trusted peer) and push crafted entries."""
    secrets = load_keyfile(impostor_home / "keys.json", PASSPHRASE)
    me = secrets.identity
    info = await node_info(target)
    peer = PeerKeys(info["node_id"], info["sign_key"], info["kx_key"])
    session = SyncSession(
        me, Role.DIALER, {peer.node_id: peer}.get, hello_cache=HelloCache(), expected_peer=peer.node_id
    )
    async with aiohttp.ClientSession() as http, http.ws_connect(target.url + SYNC_PATH) as ws:
        await ws.send_bytes(session.initiate())
        reply = await ws.receive_bytes(timeout=5)
        session.receive(reply)
        await ws.send_bytes(session.send(Updates(doc_id=doc_id, entries=tuple(entries))))
        await asyncio.sleep(0.5)


async def node_info(node: NodeProc) -> dict[str, object]:
    from crypto.card import parse_card

    card = parse_card(node.api("GET", "/api/v1/node")["card"])
    return {"node_id": card.node_id, "sign_key": card.sign_key, "kx_key": card.kx_key}


def forge_case_update(
    node: Node, doc_id: str, edit: Callable[[DocumentChange, CrdtDocument, Node], None]
) -> SignedUpdate:
    """A correctly signed and sealed update of a case by `node`, never checked against the case's rules:
    what a modified node could send. `edit(change, current_doc, node)` makes the change."""
    doc = node.store.get(doc_id)
    assert doc is not None
    body = doc.copy().change(lambda change: edit(change, doc, node))
    assert body is not None
    cipher = node.case_keys.cipher(doc_id)
    assert cipher is not None
    sealed = cipher.seal_update(body, author=node.node_id)
    seq = node.store.versions(doc_id).get(node.node_id, 0) + 1
    sig = sign_update(node.identity, doc_id=doc_id, seq_from=seq, seq_to=seq, update=sealed)
    return SignedUpdate(doc_id, node.node_id, seq, seq, sealed, sig)


def dump(node: NodeProc) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", "dump", str(node.home)],
        env=node_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return result.stdout.decode("utf-8", errors="replace")


def files_contain(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {n!r}" for n in needles if n in data]
    return found


def run_in_terminal(
    args: list[str], answers: list[str], *, prompt: bytes, unset: str, timeout: float = 30.0
) -> tuple[int, str]:
    """Run the CLI with a real pseudo-terminal (so it prompts), answering each `prompt` in turn; `unset` is the
    environment variable removed so the CLI has to ask."""
    import pty
    import select

    env = {k: v for k, v in node_env().items() if k != unset}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(sys.executable, [sys.executable, "-m", "node.cli", *args], env)
    output, answered = b"", 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if answered < len(answers) and output.count(prompt) > answered:  # answer each prompt once it appeared
            os.write(fd, answers[answered].encode() + b"\n")
            answered += 1
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def deliver_case(source: Node, target: Node, doc_id: str) -> list[SignedUpdate]:
    """Hand a case's grant and the entries `target` lacks from one in-process node to another, as sync would."""
    grant = source.case_keys.grant_bytes(doc_id)
    assert grant is not None
    target.case_keys.accept_grants([grant], via=source.node_id)
    result = target.store.apply_remote(
        source.store.entries_missing(doc_id, target.store.versions(doc_id)), via=source.node_id
    )
    return list(result.stored)
