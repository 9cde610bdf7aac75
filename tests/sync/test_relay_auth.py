"""Relay request tokens, in memory: self-certifying, bound to one operation and one body, used once.

The relay has no member list, so what these tests pin is that a token proves only "the holder of
this node ID's signing key asked for this operation with this exact body, just now, once".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.identity import Identity, verify_signature
from sync.errors import LocalProtocolError
from sync.relay_auth import (
    MAX_SKEW,
    RelayRejectReason,
    RelayRequestChecker,
    RelayRequestRejected,
    make_relay_request,
)
from sync.request_tokens import NONCE_BYTES

ALICE = Identity.from_secret_bytes(bytes(range(64)))
MALLORY = Identity.from_secret_bytes(bytes(range(128, 192)))
NOW = 1_700_000_000.0
BODY = b'{"after":0}'
DOMAIN = b"seajust-relay-request-v1\n"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def checker(clock: Callable[[], float] | None = None, **kwargs: Any) -> RelayRequestChecker:
    return RelayRequestChecker(clock=clock or Clock(), **kwargs)


def request(me: Identity = ALICE, op: str = "fetch", body: bytes = BODY, *, now: float = NOW, **kwargs: Any) -> str:
    return make_relay_request(me, op, body, now=now, **kwargs)


def good_fields(me: Identity = ALICE, **changes: Any) -> dict[str, Any]:
    fields = {
        "v": 1,
        "op": "fetch",
        "node": me.node_id,
        "sign_key": b64url(me.public.sign_key),
        "kx_key": b64url(me.public.kx_key),
        "time": int(NOW),
        "nonce": b64url(os.urandom(NONCE_BYTES)),
        "body": hashlib.sha256(BODY).hexdigest(),
    }
    fields.update(changes)
    return fields


def signed(fields: dict[str, Any], signer: Identity = ALICE, domain: bytes = DOMAIN) -> str:
    """A token with arbitrary fields, properly signed: for checks that must not rely on the signature."""
    payload = json.dumps(fields, separators=(",", ":")).encode()
    return f"SJRELAY {b64url(payload)}.{b64url(signer.sign(domain + payload))}"


def rejected(chk: RelayRequestChecker, header: str, op: str = "fetch", body: bytes = BODY) -> RelayRequestRejected:
    with pytest.raises(RelayRequestRejected) as info:
        chk.check(header, op, body)
    return info.value


def test_a_fresh_request_names_the_node_that_signed_it() -> None:
    assert checker().check(request(), "fetch", BODY) == ALICE.node_id


def test_any_node_passes_without_a_member_list() -> None:
    stranger = Identity.generate()
    assert checker().check(request(stranger), "fetch", BODY) == stranger.node_id


def test_the_default_time_is_now() -> None:
    assert RelayRequestChecker().check(make_relay_request(ALICE, "ack", b"x"), "ack", b"x") == ALICE.node_id


def test_token_wire_format() -> None:
    header = request(op="deposit", body=b"frames", rng=lambda n: b"\x07" * n)
    scheme, token = header.split(" ")
    body, sig = token.split(".")
    payload = unb64url(body)
    assert scheme == "SJRELAY"
    assert json.loads(payload) == {
        "v": 1,
        "op": "deposit",
        "node": ALICE.node_id,
        "sign_key": b64url(ALICE.public.sign_key),
        "kx_key": b64url(ALICE.public.kx_key),
        "time": int(NOW),
        "nonce": b64url(b"\x07" * 16),
        "body": hashlib.sha256(b"frames").hexdigest(),
    }
    verify_signature(ALICE.public.sign_key, unb64url(sig), DOMAIN + payload)
    assert "=" not in token
    assert request(op="deposit", body=b"frames", rng=lambda n: b"\x07" * n) == header  # deterministic


def test_each_request_has_a_new_nonce() -> None:
    assert request() != request()


def test_unknown_operations_and_bad_nonce_sources_are_never_used() -> None:
    with pytest.raises(LocalProtocolError):
        request(op="delete")
    with pytest.raises(LocalProtocolError):
        request(rng=lambda n: bytes(n - 1))


def test_tampered_json_is_bad_signature() -> None:
    body, sig = request().removeprefix("SJRELAY ").split(".")
    fields = json.loads(unb64url(body))
    fields["time"] += 1
    forged = b64url(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode())
    error = rejected(checker(), f"SJRELAY {forged}.{sig}")
    assert error.reason is RelayRejectReason.BAD_SIGNATURE
    assert error.peer == ALICE.node_id


def test_tampered_signature_is_bad_signature() -> None:
    body, sig = request().removeprefix("SJRELAY ").split(".")
    flipped = bytearray(unb64url(sig))
    flipped[3] ^= 1
    assert rejected(checker(), f"SJRELAY {body}.{b64url(bytes(flipped))}").reason is RelayRejectReason.BAD_SIGNATURE


def test_claiming_a_node_with_its_keys_but_signing_with_others_is_bad_signature() -> None:
    # Mallory copies Alice's public keys into the token: they hash to Alice's ID, but Mallory cannot sign.
    assert rejected(checker(), signed(good_fields(), MALLORY)).reason is RelayRejectReason.BAD_SIGNATURE


def test_a_signature_made_for_another_purpose_is_bad_signature() -> None:
    for domain in (b"", b"seajust-blob-request-v1\n", b"seajust-relay-request-v2\n"):
        assert rejected(checker(), signed(good_fields(), domain=domain)).reason is RelayRejectReason.BAD_SIGNATURE


def test_keys_that_do_not_hash_to_the_node_id_are_wrong_keys() -> None:
    # Mallory's own keys, signed by Mallory, but claiming Alice's node ID.
    fields = good_fields(MALLORY, node=ALICE.node_id)
    error = rejected(checker(), signed(fields, MALLORY))
    assert error.reason is RelayRejectReason.WRONG_KEYS
    assert error.peer == ALICE.node_id
    # Alice's signing key with someone else's key-exchange key is another node entirely.
    mixed = good_fields(kx_key=b64url(MALLORY.public.kx_key))
    assert rejected(checker(), signed(mixed)).reason is RelayRejectReason.WRONG_KEYS


def test_a_non_canonical_node_id_is_wrong_keys() -> None:
    lower = good_fields(node=ALICE.node_id.lower())
    assert rejected(checker(), signed(lower)).reason is RelayRejectReason.WRONG_KEYS


@pytest.mark.parametrize(("made_for", "used_for"), [("fetch", "ack"), ("ack", "fetch"), ("fetch", "deposit")])
def test_a_token_for_another_operation_is_wrong_op(made_for: str, used_for: str) -> None:
    error = rejected(checker(), request(op=made_for), op=used_for)
    assert error.reason is RelayRejectReason.WRONG_OP


def test_a_token_for_another_body_is_body_mismatch() -> None:
    assert rejected(checker(), request(), body=b'{"after":1}').reason is RelayRejectReason.BODY_MISMATCH
    assert rejected(checker(), request(body=b""), body=b" ").reason is RelayRejectReason.BODY_MISMATCH


@pytest.mark.parametrize("offset", [-MAX_SKEW - 1, MAX_SKEW + 1, -86400, 86400 * 365])
def test_too_old_or_too_new_is_expired(offset: float) -> None:
    assert rejected(checker(), request(now=NOW + offset)).reason is RelayRejectReason.EXPIRED


@pytest.mark.parametrize("offset", [-MAX_SKEW, MAX_SKEW])
def test_clock_skew_up_to_the_limit_is_accepted(offset: float) -> None:
    assert checker().check(request(now=NOW + offset), "fetch", BODY) == ALICE.node_id


def test_a_replayed_token_is_refused() -> None:
    chk = checker()
    header = request()
    chk.check(header, "fetch", BODY)
    error = rejected(chk, header)
    assert error.reason is RelayRejectReason.REPLAY
    assert error.peer == ALICE.node_id


def test_a_replay_is_refused_for_as_long_as_the_token_passes_the_time_check() -> None:
    clock = Clock()
    chk = checker(clock)
    header = request(now=NOW + MAX_SKEW)
    chk.check(header, "fetch", BODY)
    for later in (1, MAX_SKEW, 2 * MAX_SKEW):
        clock.now = NOW + later
        assert rejected(chk, header).reason is RelayRejectReason.REPLAY
    clock.now = NOW + 2 * MAX_SKEW + 1
    assert rejected(chk, header).reason is RelayRejectReason.EXPIRED


def test_the_same_nonce_from_another_node_is_not_a_replay() -> None:
    chk = checker()
    nonce = b64url(b"\x01" * 16)
    chk.check(signed(good_fields(nonce=nonce)), "fetch", BODY)
    assert chk.check(signed(good_fields(MALLORY, nonce=nonce), MALLORY), "fetch", BODY) == MALLORY.node_id


def test_nonce_memory_is_bounded_and_dropping_never_reopens_a_replay() -> None:
    chk = checker(limit=3)
    headers = [request(now=NOW - 50 + i) for i in range(6)]
    for header in headers:
        chk.check(header, "fetch", BODY)
    assert len(chk._nonces) <= 3
    for header in headers:
        assert rejected(chk, header).reason is RelayRejectReason.REPLAY
    assert rejected(chk, request(now=NOW - 48)).reason is RelayRejectReason.REPLAY
    assert chk.check(request(now=NOW), "fetch", BODY) == ALICE.node_id


def test_nonces_are_forgotten_once_their_tokens_have_expired() -> None:
    clock = Clock()
    chk = checker(clock)
    for _ in range(50):
        chk.check(request(), "fetch", BODY)
    clock.now = NOW + MAX_SKEW + 1
    chk.check(request(now=clock.now), "fetch", BODY)
    assert len(chk._nonces) == 1


def test_rejected_requests_are_not_remembered() -> None:
    chk = checker()
    fields = good_fields()
    assert rejected(chk, signed(fields), op="ack").reason is RelayRejectReason.WRONG_OP
    assert rejected(chk, signed(fields), body=b"other").reason is RelayRejectReason.BODY_MISMATCH
    assert rejected(chk, signed(fields, MALLORY)).reason is RelayRejectReason.BAD_SIGNATURE
    assert chk.check(signed(fields), "fetch", BODY) == ALICE.node_id


MALFORMED_HEADERS = [
    "",
    "SJRELAY",
    "SJRELAY ",
    "Bearer abc",
    "SJBLOB " + request().removeprefix("SJRELAY "),
    "sjrelay " + request().removeprefix("SJRELAY "),
    request().replace(".", ""),
    request() + "=",
    request() + ".x",
    request().replace("SJRELAY ", "SJRELAY  "),
    "SJRELAY " + b64url(b"not json") + "." + b64url(bytes(64)),
    "SJRELAY " + b64url(b"[]") + "." + b64url(bytes(64)),
    "SJRELAY " + b64url(b"[" * 5000) + "." + b64url(bytes(64)),
    "SJRELAY " + "A" * 5000 + "." + b64url(bytes(64)),
    request()[:-4],
]


@pytest.mark.parametrize("header", MALFORMED_HEADERS)
def test_malformed_headers(header: str) -> None:
    error = rejected(checker(), header)
    assert error.reason is RelayRejectReason.MALFORMED
    assert error.peer is None


@pytest.mark.parametrize(
    "fields",
    [
        good_fields(v=2),
        good_fields(v=True),
        good_fields(op="delete"),
        good_fields(op=None),
        good_fields(time=str(int(NOW))),
        good_fields(time=NOW + 0.5),
        good_fields(time=True),
        good_fields(time=10**30),
        good_fields(time=-1),
        good_fields(nonce=b64url(bytes(15))),
        good_fields(nonce="not base64!"),
        good_fields(sign_key=b64url(ALICE.public.sign_key[:31])),
        good_fields(kx_key=b64url(ALICE.public.kx_key + b"\x00")),
        good_fields(sign_key=b64url(ALICE.public.sign_key) + "="),
        good_fields(body=hashlib.sha256(BODY).hexdigest().upper()),
        good_fields(body=hashlib.sha256(BODY).hexdigest()[:63]),
        good_fields(node=["x"]),
        good_fields(extra=1),
        {k: v for k, v in good_fields().items() if k != "body"},
    ],
)
def test_well_signed_but_ill_formed_tokens_are_malformed(fields: dict[str, Any]) -> None:
    assert rejected(checker(), signed(fields)).reason is RelayRejectReason.MALFORMED


@given(st.text(max_size=700))
def test_arbitrary_headers_are_refused_and_nothing_else_is_raised(header: str) -> None:
    with pytest.raises(RelayRequestRejected):
        checker().check(header, "fetch", BODY)


@given(st.binary(max_size=400), st.binary(max_size=80))
def test_arbitrary_token_parts_are_refused(body: bytes, sig: bytes) -> None:
    with pytest.raises(RelayRequestRejected):
        checker().check(f"SJRELAY {b64url(body)}.{b64url(sig)}", "fetch", BODY)


@given(st.dictionaries(st.sampled_from(sorted(good_fields())), st.none() | st.integers() | st.text(max_size=60)))
def test_arbitrary_signed_fields_are_refused_and_nothing_else_is_raised(changes: dict[str, Any]) -> None:
    with pytest.raises(RelayRequestRejected):
        checker().check(signed({**good_fields(), **changes, "time": 0}), "fetch", BODY)  # expired at the latest


def test_rejection_survives_pickling() -> None:
    error = RelayRequestRejected(RelayRejectReason.REPLAY, "token used before", peer="X")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, copy.peer, copy.message) == (error.reason, error.detail, "X", error.message)
