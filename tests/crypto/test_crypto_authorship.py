"""An update's signature pins its document, author and sequence range: no field can be changed."""

import struct
from typing import Any

import pytest

from crypto.authorship import sign_update, verify_update
from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity, verify_signature

AUTHOR = Identity.from_secret_bytes(bytes(range(64)))
OTHER = Identity.from_secret_bytes(bytes(range(64, 128)))
FIELDS: dict[str, Any] = {"doc_id": "case/TH-2024-0001", "seq_from": 3, "seq_to": 5, "update": b"\x01crdt-update"}
SIGNATURE = sign_update(AUTHOR, **FIELDS)


def test_sign_and_verify() -> None:
    verify_update(AUTHOR.public.sign_key, SIGNATURE, author_id=AUTHOR.node_id, **FIELDS)


def test_signed_message_follows_the_spec() -> None:
    doc = FIELDS["doc_id"].encode()
    author = AUTHOR.node_id.encode()
    message = (
        b"seajust-update-v1\n"
        + struct.pack(">H", len(doc))
        + doc
        + struct.pack(">B", len(author))
        + author
        + struct.pack(">QQ", 3, 5)
        + FIELDS["update"]
    )
    verify_signature(AUTHOR.public.sign_key, SIGNATURE, message)


@pytest.mark.parametrize(
    "change",
    [
        {"doc_id": "case/TH-2024-0002"},
        {"doc_id": ""},
        {"author_id": OTHER.node_id},
        {"seq_from": 4},
        {"seq_to": 6},
        {"seq_from": 5, "seq_to": 3},
        {"update": b"\x01crdt-updatE"},
        {"update": b""},
        {"sign_key": OTHER.public.sign_key},
        {"signature": bytes([SIGNATURE[0] ^ 1]) + SIGNATURE[1:]},
        {"signature": SIGNATURE[:-1]},
        {"seq_to": 2**64},  # cannot even be encoded
        {"seq_from": -1},
        {"author_id": "\N{THAI CHARACTER KO KAI}"},
        {"doc_id": "x" * 70_000},
    ],
)
def test_changing_any_field_fails(change: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "sign_key": AUTHOR.public.sign_key,
        "signature": SIGNATURE,
        "author_id": AUTHOR.node_id,
        **FIELDS,
    }
    verify_update(**arguments)
    with pytest.raises(SignatureInvalid):
        verify_update(**{**arguments, **change})


def test_length_prefixes_prevent_field_shifting() -> None:
    """Moving bytes between the document ID and the update must not keep the signature valid."""
    signature = sign_update(AUTHOR, doc_id="ab", seq_from=0, seq_to=0, update=b"c")
    verify_update(
        AUTHOR.public.sign_key, signature, doc_id="ab", author_id=AUTHOR.node_id, seq_from=0, seq_to=0, update=b"c"
    )
    with pytest.raises(SignatureInvalid):
        verify_update(
            AUTHOR.public.sign_key, signature, doc_id="a", author_id=AUTHOR.node_id, seq_from=0, seq_to=0, update=b"bc"
        )


@pytest.mark.parametrize("change", [{"seq_to": 2**64}, {"seq_from": -1}, {"doc_id": "x" * 70_000}])
def test_sign_refuses_unencodable_fields(change: dict[str, Any]) -> None:
    with pytest.raises(CryptoError):
        sign_update(AUTHOR, **{**FIELDS, **change})
