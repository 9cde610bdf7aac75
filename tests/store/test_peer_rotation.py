"""A peer's key rotation as this node records it: announced, then switched to when the peer signs with it."""

from __future__ import annotations

from crypto.card import parse_card
from crypto.identity import Identity
from crypto.rotation import make_rotation
from node.runtime import Node


def test_an_announced_rotation_is_held_until_the_peer_uses_it(pair: tuple[Node, Node, Node]) -> None:
    th, vn, _ = pair
    new = Identity.generate()
    announcement = make_rotation(th.identity, new, node_id=th.node_id, n=1)
    assert vn.peers.apply_rotations(th.node_id, [announcement], actor="tests")
    assert not vn.peers.apply_rotations(th.node_id, [announcement], actor="tests")  # not news twice
    keys = vn.peers.keys(th.node_id)
    assert keys is not None and keys.sign_key == th.identity.public.sign_key  # still the old keys for sessions
    assert keys.announced == (new.public.sign_key, new.public.kx_key)
    assert new.public.sign_key in vn.peers.sign_keys(th.node_id)  # documents it signs once switched verify
    assert vn.peers.confirm_rotation(th.node_id, actor="tests")
    keys = vn.peers.keys(th.node_id)
    assert keys is not None and keys.sign_key == new.public.sign_key and keys.announced is None
    assert vn.peers.sign_keys(th.node_id) == (new.public.sign_key, th.identity.public.sign_key)


def test_a_rotation_not_from_the_trusted_keys_is_refused(pair: tuple[Node, Node, Node]) -> None:
    th, vn, ph = pair
    mallory = Identity.generate()
    forged = make_rotation(ph.identity, mallory, node_id=th.node_id, n=1)  # signed by another node's key
    assert not vn.peers.apply_rotations(th.node_id, [forged], actor="tests")
    keys = vn.peers.keys(th.node_id)
    assert keys is not None and keys.announced is None


def test_a_newer_card_with_the_chain_moves_the_peer_to_its_keys(pair: tuple[Node, Node, Node]) -> None:
    th, vn, _ = pair
    new = Identity.generate()
    rotated = th.identity.rotated_to(new, (make_rotation(th.identity, new, node_id=th.node_id, n=1),))
    th.identity = rotated
    card = th.card()
    assert parse_card(card).node_id == th.node_id
    vn.peers.add_card(card, actor="tests")
    keys = vn.peers.keys(th.node_id)
    assert keys is not None and keys.sign_key == new.public.sign_key
