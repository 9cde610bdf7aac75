"""Node IDs are typed by people: every single typo must be caught, and sloppy-but-unambiguous input accepted."""

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import NodeIdError
from crypto.node_id import ALPHABET, node_id_from_keys, parse_node_id

SIGN = bytes(range(32))
KX = bytes(range(32, 64))
keys = st.binary(min_size=32, max_size=32)


def _independent_node_id(sign_pub: bytes, kx_pub: bytes) -> str:
    """The spec, written a second way: RFC 4648 base32 mapped onto Crockford, Luhn mod 32 by validation."""
    digest = hashlib.sha256(b"seajust-node-id-v1" + sign_pub + kx_pub).digest()[:10]
    body = base64.b32encode(digest).decode().translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ALPHABET))
    for check in ALPHABET:
        total = 0
        for position, char in enumerate(reversed(body + check)):
            value = ALPHABET.index(char) * (2 if position % 2 else 1)
            total += value // 32 + value % 32
        if total % 32 == 0:
            break
    return "-".join([body[0:4], body[4:8], body[8:12], body[12:16], check])


def test_pinned_vector() -> None:
    assert node_id_from_keys(SIGN, KX) == _independent_node_id(SIGN, KX)
    assert node_id_from_keys(SIGN, KX) == "X5CX-01BG-H0XN-BZCS-2"


@given(keys, keys)
def test_matches_spec_and_round_trips(sign_pub: bytes, kx_pub: bytes) -> None:
    node_id = node_id_from_keys(sign_pub, kx_pub)
    assert node_id == _independent_node_id(sign_pub, kx_pub)
    assert len(node_id) == 21
    assert parse_node_id(node_id) == node_id


def test_both_keys_are_bound() -> None:
    assert node_id_from_keys(SIGN, KX) != node_id_from_keys(KX, SIGN)
    assert node_id_from_keys(SIGN, KX) != node_id_from_keys(SIGN, bytes(32))


@given(keys, keys, st.sampled_from(["O", "o"]), st.sampled_from(["I", "i", "L", "l"]))
def test_normalisation(sign_pub: bytes, kx_pub: bytes, zero: str, one: str) -> None:
    node_id = node_id_from_keys(sign_pub, kx_pub)
    compact = node_id.replace("-", "")
    typed = "  " + " ".join(compact[i : i + 3] for i in range(0, 17, 3)).lower() + "\t\n"
    typed = typed.replace("0", zero).replace("1", one)
    assert parse_node_id(typed) == node_id
    assert parse_node_id(compact) == node_id
    assert parse_node_id(node_id.lower()) == node_id


@pytest.mark.parametrize("seed", range(5))
def test_every_single_substitution_is_detected(seed: int) -> None:
    node_id = node_id_from_keys(bytes([seed]) * 32, KX)
    compact = node_id.replace("-", "")
    for position in range(17):
        for char in ALPHABET:
            if char == compact[position]:
                continue
            typo = compact[:position] + char + compact[position + 1 :]
            with pytest.raises(NodeIdError, match="check character"):
                parse_node_id(typo)


def test_adjacent_transpositions_are_mostly_detected() -> None:
    tried = detected = 0
    for seed in range(200):
        compact = node_id_from_keys(seed.to_bytes(32, "big"), KX).replace("-", "")
        for p in range(16):
            if compact[p] == compact[p + 1]:
                continue
            tried += 1
            try:
                parse_node_id(compact[:p] + compact[p + 1] + compact[p] + compact[p + 2 :])
            except NodeIdError:
                detected += 1
    assert detected / tried > 0.99


@pytest.mark.parametrize(
    "text",
    [
        "",
        "X5CX-01BG-H0XN-BZCS",  # check character missing
        "X5CX-01BG-H0XN-BZCS-22",
        "X5CX-01BG-H0XN-BZCS-U",  # U is not in the alphabet
        "X5CX-01BG-H0XN-BZC*-2",
        "X5CX-01BG-H0XN-BZCS_2",
        "\N{FULLWIDTH LATIN CAPITAL LETTER X}5CX-01BG-H0XN-BZCS-2",
        "\N{LATIN SMALL LETTER DOTLESS I}" * 17,  # upper-cases to ASCII I
    ],
)
def test_rejects_malformed(text: str) -> None:
    assert parse_node_id("X5CX-01BG-H0XN-BZCS-2") == "X5CX-01BG-H0XN-BZCS-2"
    with pytest.raises(NodeIdError):
        parse_node_id(text)
