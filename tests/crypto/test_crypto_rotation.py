"""Key rotation statements and chains, cards and key files of a node that rotated its keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.card import make_card, parse_card
from crypto.errors import CardError, KeyFileError, WrongPassphrase
from crypto.identity import Identity
from crypto.keystore import NodeSecrets, create_keyfile, load_keyfile, replace_identity
from crypto.rotation import RotationInvalid, key_history, make_rotation, parse_rotation, verify_chain

FIRST, SECOND, THIRD, MALLORY = (Identity.from_secret_bytes(bytes([i]) * 64) for i in range(11, 15))
NODE = FIRST.node_id
R1 = make_rotation(FIRST, SECOND, node_id=NODE, n=1, now=100)
R2 = make_rotation(SECOND, THIRD, node_id=NODE, n=2, now=200)


def test_a_chain_links_the_node_id_to_its_current_keys() -> None:
    chain = verify_chain(NODE, [R1, R2])
    assert [(r.n, r.sign) for r in chain] == [(1, SECOND.public.sign_key), (2, THIRD.public.sign_key)]
    assert key_history(chain) == [
        (FIRST.public.sign_key, FIRST.public.kx_key),
        (SECOND.public.sign_key, SECOND.public.kx_key),
        (THIRD.public.sign_key, THIRD.public.kx_key),
    ]
    assert verify_chain(NODE, []) == ()


@pytest.mark.parametrize(
    "chain",
    [
        [R2],  # does not start at the node ID's keys
        [R2, R1],  # out of order
        [R1, R1],  # repeated
        [make_rotation(MALLORY, SECOND, node_id=NODE, n=1)],  # signed by a key the node ID does not name
        [R1, make_rotation(FIRST, THIRD, node_id=NODE, n=2)],  # does not start from the keys R1 introduced
        [make_rotation(FIRST, SECOND, node_id=MALLORY.node_id, n=1)],  # another node's
    ],
)
def test_a_chain_that_does_not_follow_is_refused(chain: list[str]) -> None:
    with pytest.raises(RotationInvalid):
        verify_chain(NODE, chain)


def test_both_signatures_are_needed() -> None:
    prefix, body, old_sig, new_sig = R1[: len("SJROT1.")], *R1[len("SJROT1.") :].split(".")
    other = make_rotation(FIRST, MALLORY, node_id=NODE, n=1).split(".")
    with pytest.raises(RotationInvalid):  # the new key's proof of possession swapped for another key's
        parse_rotation(f"{prefix}{body}.{old_sig}.{other[-1]}")
    with pytest.raises(RotationInvalid):
        parse_rotation(f"{prefix}{body}.{other[-2]}.{new_sig}")
    assert parse_rotation(R1).sign == SECOND.public.sign_key


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400) | st.binary(max_size=300).map(lambda b: "SJROT1." + b.hex()))
def test_garbage_is_refused_with_one_error(text: str) -> None:
    with pytest.raises(RotationInvalid):
        parse_rotation(text)


def rotated(identity: Identity, new: Identity, chain: tuple[str, ...]) -> Identity:
    return identity.rotated_to(new, chain)


def test_a_rotated_node_keeps_its_id_and_its_card_carries_the_chain() -> None:
    now = rotated(FIRST, THIRD, (R1, R2))
    assert now.node_id == NODE and now.public.sign_key == THIRD.public.sign_key
    card = parse_card(make_card(now, name="Thailand", country="TH", role="authority", addresses=[]))
    assert card.node_id == NODE and card.sign_key == THIRD.public.sign_key and card.rotations == (R1, R2)
    with pytest.raises(CardError):  # a card claiming the node ID with keys the chain does not end at
        parse_card(make_card(rotated(FIRST, MALLORY, (R1, R2)), name="X", country="TH", role="authority", addresses=[]))
    with pytest.raises(CardError):  # no chain: the keys do not hash to the ID
        parse_card(make_card(rotated(FIRST, THIRD, ()), name="X", country="TH", role="authority", addresses=[]))


def test_the_key_file_of_a_rotated_node(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_keyfile(path, NodeSecrets(identity=FIRST, db_key=bytes(32)), "passphrase", scrypt_n=2)
    replace_identity(path, "passphrase", rotated(FIRST, SECOND, (R1,)))
    loaded = load_keyfile(path, "passphrase")
    assert loaded.identity.node_id == NODE and loaded.identity.public == SECOND.public
    assert loaded.identity.rotations == (R1,) and loaded.db_key == bytes(32)
    assert FIRST.secret_bytes().hex() not in path.read_text()
    with pytest.raises(KeyFileError):
        replace_identity(path, "passphrase", MALLORY)  # another node ID
    text = path.read_text().replace(R1, R2)
    path.write_text(text)
    with pytest.raises((KeyFileError, WrongPassphrase)):  # the header is bound to the ciphertext
        load_keyfile(path, "passphrase")
