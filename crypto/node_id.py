"""Node IDs: short, typeable names for a node's pair of public keys.

Officers read node IDs aloud over the phone and type them from paper, so the form is chosen for
people: Crockford base32 (no I, L, O, U; case-insensitive), groups of four, and one Luhn mod 32
check character that catches every single mistyped character and most swapped neighbours before
a wrong ID reaches a directory. 80 bits of SHA-256 make a second-preimage (forging a node with a
given ID) cost about 2**80 work; the full keys travel in the signed node card, and the ID only has
to pin them.
"""

from __future__ import annotations

import hashlib

from crypto.errors import NodeIdError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_N = len(ALPHABET)
_DOMAIN = b"seajust-node-id-v1"
_BODY_CHARS = 16  # 80 bits, 5 bits per character
_GROUP = 4
# Crockford's reading rules: letters that look like digits are the digits.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _luhn_check_char(body: str) -> str:
    """Luhn mod N: from the right, double every other code point and fold it back into base N."""
    total = 0
    factor = 2
    for char in reversed(body):
        addend = factor * _INDEX[char]
        total += addend // _N + addend % _N
        factor = 1 if factor == 2 else 2
    return ALPHABET[(_N - total % _N) % _N]


def _canonical(body: str, check: str) -> str:
    groups = [body[i : i + _GROUP] for i in range(0, _BODY_CHARS, _GROUP)]
    return "-".join([*groups, check])


def node_id_from_keys(sign_pub: bytes, kx_pub: bytes) -> str:
    """Both keys are hashed, so an ID pins the signing key and the key-exchange key together."""
    digest = hashlib.sha256(_DOMAIN + bytes(sign_pub) + bytes(kx_pub)).digest()[:10]
    number = int.from_bytes(digest, "big")
    body = "".join(ALPHABET[(number >> (5 * (_BODY_CHARS - 1 - i))) & 0x1F] for i in range(_BODY_CHARS))
    return _canonical(body, _luhn_check_char(body))


def parse_node_id(text: str) -> str:
    """Accept what a person typed (any case, spaces, dashes, O for 0) and return the canonical form."""
    if not isinstance(text, str):
        raise NodeIdError("a node ID must be text")
    if not text.isascii():
        # Checked before upper-casing, which maps some non-ASCII letters onto ASCII ones.
        raise NodeIdError("node ID contains a character that is not allowed")
    compact = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(compact) != _BODY_CHARS + 1:
        raise NodeIdError(
            f"a node ID has {_BODY_CHARS + 1} characters (not counting dashes); this one has {len(compact)}"
        )
    if any(c not in _INDEX for c in compact):
        raise NodeIdError("node ID contains a character that is not allowed")
    body, check = compact[:_BODY_CHARS], compact[_BODY_CHARS]
    if _luhn_check_char(body) != check:
        raise NodeIdError("node ID check character does not match: mistyped?")
    return _canonical(body, check)
