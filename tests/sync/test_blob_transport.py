"""Blob transfer: signed requests checked in memory, then real aiohttp servers on loopback.

A holder answers only a fresh request signed by a trusted node for itself and that blob, and only if
that node may have it; a requester keeps only bytes that hash to the ID it asked for, never more than
it allowed, and never leaves a temporary file behind.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from crypto.identity import Identity, verify_signature
from node.blobs import BlobMismatch, BlobStore, blob_id
from sync.blob_transfer import (
    MAX_SKEW,
    BlobRejectReason,
    BlobRequestChecker,
    BlobRequestRejected,
    make_blob_request,
)
from sync.blob_transport import BLOB_PATH, BlobFetchError, BlobTooLarge, blob_handler, fetch_blob
from sync.errors import LocalProtocolError
from sync.request_tokens import NONCE_BYTES

ALICE = Identity.from_secret_bytes(bytes(range(64)))  # asks for blobs
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))  # holds them
MALLORY = Identity.from_secret_bytes(bytes(range(128, 192)))  # not trusted by Bob
NOW = 1_700_000_000.0
BLOB = blob_id(b"some ciphertext")
OTHER_BLOB = blob_id(b"other ciphertext")
DOMAIN = b"seajust-blob-request-v1\n"
TRUSTED = {ALICE.node_id: ALICE.public.sign_key}


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def counting_rng() -> Callable[[int], bytes]:
    counter = iter(range(1, 1_000_000))

    def rng(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    return rng


def bob_checker(clock: Callable[[], float] | None = None, **kwargs: Any) -> BlobRequestChecker:
    return BlobRequestChecker(BOB.node_id, TRUSTED.get, clock=clock or Clock(), **kwargs)


def request(
    me: Identity = ALICE, *, holder_id: str = BOB.node_id, blob: str = BLOB, now: float = NOW, **kwargs: Any
) -> str:
    return make_blob_request(me, holder_id=holder_id, blob_id=blob, now=now, **kwargs)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed(fields: dict[str, Any], signer: Identity = ALICE, domain: bytes = DOMAIN) -> str:
    """A token with arbitrary fields, properly signed: for checks that must not rely on the signature."""
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return f"SJBLOB {b64url(payload)}.{b64url(signer.sign(domain + payload))}"


def good_fields(**changes: Any) -> dict[str, Any]:
    fields = {
        "v": 1,
        "from": ALICE.node_id,
        "to": BOB.node_id,
        "blob": BLOB,
        "time": int(NOW),
        "nonce": b64url(os.urandom(NONCE_BYTES)),
    }
    fields.update(changes)
    return fields


def rejected(checker: BlobRequestChecker, header: str, blob: str = BLOB) -> BlobRequestRejected:
    with pytest.raises(BlobRequestRejected) as info:
        checker.check(header, blob)
    return info.value


# -- tokens, in memory ----------------------------------------------------------------------------


def test_a_fresh_request_from_a_trusted_node_names_the_requester() -> None:
    assert bob_checker().check(request(), BLOB) == ALICE.node_id


def test_token_wire_format() -> None:
    header = request(rng=lambda n: b"\x07" * n)
    scheme, token = header.split(" ")
    body, sig = token.split(".")
    payload = unb64url(body)
    assert scheme == "SJBLOB"
    assert json.loads(payload) == {
        "v": 1,
        "from": ALICE.node_id,
        "to": BOB.node_id,
        "blob": BLOB,
        "time": int(NOW),
        "nonce": b64url(b"\x07" * 16),
    }
    verify_signature(ALICE.public.sign_key, unb64url(sig), DOMAIN + payload)
    assert "=" not in token
    assert request(rng=lambda n: b"\x07" * n) == header  # Ed25519 is deterministic: pinned randomness, pinned token


def test_each_request_has_a_new_nonce() -> None:
    assert request() != request()


def test_requests_for_malformed_blob_ids_are_never_made() -> None:
    for bad in ("../api/v1/cases", BLOB.upper(), BLOB[:10]):
        with pytest.raises(LocalProtocolError):
            request(blob=bad)


def test_unknown_node_is_untrusted_sender() -> None:
    error = rejected(bob_checker(), request(MALLORY))
    assert error.reason is BlobRejectReason.UNTRUSTED_SENDER
    assert error.peer == MALLORY.node_id


def test_tampered_signature_is_bad_signature() -> None:
    body, sig = request().removeprefix("SJBLOB ").split(".")
    flipped = bytearray(unb64url(sig))
    flipped[10] ^= 1
    error = rejected(bob_checker(), f"SJBLOB {body}.{b64url(bytes(flipped))}")
    assert error.reason is BlobRejectReason.BAD_SIGNATURE
    assert error.peer == ALICE.node_id


def test_tampered_body_is_bad_signature() -> None:
    body, sig = request().removeprefix("SJBLOB ").split(".")
    fields = json.loads(unb64url(body))
    fields["time"] += 1
    forged = b64url(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    assert rejected(bob_checker(), f"SJBLOB {forged}.{sig}").reason is BlobRejectReason.BAD_SIGNATURE


def test_claiming_to_be_a_trusted_node_is_bad_signature() -> None:
    assert rejected(bob_checker(), signed(good_fields(), MALLORY)).reason is BlobRejectReason.BAD_SIGNATURE


def test_a_signature_made_for_another_purpose_is_bad_signature() -> None:
    for domain in (b"", b"seajust-card-v1\n", b"seajust-blob-request-v2\n"):
        assert rejected(bob_checker(), signed(good_fields(), domain=domain)).reason is BlobRejectReason.BAD_SIGNATURE


def test_a_token_for_another_node_is_wrong_recipient() -> None:
    error = rejected(bob_checker(), request(holder_id=MALLORY.node_id))
    assert error.reason is BlobRejectReason.WRONG_RECIPIENT


def test_a_token_for_another_blob_is_wrong_blob() -> None:
    assert rejected(bob_checker(), request(blob=OTHER_BLOB)).reason is BlobRejectReason.WRONG_BLOB


@pytest.mark.parametrize("offset", [-MAX_SKEW - 1, MAX_SKEW + 1, -86400, 86400 * 365])
def test_too_old_or_too_new_is_expired(offset: float) -> None:
    assert rejected(bob_checker(), request(now=NOW + offset)).reason is BlobRejectReason.EXPIRED


@pytest.mark.parametrize("offset", [-MAX_SKEW, MAX_SKEW])
def test_clock_skew_up_to_the_limit_is_accepted(offset: float) -> None:
    assert bob_checker().check(request(now=NOW + offset), BLOB) == ALICE.node_id


def test_custom_skew() -> None:
    checker = bob_checker(max_skew=10)
    assert rejected(checker, request(now=NOW - 11)).reason is BlobRejectReason.EXPIRED
    assert checker.check(request(now=NOW - 10), BLOB) == ALICE.node_id


def test_a_replayed_token_is_refused() -> None:
    checker = bob_checker()
    header = request()
    checker.check(header, BLOB)
    error = rejected(checker, header)
    assert error.reason is BlobRejectReason.REPLAY
    assert error.peer == ALICE.node_id


def test_a_replay_is_refused_for_as_long_as_the_token_passes_the_time_check() -> None:
    clock = Clock()
    checker = bob_checker(clock)
    header = request(now=NOW + MAX_SKEW)  # dated as far ahead as allowed
    checker.check(header, BLOB)
    for later in (1, MAX_SKEW, 2 * MAX_SKEW):
        clock.now = NOW + later
        assert rejected(checker, header).reason is BlobRejectReason.REPLAY
    clock.now = NOW + 2 * MAX_SKEW + 1
    assert rejected(checker, header).reason is BlobRejectReason.EXPIRED


def test_the_same_nonce_from_another_sender_is_not_a_replay() -> None:
    checker = BlobRequestChecker(BOB.node_id, {**TRUSTED, MALLORY.node_id: MALLORY.public.sign_key}.get, clock=Clock())
    nonce = b64url(b"\x01" * 16)
    checker.check(signed(good_fields(nonce=nonce)), BLOB)
    assert checker.check(signed(good_fields(nonce=nonce, **{"from": MALLORY.node_id}), MALLORY), BLOB)


def test_nonce_memory_is_bounded_and_dropping_never_reopens_a_replay() -> None:
    clock = Clock()
    checker = bob_checker(clock, limit=3)
    headers = [request(now=NOW - 50 + i) for i in range(6)]
    for header in headers:
        checker.check(header, BLOB)
    assert len(checker._nonces) <= 3
    for header in headers:
        assert rejected(checker, header).reason is BlobRejectReason.REPLAY
    # a token dated no later than a dropped one is refused; a newer one still works
    assert rejected(checker, request(now=NOW - 48)).reason is BlobRejectReason.REPLAY
    assert checker.check(request(now=NOW), BLOB) == ALICE.node_id


def test_nonces_are_forgotten_once_their_tokens_have_expired() -> None:
    clock = Clock()
    checker = bob_checker(clock)
    for _ in range(50):
        checker.check(request(), BLOB)
    clock.now = NOW + MAX_SKEW + 1
    checker.check(request(now=clock.now), BLOB)
    assert len(checker._nonces) == 1


def test_rejected_requests_are_not_remembered() -> None:
    checker = bob_checker()
    fields = good_fields()
    assert rejected(checker, signed(fields), OTHER_BLOB).reason is BlobRejectReason.WRONG_BLOB
    assert rejected(checker, signed(fields, MALLORY)).reason is BlobRejectReason.BAD_SIGNATURE
    assert checker.check(signed(fields), BLOB) == ALICE.node_id


MALFORMED_HEADERS = [
    "",
    "SJBLOB",
    "SJBLOB ",
    "Bearer abc",
    "sjblob " + request().removeprefix("SJBLOB "),
    request().replace(".", ""),
    request() + "=",
    request() + ".x",
    request().replace("SJBLOB ", "SJBLOB  "),
    "SJBLOB " + b64url(b"not json") + "." + b64url(bytes(64)),
    "SJBLOB " + b64url(b"[]") + "." + b64url(bytes(64)),
    "SJBLOB " + "A" * 5000 + "." + b64url(bytes(64)),
    request()[:-4],  # a truncated signature
]


@pytest.mark.parametrize("header", MALFORMED_HEADERS)
def test_malformed_headers(header: str) -> None:
    error = rejected(bob_checker(), header)
    assert error.reason is BlobRejectReason.MALFORMED
    assert error.peer is None


@pytest.mark.parametrize(
    "fields",
    [
        good_fields(v=2),
        good_fields(v=True),
        good_fields(v="1"),
        good_fields(time=str(int(NOW))),
        good_fields(time=NOW + 0.5),
        good_fields(time=True),
        good_fields(time=10**30),
        good_fields(time=-1),
        good_fields(nonce=b64url(bytes(15))),
        good_fields(nonce=b64url(bytes(17))),
        good_fields(nonce="not base64!"),
        good_fields(blob=None),
        good_fields(to=["x"]),
        good_fields(extra=1),
        {k: v for k, v in good_fields().items() if k != "nonce"},
    ],
)
def test_well_signed_but_ill_formed_tokens_are_malformed(fields: dict[str, Any]) -> None:
    assert rejected(bob_checker(), signed(fields)).reason is BlobRejectReason.MALFORMED


@given(st.text(max_size=600))
def test_arbitrary_headers_are_refused_and_nothing_else_is_raised(header: str) -> None:
    with pytest.raises(BlobRequestRejected):
        bob_checker().check(header, BLOB)


@given(st.binary(max_size=300), st.binary(max_size=80))
def test_arbitrary_token_parts_are_refused(body: bytes, sig: bytes) -> None:
    with pytest.raises(BlobRequestRejected):
        bob_checker().check(f"SJBLOB {b64url(body)}.{b64url(sig)}", BLOB)


def test_rejection_survives_pickling() -> None:
    import pickle

    error = BlobRequestRejected(BlobRejectReason.REPLAY, "token used before", peer="X")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, copy.peer, copy.message) == (error.reason, error.detail, "X", error.message)


# -- over HTTP, on loopback -----------------------------------------------------------------------

ServerFactory = Callable[..., Awaitable[TestServer]]
Rejection = tuple[str | None, str, str]


class Holder:
    """Bob's side: a blob store, a checker, and records of what the handler asked."""

    def __init__(self, root: Path) -> None:
        self.store = BlobStore(root)
        self.checker = bob_checker(time.time)
        self.rejections: list[Rejection] = []
        self.asked: list[tuple[str, str]] = []
        self.allowed = True
        self.paths: dict[str, Path] = {}  # overrides of where a blob is read from

    def may_fetch(self, requester: str, blob: str) -> bool:
        self.asked.append((requester, blob))
        return self.allowed

    def blob_path(self, blob: str) -> Path | None:
        if blob in self.paths:
            return self.paths[blob]
        return self.store.path(blob) if self.store.has(blob) else None

    def app(self) -> web.Application:
        app = web.Application()
        handler = blob_handler(
            self.checker,
            may_fetch=self.may_fetch,
            blob_path=self.blob_path,
            rejections=lambda *args: self.rejections.append(args),
        )
        app.router.add_get(BLOB_PATH, handler)
        return app


@pytest.fixture
def holder(tmp_path: Path) -> Holder:
    return Holder(tmp_path / "bob")


@pytest.fixture
def requester_store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "alice")


@pytest.fixture
async def bob_url(holder: Holder, aiohttp_server: ServerFactory) -> str:
    server = await aiohttp_server(holder.app(), host="127.0.0.1")
    return str(server.make_url("/"))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def temp_files(store: BlobStore) -> list[Path]:
    return list((store.root / "tmp").iterdir())


async def fetch(
    http: aiohttp.ClientSession, url: str, store: BlobStore, blob: str, *, me: Identity = ALICE, max_bytes: int = 2**30
) -> None:
    await fetch_blob(http, url, me, holder_id=BOB.node_id, blob_id=blob, store=store, max_bytes=max_bytes)


async def test_a_26_mb_blob_arrives_byte_identical(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    data = os.urandom(26 * 1024 * 1024)
    ident = holder.store.put(data)
    await fetch(http, bob_url, requester_store, ident, max_bytes=len(data))
    assert requester_store.read(ident) == data
    assert requester_store.ids() == [ident]
    assert temp_files(requester_store) == []
    assert holder.asked == [(ALICE.node_id, ident)]
    assert holder.rejections == []


async def test_the_holder_serves_an_octet_stream(holder: Holder, bob_url: str, http: aiohttp.ClientSession) -> None:
    ident = holder.store.put(b"ciphertext")
    url = bob_url.rstrip("/") + BLOB_PATH.format(blob_id=ident)
    async with http.get(url, headers={"Authorization": request(blob=ident, now=time.time())}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert await resp.read() == b"ciphertext"


async def test_tampered_bytes_are_refused_and_nothing_is_kept(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024)
    ident = blob_id(data)
    altered = tmp_path / "altered"
    altered.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    holder.paths[ident] = altered
    with pytest.raises(BlobMismatch):
        await fetch(http, bob_url, requester_store, ident)
    assert requester_store.ids() == []
    assert temp_files(requester_store) == []


async def test_a_node_that_is_not_a_party_gets_403(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    ident = holder.store.put(b"case file")
    holder.allowed = False
    with pytest.raises(BlobFetchError) as info:
        await fetch(http, bob_url, requester_store, ident)
    assert info.value.status == 403
    assert holder.asked == [(ALICE.node_id, ident)]
    assert requester_store.ids() == []
    assert temp_files(requester_store) == []


async def test_an_unknown_blob_is_404(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    with pytest.raises(BlobFetchError) as info:
        await fetch(http, bob_url, requester_store, blob_id(b"not held"))
    assert info.value.status == 404
    assert temp_files(requester_store) == []


async def test_an_untrusted_node_gets_401_and_the_rejection_is_recorded(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    ident = holder.store.put(b"case file")
    with pytest.raises(BlobFetchError) as info:
        await fetch(http, bob_url, requester_store, ident, me=MALLORY)
    assert info.value.status == 401
    assert holder.asked == []  # refused before the case is even looked at
    assert [(peer, reason) for peer, reason, _ in holder.rejections] == [(MALLORY.node_id, "untrusted_sender")]
    assert requester_store.ids() == []


async def test_a_replayed_request_gets_401_with_nothing_useful_in_it(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession
) -> None:
    ident = holder.store.put(b"case file")
    url = bob_url.rstrip("/") + BLOB_PATH.format(blob_id=ident)
    header = request(blob=ident, now=time.time())
    async with http.get(url, headers={"Authorization": header}) as first:
        assert first.status == 200
    async with http.get(url, headers={"Authorization": header}) as replay:
        assert replay.status == 401
        replay_body = await replay.json()
    async with http.get(url) as missing:
        assert missing.status == 401
        missing_body = await missing.json()
    assert replay_body == missing_body == {"error": "blob request refused"}
    assert [(peer, reason) for peer, reason, _ in holder.rejections] == [(ALICE.node_id, "replay"), (None, "malformed")]


async def test_a_token_for_another_blob_gets_401(holder: Holder, bob_url: str, http: aiohttp.ClientSession) -> None:
    ident = holder.store.put(b"case file")
    other = holder.store.put(b"another case file")
    url = bob_url.rstrip("/") + BLOB_PATH.format(blob_id=other)
    async with http.get(url, headers={"Authorization": request(blob=ident, now=time.time())}) as resp:
        assert resp.status == 401
        assert "case file" not in await resp.text()
    assert [reason for _, reason, _ in holder.rejections] == ["wrong_blob"]


async def test_max_bytes_announced_too_large_stores_nothing(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    ident = holder.store.put(data)
    with pytest.raises(BlobTooLarge):
        await fetch(http, bob_url, requester_store, ident, max_bytes=len(data) - 1)
    assert requester_store.ids() == []
    assert temp_files(requester_store) == []


async def test_max_bytes_exceeded_while_streaming_aborts_and_stores_nothing(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    sent: list[int] = []

    async def endless(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse early
        await resp.prepare(req)
        chunk = os.urandom(64 * 1024)
        for _ in range(16 * 1024):  # up to 1 GiB, far beyond any limit here
            await resp.write(chunk)
            sent.append(len(chunk))
        return resp

    app = web.Application()
    app.router.add_get(BLOB_PATH, endless)
    server = await aiohttp_server(app, host="127.0.0.1")
    with pytest.raises(BlobTooLarge):
        await fetch(http, str(server.make_url("/")), requester_store, BLOB, max_bytes=1024 * 1024)
    assert sum(sent) < 256 * 1024 * 1024
    assert requester_store.ids() == []
    assert temp_files(requester_store) == []


async def test_server_errors_carry_their_status(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    async def broken(req: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "internal"}, status=500)

    app = web.Application()
    app.router.add_get(BLOB_PATH, broken)
    server = await aiohttp_server(app, host="127.0.0.1")
    with pytest.raises(BlobFetchError) as info:
        await fetch(http, str(server.make_url("/")), requester_store, BLOB)
    assert info.value.status == 500
    assert temp_files(requester_store) == []


async def test_an_unreachable_holder_is_a_fetch_error(http: aiohttp.ClientSession, requester_store: BlobStore) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BlobFetchError) as info:
        await fetch(http, f"http://127.0.0.1:{port}", requester_store, BLOB)
    assert info.value.status is None
    assert temp_files(requester_store) == []


async def test_a_blob_already_held_is_not_fetched(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession, requester_store: BlobStore
) -> None:
    ident = requester_store.put(b"already here")
    await fetch(http, bob_url, requester_store, ident)
    assert holder.asked == [] and holder.rejections == []
    assert temp_files(requester_store) == []


async def test_a_signed_request_for_a_malformed_id_is_404_without_asking_about_the_case(
    holder: Holder, bob_url: str, http: aiohttp.ClientSession
) -> None:
    bad = "A" * 64  # an uppercase alias: never a blob ID
    url = bob_url.rstrip("/") + BLOB_PATH.format(blob_id=bad)
    header = signed(good_fields(blob=bad, time=int(time.time())))
    async with http.get(url, headers={"Authorization": header}) as resp:
        assert resp.status == 404
    assert holder.asked == [] and holder.rejections == []
