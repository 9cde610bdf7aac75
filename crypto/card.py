"""Node cards: how two nodes are introduced, by officers pasting one line of text into an email.

A card is self-signed and names its own ID, which is a hash of its keys, so anyone holding the
card can check it is internally consistent. Whether it is the *right* node is for a person to
decide, by comparing the node ID with one read out over another channel: the card only makes
that comparison sufficient. Parsing is strict and never raises anything but `CardError`, because
its input is whatever arrived in someone's inbox.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from crypto.encoding import b64url, unb64url
from crypto.errors import CardError, SignatureInvalid
from crypto.identity import KEY_SIZE, SIGNATURE_SIZE, Identity, PublicIdentity, verify_signature
from crypto.node_id import node_id_from_keys
from crypto.rotation import RotationInvalid, verify_chain

CARD_PREFIX = "SJCARD1."
ROLES = ("authority", "secretariat")
CARD_VERSION = 1
MAX_CARD_SIZE = 8 * 1024
MAX_NAME_LENGTH = 200
MAX_ADDRESSES = 8
MAX_ADDRESS_LENGTH = 512
MAX_ISSUED_AT = 2**63 - 1  # fits a SQLite INTEGER
_SIGNING_DOMAIN = b"seajust-card-v1\n"
_KEYS = frozenset({"v", "id", "name", "country", "role", "sign_key", "kx_key", "addresses", "issued_at"})
_COUNTRY = re.compile(r"[A-Z]{2}")
# Bidirectional overrides and isolates can make a name display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class NodeCard:
    """A verified card: its signature checked and its ID matching its keys."""

    node_id: str
    name: str
    country: str
    role: str
    sign_key: bytes
    kx_key: bytes
    addresses: tuple[str, ...]
    issued_at: int
    rotations: tuple[str, ...] = ()  # a node that rotated its keys: the chain from its node ID to these keys

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(sign_key=self.sign_key, kx_key=self.kx_key)


def _canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _check_name(name: str) -> None:
    if not name.strip():
        raise CardError("card name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise CardError(f"card name must be at most {MAX_NAME_LENGTH} characters")
    if any(c in _BIDI_CONTROLS or unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in name):
        raise CardError("card name contains control characters")


def _check_address(index: int, address: str) -> None:
    bad = CardError(f"card address {index + 1} is not an http:// or https:// URL")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise CardError(f"card address {index + 1} is longer than {MAX_ADDRESS_LENGTH} characters")
    # Printable ASCII only (internationalised host names go in punycode): nothing to hide or wrap.
    if not address.isascii() or not address.isprintable() or any(c.isspace() for c in address):
        raise bad
    try:
        parts = urllib.parse.urlsplit(address)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad


def _check_fields(name: str, country: str, role: str, addresses: Sequence[str]) -> None:
    _check_name(name)
    if not _COUNTRY.fullmatch(country):
        raise CardError("card country must be a two-letter code in capitals, such as TH")
    if role not in ROLES:
        raise CardError(f"card role must be one of: {', '.join(ROLES)}")
    if len(addresses) > MAX_ADDRESSES:
        raise CardError(f"a card lists at most {MAX_ADDRESSES} addresses")
    for index, address in enumerate(addresses):
        _check_address(index, address)


def make_card(
    identity: Identity,
    *,
    name: str,
    country: str,
    role: str,
    addresses: Sequence[str],
    now: int | None = None,
) -> str:
    """Validate as `parse_card` does, so a card this node makes is one every node accepts."""
    if isinstance(addresses, str):
        raise CardError("card addresses must be a list of URLs, not one string")
    addresses = tuple(addresses)
    if not all(isinstance(a, str) for a in addresses):
        raise CardError("card addresses must be text")
    _check_fields(name, country, role, addresses)
    issued_at = int(time.time()) if now is None else now
    if type(issued_at) is not int or not 0 <= issued_at <= MAX_ISSUED_AT:
        raise CardError("card issue time must be whole seconds since 1970")
    public = identity.public
    payload = {
        "v": CARD_VERSION,
        "id": identity.node_id,
        "name": name,
        "country": country,
        "role": role,
        "sign_key": b64url(public.sign_key),
        "kx_key": b64url(public.kx_key),
        "addresses": list(addresses),
        "issued_at": issued_at,
    }
    if identity.rotations:
        payload["rotations"] = list(identity.rotations)
    body = _canonical_json(payload)
    signature = identity.sign(_SIGNING_DOMAIN + body)
    card = CARD_PREFIX + b64url(body) + "." + b64url(signature)
    if len(card) > MAX_CARD_SIZE:
        raise CardError("card is too long: use a shorter name or fewer addresses")
    return card


def _damaged(what: str) -> NoReturn:
    raise CardError(f"card is damaged ({what}): copy the whole card again")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"not JSON: {name}")


def _decode_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError):
        _damaged("not valid JSON")
    if not isinstance(payload, dict) or set(payload) - {"rotations"} != _KEYS:
        _damaged("unexpected contents")
    rotations = payload.get("rotations", [])
    if not isinstance(rotations, list) or not all(isinstance(r, str) for r in rotations):
        _damaged("rotations are not a list of text")
    if "rotations" in payload and not rotations:
        _damaged("an empty list of rotations")
    for key in ("id", "name", "country", "role", "sign_key", "kx_key"):
        if not isinstance(payload[key], str):
            _damaged(f"{key} is not text")
    # bool is a subclass of int in Python; JSON true must not pass as a number.
    if type(payload["v"]) is not int or type(payload["issued_at"]) is not int:
        _damaged("a number field is not a number")
    addresses = payload["addresses"]
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        _damaged("addresses are not a list of text")
    return payload


def parse_card(text: str) -> NodeCard:
    """Whitespace anywhere is ignored, because mail clients wrap and indent long lines."""
    if not isinstance(text, str):
        raise CardError("not a SEAJust card")
    compact = "".join(text.split())
    if not compact.startswith(CARD_PREFIX):
        raise CardError(f"not a SEAJust card (a card starts with {CARD_PREFIX})")
    if len(compact) > MAX_CARD_SIZE:
        raise CardError("card is too long")
    parts = compact[len(CARD_PREFIX) :].split(".")
    if len(parts) != 2:
        _damaged("wrong number of parts")
    body = unb64url(parts[0])
    signature = unb64url(parts[1])
    if body is None or signature is None:
        _damaged("not valid base64")
    if len(signature) != SIGNATURE_SIZE:
        _damaged("signature has the wrong length")
    payload = _decode_payload(body)
    if payload["v"] != CARD_VERSION:
        raise CardError(f"card version {payload['v']} is not supported by this SEAJust Node")
    sign_key = unb64url(payload["sign_key"])
    kx_key = unb64url(payload["kx_key"])
    if sign_key is None or kx_key is None or len(sign_key) != KEY_SIZE or len(kx_key) != KEY_SIZE:
        _damaged("keys are malformed")
    try:
        verify_signature(sign_key, signature, _SIGNING_DOMAIN + body)
    except SignatureInvalid:
        raise CardError("card signature does not verify: it was altered after it was made") from None
    rotations = tuple(payload.get("rotations", ()))
    if rotations:
        try:
            chain = verify_chain(payload["id"], rotations)
        except RotationInvalid as exc:
            raise CardError(f"card key rotations do not verify: {exc.message}") from None
        if (chain[-1].sign, chain[-1].kx) != (sign_key, kx_key):
            raise CardError("card keys are not the ones its last key rotation names")
    elif payload["id"] != node_id_from_keys(sign_key, kx_key):
        raise CardError("card node ID does not match its keys")
    addresses = tuple(payload["addresses"])
    _check_fields(payload["name"], payload["country"], payload["role"], addresses)
    if not 0 <= payload["issued_at"] <= MAX_ISSUED_AT:
        raise CardError("card issue time is not valid")
    return NodeCard(
        node_id=payload["id"],
        name=payload["name"],
        country=payload["country"],
        role=payload["role"],
        sign_key=sign_key,
        kx_key=kx_key,
        addresses=addresses,
        issued_at=payload["issued_at"],
        rotations=rotations,
    )
