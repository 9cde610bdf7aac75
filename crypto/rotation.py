"""Key rotation: a node moves to new keys and keeps its node ID, with a statement signed by the old key.

The node ID is the hash of a node's *first* keys and names it everywhere (documents, grants, case
history, the roster), so rotating keys must not change it. Instead each rotation is a statement
signed by the keys it retires and by the keys it introduces::

    SJROT1.<b64url(JSON)>.<b64url(sig by the previous signing key)>.<b64url(sig by the new signing key)>
    JSON = canonical {"v": 1, "node": node ID, "n": 1, 2, ..., "at": unix seconds,
                      "prev_sign", "prev_kx", "sign", "kx": base64url public keys}
    each sig = Ed25519(key, b"seajust-rotation-v1\\n" + JSON)

The chain of a node's rotations, checked from its node ID (`verify_chain`), yields its key history:
the first statement's previous keys must hash to the node ID, each next one must start from the keys
the last one introduced. The old key's signature says the owner of the node ID wants the change; the
new key's proves the new keys are held, so nobody can point a node at someone else's key. Parsing is
strict and raises only `RotationInvalid`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from crypto.encoding import b64url, unb64url
from crypto.errors import CryptoError, NodeIdError, SignatureInvalid
from crypto.identity import KEY_SIZE, SIGNATURE_SIZE, Identity, verify_signature
from crypto.node_id import node_id_from_keys, parse_node_id

PREFIX: Final = "SJROT1."
MAX_ROTATION: Final = 1024
MAX_CHAIN: Final = 8  # rotations a card can carry (about 600 characters each in a card, under its 8 kB)
_DOMAIN: Final = b"seajust-rotation-v1\n"
_KEYS: Final = frozenset({"v", "node", "n", "at", "prev_sign", "prev_kx", "sign", "kx"})


class RotationInvalid(CryptoError):
    """That key rotation statement is malformed, not signed by both keys, or does not follow the chain."""


@dataclass(frozen=True)
class Rotation:
    node_id: str
    n: int
    at: int
    prev_sign: bytes
    prev_kx: bytes
    sign: bytes
    kx: bytes
    text: str


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _bad(what: str) -> NoReturn:
    raise RotationInvalid(f"key rotation statement is not valid ({what})")


def make_rotation(current: Identity, new: Identity, *, node_id: str, n: int, now: int | None = None) -> str:
    """The statement moving `node_id` from `current`'s keys to `new`'s, the `n`th rotation of that node."""
    if type(n) is not int or not 1 <= n <= MAX_CHAIN:
        raise ValueError(f"a node rotates its keys at most {MAX_CHAIN} times")
    if current.public == new.public:
        raise ValueError("the new keys are the current ones")
    payload = {
        "v": 1,
        "node": node_id,
        "n": n,
        "at": int(time.time()) if now is None else now,
        "prev_sign": b64url(current.public.sign_key),
        "prev_kx": b64url(current.public.kx_key),
        "sign": b64url(new.public.sign_key),
        "kx": b64url(new.public.kx_key),
    }
    body = _canonical(payload)
    return ".".join([PREFIX + b64url(body), b64url(current.sign(_DOMAIN + body)), b64url(new.sign(_DOMAIN + body))])


def _key(payload: dict[str, Any], name: str) -> bytes:
    value = unb64url(payload[name]) if isinstance(payload[name], str) else None
    if value is None or len(value) != KEY_SIZE:
        _bad(f"{name} is not a key")
    return value


def parse_rotation(text: object) -> Rotation:
    """A well-formed statement whose two signatures verify (chain position is `verify_chain`'s job)."""
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_ROTATION:
        _bad("not a rotation statement")
    parts = text[len(PREFIX) :].split(".")
    if len(parts) != 3:
        _bad("wrong number of parts")
    body, old_sig, new_sig = (unb64url(p) for p in parts)
    if body is None or old_sig is None or new_sig is None or {len(old_sig), len(new_sig)} != {SIGNATURE_SIZE}:
        _bad("encoding")
    try:
        payload = json.loads(body.decode("ascii"))
    except (ValueError, RecursionError):
        _bad("not JSON")
    if not isinstance(payload, dict) or set(payload) != _KEYS or payload["v"] != 1 or _canonical(payload) != body:
        _bad("unexpected contents")
    if type(payload["n"]) is not int or not 1 <= payload["n"] <= MAX_CHAIN:
        _bad("rotation number")
    if type(payload["at"]) is not int or not 0 <= payload["at"] < 2**63:
        _bad("time")
    try:
        if not isinstance(payload["node"], str) or parse_node_id(payload["node"]) != payload["node"]:
            _bad("node ID")
    except NodeIdError:
        _bad("node ID")
    rotation = Rotation(
        node_id=payload["node"],
        n=payload["n"],
        at=payload["at"],
        prev_sign=_key(payload, "prev_sign"),
        prev_kx=_key(payload, "prev_kx"),
        sign=_key(payload, "sign"),
        kx=_key(payload, "kx"),
        text=text,
    )
    try:
        verify_signature(rotation.prev_sign, old_sig, _DOMAIN + body)
        verify_signature(rotation.sign, new_sig, _DOMAIN + body)
    except SignatureInvalid:
        _bad("a signature does not verify")
    return rotation


def verify_chain(node_id: str, texts: Sequence[str]) -> tuple[Rotation, ...]:
    """Check a node's rotations, in order, from its node ID; `RotationInvalid` at the first that does not follow."""
    if len(texts) > MAX_CHAIN:
        _bad("too many rotations")
    chain = tuple(parse_rotation(t) for t in texts)
    for index, rotation in enumerate(chain):
        if rotation.node_id != node_id or rotation.n != index + 1:
            _bad("not this node's next rotation")
        if index == 0:
            if node_id_from_keys(rotation.prev_sign, rotation.prev_kx) != node_id:
                _bad("the first rotation does not start from the keys the node ID names")
        elif (rotation.prev_sign, rotation.prev_kx) != (chain[index - 1].sign, chain[index - 1].kx):
            _bad("a rotation does not start from the keys the previous one introduced")
    return chain


def key_history(chain: Sequence[Rotation]) -> list[tuple[bytes, bytes]]:
    """(signing key, key-exchange key) pairs from the first to the current."""
    if not chain:
        return []
    return [(chain[0].prev_sign, chain[0].prev_kx), *((r.sign, r.kx) for r in chain)]
