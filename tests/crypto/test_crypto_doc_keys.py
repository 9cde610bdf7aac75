"""Case keys: only the parties can unwrap, any change to a grant breaks its signature, `decode_grant`
raises nothing but `KeyGrantInvalid`, and `DocCipher` output opens only in the context it was sealed for."""

import base64
import dataclasses
import json
import os
import struct
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.doc_keys import (
    DOC_KEY_SIZE,
    MAX_GRANT_SIZE,
    MAX_PARTIES,
    DocCipher,
    DocDecryptError,
    EpochCipher,
    KeyGrant,
    KeyGrantInvalid,
    decode_grant,
    encode_grant,
    issue_grant,
    new_doc_key,
    unwrap_key,
    unwrap_keys,
    verify_grant,
)
from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))
MALLORY = Identity.from_secret_bytes(bytes(range(192, 256)))
DOC_ID = "case/K7QM3XDA9PFR"
KEY = bytes(range(100, 132))


def party(identity: Identity, role: str) -> tuple[str, tuple[str, bytes]]:
    return identity.node_id, (role, identity.public.kx_key)


def grant_for(*parties: tuple[str, tuple[str, bytes]], version: int = 1, issuer: Identity = ALICE) -> KeyGrant:
    return issue_grant(issuer, doc_id=DOC_ID, version=version, key=KEY, parties=dict(parties))


GRANT = grant_for(party(ALICE, "requesting"), party(BOB, "requested"))
ENCODED = encode_grant(GRANT)


def flip(data: bytes, index: int = -1) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def canonical(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def reencoded(mutate: Callable[[dict[str, Any]], None]) -> bytes:
    payload = json.loads(ENCODED)
    mutate(payload)
    return canonical(payload)


# --- grants: round trip and who can unwrap ---


def test_new_doc_key() -> None:
    first, second = new_doc_key(), new_doc_key()
    assert len(first) == len(second) == DOC_KEY_SIZE == 32
    assert first != second


def test_each_party_unwraps_the_key() -> None:
    verify_grant(GRANT, ALICE.public.sign_key)
    assert unwrap_key(GRANT, ALICE) == KEY
    assert unwrap_key(GRANT, BOB) == KEY
    assert GRANT.issuer == ALICE.node_id
    assert GRANT.roles == {ALICE.node_id: "requesting", BOB.node_id: "requested"}
    assert GRANT.parties == tuple(sorted([ALICE.node_id, BOB.node_id]))
    assert set(GRANT.wrapped) == set(GRANT.parties)


def test_each_party_gets_its_own_wrapping() -> None:
    again = grant_for(party(ALICE, "requesting"), party(BOB, "requested"))
    assert GRANT.wrapped[ALICE.node_id] != GRANT.wrapped[BOB.node_id]
    # Fresh ephemeral keys every time, so wrapping the same key twice looks unrelated.
    assert again.wrapped[BOB.node_id][:32] != GRANT.wrapped[BOB.node_id][:32]
    assert KEY not in ENCODED and b64(KEY).encode() not in ENCODED


def test_a_non_party_cannot_unwrap() -> None:
    with pytest.raises(KeyGrantInvalid):
        unwrap_key(GRANT, CAROL)


def test_a_party_cannot_use_another_partys_wrapping() -> None:
    stolen = dataclasses.replace(GRANT, wrapped={**GRANT.wrapped, BOB.node_id: GRANT.wrapped[ALICE.node_id]})
    with pytest.raises(KeyGrantInvalid):
        unwrap_key(stolen, BOB)


def test_sharing_with_a_third_party_at_the_next_version() -> None:
    shared = issue_grant(
        BOB,
        doc_id=DOC_ID,
        version=2,
        key=unwrap_key(GRANT, BOB),
        parties=dict([party(ALICE, "requesting"), party(BOB, "requested"), party(CAROL, "shared")]),
    )
    verify_grant(shared, BOB.public.sign_key)
    assert shared.issuer == BOB.node_id
    assert {unwrap_key(shared, who) for who in (ALICE, BOB, CAROL)} == {KEY}
    assert shared.roles[CAROL.node_id] == "shared"


def test_a_wrapping_cannot_be_moved_to_another_version() -> None:
    later = grant_for(party(ALICE, "requesting"), party(BOB, "requested"), version=2)
    moved = dataclasses.replace(later, wrapped={**later.wrapped, BOB.node_id: GRANT.wrapped[BOB.node_id]})
    with pytest.raises(KeyGrantInvalid):
        unwrap_key(moved, BOB)


def test_a_low_order_ephemeral_key_fails_as_key_grant_invalid() -> None:
    wrapped = GRANT.wrapped[BOB.node_id]
    broken = dataclasses.replace(GRANT, wrapped={**GRANT.wrapped, BOB.node_id: bytes(32) + wrapped[32:]})
    with pytest.raises(KeyGrantInvalid):
        unwrap_key(broken, BOB)


def test_wrapping_follows_the_documented_construction() -> None:
    """The wrap format, computed from the module docstring and nothing else."""
    wrapped = GRANT.wrapped[BOB.node_id]
    assert len(wrapped) == 32 + 32 + 16
    eph_pub, ciphertext = wrapped[:32], wrapped[32:]
    info = b"seajust-doc-key-v1|" + DOC_ID.encode() + b"|" + BOB.node_id.encode() + b"|1"
    shared = BOB.exchange(eph_pub)
    wrap_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + BOB.public.kx_key, info=info).derive(shared)
    assert ChaCha20Poly1305(wrap_key).decrypt(bytes(12), ciphertext, info) == KEY


def test_encoding_follows_the_documented_format() -> None:
    payload = json.loads(ENCODED)
    assert canonical(payload) == ENCODED
    assert payload["format"] == 1
    assert payload["doc_id"] == DOC_ID and payload["version"] == 1 and payload["issuer"] == ALICE.node_id
    assert payload["parties"][BOB.node_id] == {"role": "requested", "wrapped": b64(GRANT.wrapped[BOB.node_id])}
    signature = base64.urlsafe_b64decode(payload.pop("sig") + "==")
    Ed25519PublicKey.from_public_bytes(ALICE.public.sign_key).verify(
        signature, b"seajust-grant-v1\n" + canonical(payload)
    )


# --- grants: signatures ---

TAMPERED = {
    "doc_id": lambda g: dataclasses.replace(g, doc_id="case/OTHERCASE001"),
    "version": lambda g: dataclasses.replace(g, version=2),
    "roles": lambda g: dataclasses.replace(g, roles={ALICE.node_id: "requested", BOB.node_id: "requesting"}),
    "role_to_shared": lambda g: dataclasses.replace(g, roles={**g.roles, BOB.node_id: "shared"}),
    "wrapped": lambda g: dataclasses.replace(g, wrapped={**g.wrapped, BOB.node_id: flip(g.wrapped[BOB.node_id])}),
    "wrapped_ephemeral": lambda g: dataclasses.replace(
        g, wrapped={**g.wrapped, BOB.node_id: flip(g.wrapped[BOB.node_id], 0)}
    ),
    "sig": lambda g: dataclasses.replace(g, sig=flip(g.sig)),
    "issuer": lambda g: dataclasses.replace(g, issuer=BOB.node_id),
    "party_added": lambda g: dataclasses.replace(
        g,
        roles={**g.roles, MALLORY.node_id: "shared"},
        wrapped={**g.wrapped, MALLORY.node_id: g.wrapped[BOB.node_id]},
    ),
    "party_removed": lambda g: dataclasses.replace(
        g, roles={ALICE.node_id: "requesting"}, wrapped={ALICE.node_id: g.wrapped[ALICE.node_id]}
    ),
}


@pytest.mark.parametrize("field", sorted(TAMPERED))
def test_tampering_breaks_the_signature(field: str) -> None:
    tampered: KeyGrant = TAMPERED[field](GRANT)
    assert tampered != GRANT
    with pytest.raises(SignatureInvalid):
        verify_grant(tampered, ALICE.public.sign_key)
    # The tampered grant also survives encoding, so the check cannot be skipped by a round trip.
    with pytest.raises(SignatureInvalid):
        verify_grant(decode_grant(encode_grant(tampered)), ALICE.public.sign_key)


@pytest.mark.parametrize("field", ["doc_id", "version", "wrapped", "wrapped_ephemeral"])
def test_tampering_with_what_the_wrapping_binds_also_breaks_unwrapping(field: str) -> None:
    with pytest.raises(KeyGrantInvalid):
        unwrap_key(TAMPERED[field](GRANT), BOB)


def test_the_wrong_issuer_key_fails() -> None:
    for key in (BOB.public.sign_key, MALLORY.public.sign_key, ALICE.public.kx_key, b"", b"\x00" * 32):
        with pytest.raises(SignatureInvalid):
            verify_grant(GRANT, key)


def test_a_grant_that_could_never_be_signed_fails_as_signature_invalid() -> None:
    for broken in (
        dataclasses.replace(GRANT, issuer=MALLORY.node_id),
        dataclasses.replace(GRANT, roles={**GRANT.roles, BOB.node_id: "judge"}),
        dataclasses.replace(GRANT, wrapped={ALICE.node_id: GRANT.wrapped[ALICE.node_id]}),
        dataclasses.replace(GRANT, doc_id="case/\N{THAI CHARACTER KO KAI}"),
        dataclasses.replace(GRANT, version=True),
        dataclasses.replace(GRANT, sig=b"short"),
    ):
        with pytest.raises(SignatureInvalid):
            verify_grant(broken, ALICE.public.sign_key)


# --- grants: issuing ---


def test_issuing_at_the_party_limit() -> None:
    others = [Identity.from_secret_bytes(bytes([i]) * 64) for i in range(1, MAX_PARTIES)]
    grant = grant_for(party(ALICE, "requesting"), *(party(o, "shared") for o in others))
    assert len(grant.parties) == MAX_PARTIES
    assert decode_grant(encode_grant(grant)) == grant
    assert unwrap_key(grant, others[-1]) == KEY
    with pytest.raises(ValueError, match="parties"):
        grant_for(party(ALICE, "requesting"), *(party(o, "shared") for o in others), party(BOB, "shared"))


BAD_ISSUES: dict[str, dict[str, Any]] = {
    "issuer not a party": {"parties": dict([party(BOB, "requested")])},
    "no parties": {"parties": {}},
    "issuer kx key not its own": {"parties": {ALICE.node_id: ("requesting", BOB.public.kx_key)}},
    "unknown role": {"parties": dict([party(ALICE, "judge")])},
    "lower-case node ID": {"parties": {**dict([party(ALICE, "requesting")]), BOB.node_id.lower(): ("requested", b"")}},
    "unusable kx key": {"parties": {**dict([party(ALICE, "requesting")]), BOB.node_id: ("requested", bytes(32))}},
    "short kx key": {"parties": {**dict([party(ALICE, "requesting")]), BOB.node_id: ("requested", b"\x09" * 31)}},
    "short key": {"key": KEY[:16]},
    "version 0": {"version": 0},
    "version True": {"version": True},
    "version too large": {"version": 2**63},
    "empty doc_id": {"doc_id": ""},
    "long doc_id": {"doc_id": "c" * 201},
    "non-ASCII doc_id": {"doc_id": "case/\N{THAI CHARACTER KO KAI}"},
    "control character in doc_id": {"doc_id": "case/\n"},
}


@pytest.mark.parametrize("case", sorted(BAD_ISSUES))
def test_issue_grant_refuses_bad_arguments(case: str) -> None:
    arguments: dict[str, Any] = {
        "doc_id": DOC_ID,
        "version": 1,
        "key": KEY,
        "parties": dict([party(ALICE, "requesting")]),
        **BAD_ISSUES[case],
    }
    with pytest.raises(ValueError):
        issue_grant(ALICE, **arguments)


def test_longest_doc_id_and_version() -> None:
    grant = issue_grant(ALICE, doc_id="c" * 200, version=2**63 - 1, key=KEY, parties=dict([party(ALICE, "requesting")]))
    assert decode_grant(encode_grant(grant)) == grant
    assert unwrap_key(grant, ALICE) == KEY


# --- grants: decoding ---


def test_encode_decode_round_trip() -> None:
    decoded = decode_grant(ENCODED)
    assert decoded == GRANT
    assert decode_grant(bytearray(ENCODED)) == GRANT  # type: ignore[arg-type]
    assert decode_grant(memoryview(ENCODED)) == GRANT  # type: ignore[arg-type]
    assert encode_grant(decoded) == ENCODED
    verify_grant(decoded, ALICE.public.sign_key)
    assert unwrap_key(decoded, BOB) == KEY


def test_reencoding_without_change_is_accepted() -> None:
    """The control for the cases below: `reencoded` itself produces a valid grant."""
    assert decode_grant(reencoded(lambda p: None)) == GRANT


def _set_party(node_id: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload["parties"][node_id][key] = value

    return mutate


def _rename_party(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(payload: dict[str, Any]) -> None:
        payload["parties"][new] = payload["parties"].pop(old)

    return mutate


def _many_parties(payload: dict[str, Any]) -> None:
    entry = payload["parties"][BOB.node_id]
    for i in range(1, MAX_PARTIES):
        payload["parties"][Identity.from_secret_bytes(bytes([i]) * 64).node_id] = entry


BAD_FIELDS: dict[str, Callable[[dict[str, Any]], None]] = {
    "format 2": lambda p: p.update(format=2),
    "format true": lambda p: p.update(format=True),
    "extra key": lambda p: p.update(note="hello"),
    "missing sig": lambda p: p.pop("sig"),
    "missing parties": lambda p: p.pop("parties"),
    "doc_id number": lambda p: p.update(doc_id=7),
    "doc_id empty": lambda p: p.update(doc_id=""),
    "doc_id too long": lambda p: p.update(doc_id="c" * 201),
    "doc_id non-ASCII": lambda p: p.update(doc_id="case/\u00e9"),
    "doc_id control": lambda p: p.update(doc_id="case/\x00"),
    "version 0": lambda p: p.update(version=0),
    "version negative": lambda p: p.update(version=-1),
    "version true": lambda p: p.update(version=True),
    "version float": lambda p: p.update(version=1.0),
    "version string": lambda p: p.update(version="1"),
    "version huge": lambda p: p.update(version=2**63),
    "issuer not a party": lambda p: p.update(issuer=CAROL.node_id),
    "issuer lower case": lambda p: p.update(issuer=ALICE.node_id.lower()),
    "issuer list": lambda p: p.update(issuer=[ALICE.node_id]),
    "issuer null": lambda p: p.update(issuer=None),
    "parties list": lambda p: p.update(parties=[]),
    "parties empty": lambda p: p.update(parties={}),
    "too many parties": _many_parties,
    "party not a node ID": _rename_party(BOB.node_id, "bob"),
    "party ID without dashes": _rename_party(BOB.node_id, BOB.node_id.replace("-", "")),
    "party ID lower case": _rename_party(BOB.node_id, BOB.node_id.lower()),
    "party entry not an object": lambda p: p["parties"].update({BOB.node_id: "requested"}),
    "party entry extra key": _set_party(BOB.node_id, "note", "x"),
    "role unknown": _set_party(BOB.node_id, "role", "judge"),
    "role number": _set_party(BOB.node_id, "role", 1),
    "wrapped number": _set_party(BOB.node_id, "wrapped", 1),
    "wrapped short": _set_party(BOB.node_id, "wrapped", b64(bytes(79))),
    "wrapped long": _set_party(BOB.node_id, "wrapped", b64(bytes(81))),
    "wrapped padded": _set_party(BOB.node_id, "wrapped", b64(GRANT.wrapped[BOB.node_id]) + "=="),
    # Leading bytes fb ff bf encode as "+/+/" in the standard alphabet, so the value differs
    # from its URL-safe form whatever the random grant holds (a random one has neither "+" nor
    # "/" about one time in thirty).
    "wrapped standard base64": _set_party(
        BOB.node_id,
        "wrapped",
        base64.b64encode(b"\xfb\xff\xbf" + GRANT.wrapped[BOB.node_id][3:]).decode().rstrip("="),
    ),
    "wrapped non-canonical base64": _set_party(BOB.node_id, "wrapped", b64(bytes(80))[:-1] + "B"),
    "sig short": lambda p: p.update(sig=b64(bytes(63))),
    "sig number": lambda p: p.update(sig=0),
    "sig bad characters": lambda p: p.update(sig="!" * 86),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_decode_refuses_bad_fields(case: str) -> None:
    with pytest.raises(KeyGrantInvalid):
        decode_grant(reencoded(BAD_FIELDS[case]))


def test_the_non_canonical_base64_case_differs_only_in_encoding() -> None:
    # "wrapped non-canonical base64" above must fail for its encoding, not its length.
    assert len(base64.urlsafe_b64decode(b64(bytes(80))[:-1] + "B" + "==")) == 80


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b"\xff\xfe",
        b"[" * 100_000,
        b"[" * 30_000 + b"]" * 30_000,
        b"9" * 5000,
        ENCODED + b" ",
        b" " + ENCODED,
        ENCODED.replace(b",", b", "),
        ENCODED.replace(b'{"doc_id"', b'{"doc_id":"x","doc_id"'),
        ENCODED.replace(b'"version":1', b'"version":NaN'),
        ENCODED.replace(b'"version":1', b'"version":1.0'),
        ENCODED.replace(b'"version":1', b'"version":01'),
        ENCODED.replace(b"case/", b"\\u0063ase/"),
        json.dumps(dict(reversed(list(json.loads(ENCODED).items()))), separators=(",", ":")).encode(),
    ],
)
def test_decode_refuses_malformed_and_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(KeyGrantInvalid):
        decode_grant(data)


def test_decode_refuses_what_is_not_bytes() -> None:
    for value in (ENCODED.decode(), None, 7, [ENCODED]):
        with pytest.raises(KeyGrantInvalid):
            decode_grant(value)  # type: ignore[arg-type]


def test_decode_caps_the_size() -> None:
    padded = reencoded(lambda p: p.update(doc_id="c" * 200))
    assert len(padded) < MAX_GRANT_SIZE
    assert decode_grant(padded).doc_id == "c" * 200
    with pytest.raises(KeyGrantInvalid, match="too large"):
        decode_grant(b"{" + b" " * MAX_GRANT_SIZE + b"}")


def test_encode_refuses_a_grant_decode_would_refuse() -> None:
    for broken in (
        dataclasses.replace(GRANT, sig=GRANT.sig[:-1]),
        dataclasses.replace(GRANT, issuer=CAROL.node_id),
        dataclasses.replace(GRANT, roles={**GRANT.roles, BOB.node_id: "judge"}),
    ):
        with pytest.raises(ValueError):
            encode_grant(broken)


def test_errors_explain_themselves() -> None:
    assert issubclass(KeyGrantInvalid, CryptoError) and issubclass(DocDecryptError, CryptoError)
    assert KeyGrantInvalid().message == "That document key grant is malformed or not for this node."
    assert DocDecryptError().message == "A document update or attachment could not be decrypted with the case key."


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
FIELD_PATHS = [
    ("doc_id",),
    ("version",),
    ("issuer",),
    ("format",),
    ("sig",),
    ("parties",),
    ("parties", ALICE.node_id),
    ("parties", BOB.node_id, "role"),
    ("parties", BOB.node_id, "wrapped"),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000))
def test_fuzz_decode_arbitrary_bytes(data: bytes) -> None:
    with pytest.raises(KeyGrantInvalid):
        decode_grant(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "delete", "insert"]), st.integers(0, len(ENCODED)), st.binary(max_size=4)
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_decode_mutated_encodings(edits: list[tuple[str, int, bytes]]) -> None:
    data = bytearray(ENCODED)
    for action, position, chunk in edits:
        if action == "replace":
            data[position : position + len(chunk)] = chunk
        elif action == "delete":
            del data[position : position + len(chunk) + 1]
        else:
            data[position:position] = chunk
    try:
        grant = decode_grant(bytes(data))
    except KeyGrantInvalid:
        return
    # Decoding is canonical, so different bytes are a different grant, which the signature refuses.
    if bytes(data) != ENCODED:
        with pytest.raises(SignatureInvalid):
            verify_grant(grant, ALICE.public.sign_key)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(FIELD_PATHS), value=JSON_VALUES)
def test_fuzz_decode_fields_replaced_with_any_json(path: tuple[str, ...], value: Any) -> None:
    payload = json.loads(ENCODED)
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        grant = decode_grant(canonical(payload))
    except KeyGrantInvalid:
        return
    if canonical(payload) != ENCODED:
        with pytest.raises(SignatureInvalid):
            verify_grant(grant, ALICE.public.sign_key)


# --- DocCipher ---

CIPHER = DocCipher(KEY, DOC_ID)
UPDATE = b"\x01\x02 CRDT update: witness statement"


def test_update_round_trip() -> None:
    sealed = CIPHER.seal_update(UPDATE, author=ALICE.node_id)
    assert UPDATE not in sealed
    assert len(sealed) == 12 + len(UPDATE) + 16
    assert CIPHER.open_update(sealed, author=ALICE.node_id) == UPDATE
    assert DocCipher(KEY, DOC_ID).open_update(bytearray(sealed), author=ALICE.node_id) == UPDATE  # type: ignore[arg-type]
    assert CIPHER.open_update(CIPHER.seal_update(b"", author=BOB.node_id), author=BOB.node_id) == b""


def test_blob_round_trip() -> None:
    sealed = CIPHER.seal_blob(b"%PDF-1.7 request letter", attachment_id="att-1")
    assert CIPHER.open_blob(sealed, attachment_id="att-1") == b"%PDF-1.7 request letter"


def test_two_seals_of_the_same_plaintext_differ() -> None:
    first = CIPHER.seal_update(UPDATE, author=ALICE.node_id)
    second = CIPHER.seal_update(UPDATE, author=ALICE.node_id)
    assert first != second and first[:12] != second[:12]
    assert CIPHER.seal_blob(UPDATE, attachment_id="a") != CIPHER.seal_blob(UPDATE, attachment_id="a")


def _aad(domain: bytes, doc_id: str, name: str) -> bytes:
    return domain + struct.pack(">H", len(doc_id)) + doc_id.encode() + struct.pack(">H", len(name)) + name.encode()


def test_sealing_follows_the_documented_format() -> None:
    sealed = CIPHER.seal_update(UPDATE, author=ALICE.node_id)
    aad = _aad(b"seajust-doc-update-v1", DOC_ID, ALICE.node_id)
    assert ChaCha20Poly1305(KEY).decrypt(sealed[:12], sealed[12:], aad) == UPDATE
    blob = CIPHER.seal_blob(UPDATE, attachment_id="att-1")
    aad = _aad(b"seajust-doc-blob-v1", DOC_ID, "att-1")
    assert ChaCha20Poly1305(KEY).decrypt(blob[:12], blob[12:], aad) == UPDATE


SEALED_UPDATE = CIPHER.seal_update(UPDATE, author=ALICE.node_id)
SEALED_BLOB = CIPHER.seal_blob(UPDATE, attachment_id="att-1")

WRONG_OPENS: dict[str, Callable[[], bytes]] = {
    "author": lambda: CIPHER.open_update(SEALED_UPDATE, author=BOB.node_id),
    "author empty": lambda: CIPHER.open_update(SEALED_UPDATE, author=""),
    "doc_id": lambda: DocCipher(KEY, "case/OTHERCASE001").open_update(SEALED_UPDATE, author=ALICE.node_id),
    "key": lambda: DocCipher(new_doc_key(), DOC_ID).open_update(SEALED_UPDATE, author=ALICE.node_id),
    "attachment id": lambda: CIPHER.open_blob(SEALED_BLOB, attachment_id="att-2"),
    "blob doc_id": lambda: DocCipher(KEY, "case/OTHERCASE001").open_blob(SEALED_BLOB, attachment_id="att-1"),
    "blob key": lambda: DocCipher(new_doc_key(), DOC_ID).open_blob(SEALED_BLOB, attachment_id="att-1"),
    "update opened as blob": lambda: CIPHER.open_blob(
        CIPHER.seal_update(UPDATE, author="att-1"), attachment_id="att-1"
    ),
    "blob opened as update": lambda: CIPHER.open_update(SEALED_BLOB, author="att-1"),
    "boundary moved": lambda: DocCipher(KEY, "case/AB").open_blob(
        DocCipher(KEY, "case/A").seal_blob(UPDATE, attachment_id="BC"), attachment_id="C"
    ),
    "empty": lambda: CIPHER.open_update(b"", author=ALICE.node_id),
    "nonce only": lambda: CIPHER.open_update(SEALED_UPDATE[:12], author=ALICE.node_id),
    "one byte short": lambda: CIPHER.open_update(SEALED_UPDATE[:-1], author=ALICE.node_id),
    "tag only": lambda: CIPHER.open_update(SEALED_UPDATE[:28], author=ALICE.node_id),
    "one byte extra": lambda: CIPHER.open_update(SEALED_UPDATE + b"\x00", author=ALICE.node_id),
    "not bytes": lambda: CIPHER.open_update(SEALED_UPDATE.hex(), author=ALICE.node_id),  # type: ignore[arg-type]
    "None": lambda: CIPHER.open_blob(None, attachment_id="att-1"),  # type: ignore[arg-type]
    "author not text": lambda: CIPHER.open_update(SEALED_UPDATE, author=None),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("case", sorted(WRONG_OPENS))
def test_opening_in_the_wrong_context_fails(case: str) -> None:
    with pytest.raises(DocDecryptError):
        WRONG_OPENS[case]()


def test_every_single_bit_flip_fails() -> None:
    for index in range(len(SEALED_UPDATE)):
        with pytest.raises(DocDecryptError):
            CIPHER.open_update(flip(SEALED_UPDATE, index), author=ALICE.node_id)


def test_every_truncation_fails() -> None:
    for length in range(len(SEALED_UPDATE)):
        with pytest.raises(DocDecryptError):
            CIPHER.open_update(SEALED_UPDATE[:length], author=ALICE.node_id)


@settings(max_examples=300)
@given(data=st.binary(max_size=200), author=st.text(max_size=30))
def test_fuzz_open_raises_only_doc_decrypt_error(data: bytes, author: str) -> None:
    with pytest.raises(DocDecryptError):
        CIPHER.open_update(data, author=author)
    with pytest.raises(DocDecryptError):
        CIPHER.open_blob(data, attachment_id=author)


def test_cipher_refuses_bad_arguments() -> None:
    for key, doc_id in ((KEY[:16], DOC_ID), (KEY.hex(), DOC_ID), (KEY, ""), (KEY, "c" * 201), (KEY, "case/\u00e9")):
        with pytest.raises(ValueError):
            DocCipher(key, doc_id)  # type: ignore[arg-type]
    assert KEY.hex() not in repr(CIPHER) and DOC_ID in repr(CIPHER)


def test_a_30_megabyte_blob_round_trip() -> None:
    blob = bytes(range(256)) * (30 * 1024 * 1024 // 256) + b"tail"
    sealed = CIPHER.seal_blob(blob, attachment_id="scan.pdf")
    assert len(sealed) == 12 + len(blob) + 16
    assert CIPHER.open_blob(sealed, attachment_id="scan.pdf") == blob
    assert CIPHER.open_blob(memoryview(sealed), attachment_id="scan.pdf") == blob  # type: ignore[arg-type]
    with pytest.raises(DocDecryptError):
        CIPHER.open_blob(sealed[:-1], attachment_id="scan.pdf")


def test_a_later_grant_carries_a_new_key_and_the_older_ones_newest_first() -> None:
    new_key, older = os.urandom(32), os.urandom(32)
    grant = issue_grant(
        ALICE,
        doc_id=DOC_ID,
        version=3,
        key=new_key,
        older=[KEY, older],
        parties=dict([party(ALICE, "requesting"), party(BOB, "requested")]),
    )
    decoded = decode_grant(encode_grant(grant))
    verify_grant(decoded, ALICE.public.sign_key)
    assert unwrap_keys(decoded, BOB) == (new_key, KEY, older)
    assert unwrap_key(decoded, BOB) == new_key
    with pytest.raises(ValueError, match="distinct"):
        issue_grant(ALICE, doc_id=DOC_ID, version=3, key=KEY, older=[KEY], parties=dict([party(ALICE, "requesting")]))


def test_an_epoch_cipher_seals_with_the_current_key_and_opens_any_epoch() -> None:
    old, new = DocCipher(KEY, DOC_ID), EpochCipher([os.urandom(32), KEY], DOC_ID)
    sealed_before = old.seal_update(b"history", author=ALICE.node_id)
    assert new.open_update(sealed_before, author=ALICE.node_id) == b"history"
    sealed_now = new.seal_update(b"today", author=ALICE.node_id)
    with pytest.raises(DocDecryptError):
        old.open_update(sealed_now, author=ALICE.node_id)  # a stolen old key does not open the new epoch
    with pytest.raises(DocDecryptError):
        new.open_update(sealed_now, author=BOB.node_id)
    blob = new.seal_blob(b"file", attachment_id="a1")
    assert new.open_blob(blob, attachment_id="a1") == b"file"
