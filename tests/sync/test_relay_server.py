"""The relay over HTTP on loopback: real envelopes between real identities, the client functions, the
errors a stranger can provoke (always JSON 4xx), and the `seajust relay` command as a process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from nodeproc import free_port, node_env

from crypto.envelope import open_envelope, seal
from crypto.identity import Identity
from sync.mailbox import MAIL_TOPIC
from sync.relay_auth import RelayRequestChecker, make_relay_request
from sync.relay_client import RelayError, ack, deposit, fetch
from sync.relay_frames import FrameError, decode_deposit, decode_mail, encode_deposit, encode_mail
from sync.relay_server import ACK_PATH, DEPOSIT_PATH, FETCH_PATH, STATUS_PATH, make_relay_app
from sync.relay_store import DB_NAME, RelayStore

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))
KEYS = {node.node_id: node.public.sign_key for node in (ALICE, BOB, CAROL)}
MARKER = b"MARKER-7f3c-plaintext-that-must-never-reach-the-relay"

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
ServerFactory = Callable[..., Awaitable[TestServer]]


def envelope(sender: Identity, recipient: Identity, payload: bytes = b"hello", seq: int = 1) -> bytes:
    return seal(
        sender,
        recipient_id=recipient.node_id,
        recipient_kx_key=recipient.public.kx_key,
        topic=MAIL_TOPIC,
        stream=bytes(16),
        seq=seq,
        payload=payload,
    )


class Relay:
    def __init__(self, client: Client, store: RelayStore) -> None:
        self.client = client
        self.store = store
        self.url = str(client.make_url("")).rstrip("/")
        self.http: aiohttp.ClientSession = client.session

    async def post(self, path: str, body: bytes, header: str | None) -> tuple[int, Any, Mapping[str, str]]:
        headers = {} if header is None else {"Authorization": header}
        async with self.http.post(self.url + path, data=body, headers=headers) as resp:
            raw = await resp.read()
            answer = json.loads(raw) if resp.content_type == "application/json" else raw
            return resp.status, answer, resp.headers


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RelayStore]:
    opened = RelayStore.in_directory(tmp_path / "relay")
    yield opened
    opened.close()


async def start(aiohttp_client: ClientFactory, store: RelayStore, **kwargs: Any) -> Relay:
    app = make_relay_app(store, checker=RelayRequestChecker(), **kwargs)
    return Relay(await aiohttp_client(app), store)


@pytest.fixture
async def relay(aiohttp_client: ClientFactory, store: RelayStore) -> Relay:
    return await start(aiohttp_client, store)


# -- the round trip ---------------------------------------------------------------------------------


async def test_deposit_fetch_ack_round_trip(relay: Relay) -> None:
    mail = [envelope(ALICE, BOB, b"first", 1), envelope(ALICE, BOB, b"second", 2)]
    before = time.time()
    assert await deposit(relay.http, relay.url, ALICE, mail) == 2
    items = await fetch(relay.http, relay.url, BOB)
    assert [e for _, e in items] == mail
    opened = [open_envelope(BOB, e, sender_sign_key=KEYS.get) for _, e in items]
    assert [(o.sender_id, o.payload) for o in opened] == [(ALICE.node_id, b"first"), (ALICE.node_id, b"second")]
    assert await fetch(relay.http, relay.url, BOB, after=items[0][0]) == items[1:]
    assert await ack(relay.http, relay.url, BOB, items[-1][0]) == 2
    assert await fetch(relay.http, relay.url, BOB) == []
    assert relay.store.usage().messages == 0
    status, answer, _ = await relay.post(DEPOSIT_PATH, b"", make_relay_request(ALICE, "deposit", b""))
    assert (status, answer["stored"]) == (200, 0)
    assert before + 14 * 86400 - 1 <= answer["expires_at"] <= time.time() + 14 * 86400 + 1


async def test_the_deposit_answer_is_json_with_the_expiry(aiohttp_client: ClientFactory, store: RelayStore) -> None:
    relay = await start(aiohttp_client, store, ttl_seconds=3600)
    body = encode_deposit([envelope(ALICE, BOB)])
    now = time.time()
    status, answer, _ = await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "deposit", body))
    assert status == 200
    assert answer["stored"] == 1
    assert now + 3600 - 1 <= answer["expires_at"] <= now + 3600 + 1


async def test_fetch_pages_by_max_bytes(relay: Relay) -> None:
    mail = [envelope(ALICE, BOB, bytes(1000), seq) for seq in range(1, 5)]
    await deposit(relay.http, relay.url, ALICE, mail)
    first = await fetch(relay.http, relay.url, BOB, max_bytes=2 * len(mail[0]))
    assert [e for _, e in first] == mail[:2]
    rest = await fetch(relay.http, relay.url, BOB, after=first[-1][0], max_bytes=1)
    assert [e for _, e in rest] == mail[2:3]  # one at least, even when larger than max_bytes


async def test_the_fetch_answer_is_an_octet_stream_of_frames(relay: Relay) -> None:
    mail = envelope(ALICE, BOB)
    await deposit(relay.http, relay.url, ALICE, [mail])
    body = b'{"after":0}'
    async with relay.http.post(
        relay.url + FETCH_PATH, data=body, headers={"Authorization": make_relay_request(BOB, "fetch", body)}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Cache-Control"] == "no-store"
        raw = await resp.read()
    ((mail_id, got),) = decode_mail(raw)
    assert got == mail
    assert raw[:12] == mail_id.to_bytes(8, "big") + len(mail).to_bytes(4, "big")


async def test_another_node_cannot_fetch_or_ack_someone_elses_mail(relay: Relay) -> None:
    await deposit(relay.http, relay.url, ALICE, [envelope(ALICE, BOB)])
    assert await fetch(relay.http, relay.url, CAROL) == []
    assert await fetch(relay.http, relay.url, ALICE) == []  # not even its sender
    assert await ack(relay.http, relay.url, CAROL, 2**62) == 0
    assert await ack(relay.http, relay.url, ALICE, 2**62) == 0
    assert len(await fetch(relay.http, relay.url, BOB)) == 1


async def test_the_relay_file_holds_no_plaintext(relay: Relay, tmp_path: Path) -> None:
    payload = b"case notes: " + MARKER
    await deposit(relay.http, relay.url, ALICE, [envelope(ALICE, BOB, payload, seq) for seq in (1, 2)])
    files = [p for p in (tmp_path / "relay").iterdir() if p.name.startswith(DB_NAME)]
    assert {p.name for p in files} >= {DB_NAME, DB_NAME + "-wal"}
    data = b"".join(p.read_bytes() for p in files)
    assert ALICE.node_id.encode() in data  # the routing header is there, so these are the right files
    assert MARKER not in data
    assert MARKER[:16] not in data


# -- what strangers can provoke -----------------------------------------------------------------------


async def test_a_missing_or_bad_token_is_one_json_401(relay: Relay) -> None:
    body = encode_deposit([envelope(ALICE, BOB)])
    good = make_relay_request(ALICE, "deposit", body)
    answers = [
        await relay.post(DEPOSIT_PATH, body, None),
        await relay.post(DEPOSIT_PATH, body, "Bearer abc"),
        await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "fetch", body)),  # wrong op
        await relay.post(DEPOSIT_PATH, body + b"\x00", good),  # body mismatch
        await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "deposit", body, now=time.time() - 3600)),
    ]
    for status, answer, headers in answers:
        assert status == 401
        assert answer == {"error": "relay request refused"}
        assert headers["WWW-Authenticate"] == "SJRELAY"
    assert (await relay.post(DEPOSIT_PATH, body, good))[0] == 200
    status, answer, _ = await relay.post(DEPOSIT_PATH, body, good)  # replayed
    assert (status, answer) == (401, {"error": "relay request refused"})
    assert relay.store.usage().messages == 1


async def test_a_bad_token_is_refused_before_the_body_is_looked_at(relay: Relay) -> None:
    status, _, _ = await relay.post(DEPOSIT_PATH, b"\x00\x00\x00\x09trunc", None)
    assert status == 401


async def test_rejections_are_logged_with_reason_and_claimed_node_only(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="sync.relay_server")
    body = encode_deposit([envelope(ALICE, BOB, MARKER)])
    await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "ack", body))
    await relay.post(DEPOSIT_PATH, encode_deposit([envelope(CAROL, BOB, MARKER)]), None)
    other = encode_deposit([envelope(CAROL, BOB, MARKER)])
    await relay.post(DEPOSIT_PATH, other, make_relay_request(ALICE, "deposit", other))
    text = caplog.text
    assert f"from {ALICE.node_id}: wrong_op" in text
    assert "from unknown node: malformed" in text
    assert f"refused deposit from {ALICE.node_id}: 403" in text
    assert MARKER.decode() not in text


async def test_depositing_someone_elses_envelope_is_403_and_stores_nothing(relay: Relay) -> None:
    with pytest.raises(RelayError) as info:
        await deposit(relay.http, relay.url, ALICE, [envelope(ALICE, BOB), envelope(CAROL, BOB)])
    assert info.value.status == 403
    assert "only envelopes it sent" in info.value.message
    assert relay.store.usage().messages == 0


async def test_over_quota_is_413(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    one = envelope(ALICE, BOB, bytes(1000))
    store = RelayStore(tmp_path / DB_NAME, max_per_sender=len(one))
    try:
        relay = await start(aiohttp_client, store)
        assert await deposit(relay.http, relay.url, ALICE, [one]) == 1
        with pytest.raises(RelayError) as info:
            await deposit(relay.http, relay.url, ALICE, [envelope(ALICE, BOB, bytes(1000), 2)])
        assert info.value.status == 413
        assert await deposit(relay.http, relay.url, CAROL, [envelope(CAROL, BOB, bytes(1000))]) == 1
    finally:
        store.close()


async def test_a_body_over_the_limit_is_413_json(aiohttp_client: ClientFactory, store: RelayStore) -> None:
    relay = await start(aiohttp_client, store, max_deposit_body=1000)
    body = encode_deposit([envelope(ALICE, BOB, bytes(2000))])
    status, answer, _ = await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "deposit", body))
    assert status == 413
    assert "error" in answer

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(3):
            yield bytes(500)

    async with relay.http.post(relay.url + DEPOSIT_PATH, data=chunks()) as resp:
        assert resp.status == 413
        assert "error" in await resp.json()


async def test_a_large_envelope_is_relayed_whole(relay: Relay) -> None:
    mail = envelope(ALICE, BOB, bytes(10 * 1024 * 1024))
    assert await deposit(relay.http, relay.url, ALICE, [mail]) == 1
    ((_, got),) = await fetch(relay.http, relay.url, BOB)
    assert got == mail


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00",  # truncated length
        b"\x00\x00\x00\x10short",  # truncated frame
        b"\x00\x00\x00\x00",  # empty frame
        encode_deposit([b"not an envelope"]),
        encode_deposit([envelope(ALICE, BOB)[:-100]]),
        encode_deposit([envelope(ALICE, ALICE)]),  # to itself
    ],
)
async def test_malformed_deposits_are_400_json_and_store_nothing(relay: Relay, body: bytes) -> None:
    status, answer, _ = await relay.post(DEPOSIT_PATH, body, make_relay_request(ALICE, "deposit", body))
    assert status == 400
    assert isinstance(answer["error"], str)
    assert relay.store.usage().messages == 0


@pytest.mark.parametrize(
    ("path", "op", "body"),
    [
        (FETCH_PATH, "fetch", b""),
        (FETCH_PATH, "fetch", b"not json"),
        (FETCH_PATH, "fetch", b"\xff\xfe"),
        (FETCH_PATH, "fetch", b"[0]"),
        (FETCH_PATH, "fetch", b"{}"),
        (FETCH_PATH, "fetch", b'{"after": -1}'),
        (FETCH_PATH, "fetch", b'{"after": true}'),
        (FETCH_PATH, "fetch", b'{"after": 1.5}'),
        (FETCH_PATH, "fetch", b'{"after": "1"}'),
        (FETCH_PATH, "fetch", b'{"after": 99999999999999999999999}'),
        (FETCH_PATH, "fetch", b'{"after": 0, "max_bytes": 0}'),
        (FETCH_PATH, "fetch", b'{"after": 0, "recipient": "X"}'),
        (FETCH_PATH, "fetch", b"[" * 3000),
        (ACK_PATH, "ack", b"{}"),
        (ACK_PATH, "ack", b'{"upto": null}'),
        (ACK_PATH, "ack", b'{"upto": 1, "after": 0}'),
    ],
)
async def test_bad_fetch_and_ack_bodies_are_400_json(relay: Relay, path: str, op: str, body: bytes) -> None:
    status, answer, _ = await relay.post(path, body, make_relay_request(ALICE, op, body))
    assert status == 400
    assert isinstance(answer["error"], str)


async def test_an_oversized_fetch_body_is_413(relay: Relay) -> None:
    body = json.dumps({"after": 0, "pad": "x" * 10000}).encode()
    status, answer, _ = await relay.post(FETCH_PATH, body, make_relay_request(ALICE, "fetch", body))
    assert status == 413
    assert "error" in answer


async def test_wrong_methods_and_paths_are_json(relay: Relay) -> None:
    async with relay.http.get(relay.url + DEPOSIT_PATH) as resp:
        assert resp.status == 405
        assert "error" in await resp.json()
    async with relay.http.get(relay.url + "/relay/v1/nothing") as resp:
        assert resp.status == 404
        assert "error" in await resp.json()


async def test_health_and_status_name_nobody(relay: Relay) -> None:
    await deposit(relay.http, relay.url, ALICE, [envelope(ALICE, BOB), envelope(ALICE, CAROL)])
    await deposit(relay.http, relay.url, CAROL, [envelope(CAROL, BOB)])
    async with relay.http.get(relay.url + "/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"ok": True})
    async with relay.http.get(relay.url + STATUS_PATH) as resp:
        assert resp.status == 200
        raw = await resp.text()
    status = json.loads(raw)
    assert (status["messages"], status["senders"], status["recipients"]) == (3, 2, 2)
    assert status["bytes"] > 0
    for node in (ALICE, BOB, CAROL):
        assert node.node_id not in raw


# -- expiry ---------------------------------------------------------------------------------------------


def rows(store: RelayStore) -> int:
    import sqlite3

    conn = sqlite3.connect(store.path)
    try:
        return int(conn.execute("SELECT count(*) FROM mail").fetchone()[0])
    finally:
        conn.close()


async def test_mail_is_expired_on_start_and_then_periodically(aiohttp_client: ClientFactory, store: RelayStore) -> None:
    now = time.time()
    store.deposit(ALICE.node_id, [envelope(ALICE, BOB)], ttl_seconds=1, now=now - 10)  # aged while the relay was down
    store.deposit(ALICE.node_id, [envelope(ALICE, BOB, seq=2)], ttl_seconds=0.3)
    assert rows(store) == 2
    await start(aiohttp_client, store, expire_every=0.05)
    assert rows(store) == 1
    for _ in range(100):
        if rows(store) == 0:
            break
        await asyncio.sleep(0.05)
    assert rows(store) == 0


# -- the client's strictness ---------------------------------------------------------------------------


async def fake_relay(aiohttp_server: ServerFactory, answer: web.Response) -> str:
    async def handler(_: web.Request) -> web.Response:
        return answer

    app = web.Application()
    app.router.add_post(FETCH_PATH, handler)
    app.router.add_post(DEPOSIT_PATH, handler)
    app.router.add_post(ACK_PATH, handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    "body",
    [
        b"\x00" * 11,  # truncated header
        (1).to_bytes(8, "big") + (10).to_bytes(4, "big") + b"short",
        encode_mail([(2, b"a")]) + encode_mail([(1, b"b")]),  # out of order
        encode_mail([(0, b"a")]),  # not above `after`
    ],
)
async def test_malformed_fetch_answers_are_relay_errors(aiohttp_server: ServerFactory, body: bytes) -> None:
    url = await fake_relay(aiohttp_server, web.Response(body=body))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(RelayError) as info:
            await fetch(http, url, BOB, after=0)
    assert info.value.status is None


@pytest.mark.parametrize("answer", [b"", b"[]", b'{"stored": -1}', b'{"stored": "1"}', b'{"deleted": 1}'])
async def test_malformed_json_answers_are_relay_errors(aiohttp_server: ServerFactory, answer: bytes) -> None:
    url = await fake_relay(aiohttp_server, web.Response(body=answer, content_type="application/json"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(RelayError):
            await deposit(http, url, ALICE, [envelope(ALICE, BOB)])


async def test_an_error_without_json_still_carries_its_status(aiohttp_server: ServerFactory) -> None:
    url = await fake_relay(aiohttp_server, web.Response(status=502, text="<html>bad gateway</html>"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(RelayError) as info:
            await ack(http, url, BOB, 5)
    assert info.value.status == 502
    assert info.value.message == "the relay answered HTTP 502"


async def test_an_unreachable_relay_is_a_relay_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(RelayError) as info:
            await fetch(http, f"http://127.0.0.1:{port}", BOB)
    assert info.value.status is None


# -- frames ----------------------------------------------------------------------------------------------


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=20))
def test_deposit_frames_round_trip(envelopes: list[bytes]) -> None:
    assert decode_deposit(encode_deposit(envelopes)) == envelopes


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=20), st.integers(0, 2**40))
def test_mail_frames_round_trip(envelopes: list[bytes], start_id: int) -> None:
    items = [(start_id + 3 * i, e) for i, e in enumerate(envelopes)]
    assert decode_mail(encode_mail(items)) == items


@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_frame_error_only(data: bytes) -> None:
    for decode in (decode_deposit, decode_mail):
        with contextlib.suppress(FrameError):
            decode(data)


def test_frames_refuse_what_cannot_be_encoded() -> None:
    with pytest.raises(FrameError):
        encode_deposit([b""])
    with pytest.raises(FrameError):
        encode_mail([(-1, b"x")])


# -- the command -------------------------------------------------------------------------------------------


@pytest.mark.processes
def test_the_relay_command_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "relay-data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "relay", str(data_dir), "--port", str(port)],
        env=node_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    assert json.loads(resp.read()) == {"ok": True}
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert time.monotonic() < deadline, "the relay did not start"
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert f"relay listening on http://127.0.0.1:{port}" in out.decode()
    assert (data_dir / DB_NAME).exists()
