"""Case keys: each case document is encrypted end to end with its own key, held only by its parties.

Why a per-case key, when every sync message is already sealed in an envelope for its recipient?
The envelope protects one hop. A relay, a node that forwards a backlog, or a copy delivered to the
wrong authority by a routing mistake all hold the document's updates; with a case key those are
ciphertext to everyone but the two (or more) authorities the case concerns. The key also makes
sharing a decision rather than a side effect: a party adds a third authority by issuing a new grant,
at `version + 1`, that wraps the same key for the larger party list. After unwrapping, a node keeps
the key in its own encrypted database, so the grant is needed only once per version.

Keys have epochs: a later grant may carry a fresh key (regularly, and when a party is removed),
and then wraps, after it, the earlier keys still needed to read the stored history, so a party
that joins later reads the whole case. A grant wraps this key bundle for each party separately::

    wrap_key  = HKDF-SHA256(X25519(ephemeral, party_kx), salt = ephemeral_pub + party_kx,
                            info = b"seajust-doc-key-v1|" + doc_id + b"|" + party_id + b"|" + version)
    wrapped   = ephemeral_pub (32) + ChaCha20-Poly1305(wrap_key, 12 zero bytes, keys, aad = info)
    keys      = current key (32) + older keys (32 each, newest first; at most MAX_EPOCH_KEYS in all)

`doc_id` is printable ASCII, `party_id` a canonical node ID and `version` in decimal; neither of the
last two can contain "|", so the info string has one reading. Binding the version means a wrapped
key cannot be lifted out of one grant and into another.

Encoded grant (canonical JSON: sorted keys, no spaces, ASCII; bytes in unpadded base64url)::

    {"doc_id": ..., "format": 1, "issuer": node_id, "parties": {node_id: {"role": ..., "wrapped": b64}},
     "sig": b64, "version": n}
    sig = Ed25519(issuer, b"seajust-grant-v1\\n" + the same JSON without "sig")

`decode_grant` accepts only that canonical form, so one grant has one encoding, and for any input
raises only `KeyGrantInvalid`: grants arrive from the network. What a signature cannot settle is
the caller's job: looking up the issuer's signing key from its node ID, checking the issuer was
entitled to issue (a party to the previous version) and that versions only go up. A grant does not
prove every party received the same key; parties are trusted authorities, not adversaries.

Document updates and attachments are sealed with `DocCipher` under a random nonce::

    sealed = nonce (12) + ChaCha20-Poly1305(doc_key, nonce, plaintext, aad)
    aad    = domain + u16 len + doc_id + u16 len + author_id or attachment_id   (UTF-8, big-endian)
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.encoding import b64url, unb64url
from crypto.errors import CryptoError, NodeIdError, SignatureInvalid
from crypto.identity import KEY_SIZE, SIGNATURE_SIZE, Identity, verify_signature
from crypto.node_id import parse_node_id

DOC_KEY_SIZE = 32
ROLES = ("requesting", "requested", "shared")
GRANT_FORMAT = 1
MAX_GRANT_SIZE = 64 * 1024
MAX_PARTIES = 32
MAX_DOC_ID_LENGTH = 200
MAX_VERSION = 2**63 - 1  # fits a SQLite INTEGER
_GRANT_DOMAIN = b"seajust-grant-v1\n"
_WRAP_DOMAIN = b"seajust-doc-key-v1|"
_UPDATE_DOMAIN = b"seajust-doc-update-v1"
_BLOB_DOMAIN = b"seajust-doc-blob-v1"
# A zero nonce is safe for wrapping because every wrap key is used once: it is derived from a fresh
# ephemeral X25519 key per party per grant, so no (key, nonce) pair is ever repeated.
_WRAP_NONCE = bytes(12)
_TAG_SIZE = 16
MAX_EPOCH_KEYS = 24  # two years of monthly epochs; keeps a 32-party grant under MAX_GRANT_SIZE
_WRAPPED_SIZE = KEY_SIZE + DOC_KEY_SIZE + _TAG_SIZE  # one key; each older key adds DOC_KEY_SIZE


def _wrapped_size_ok(size: int) -> bool:
    extra = size - _WRAPPED_SIZE
    return extra >= 0 and extra % DOC_KEY_SIZE == 0 and extra // DOC_KEY_SIZE < MAX_EPOCH_KEYS


# Document ciphers reuse one key for many messages, so nonces are random: 96 bits keeps the chance
# of any repeat negligible (below 2**-32) for up to 2**32 messages per case, far beyond any case.
_NONCE_SIZE = 12
_MIN_SEALED = _NONCE_SIZE + _TAG_SIZE
_MAX_AEAD_INPUT = 2**31 - 1  # the cryptography library's limit for one AEAD call
MAX_SEALED_PLAINTEXT = _MAX_AEAD_INPUT - _TAG_SIZE
_U16 = struct.Struct(">H")
_DOC_ID = re.compile(rf"[\x20-\x7e]{{1,{MAX_DOC_ID_LENGTH}}}")
_GRANT_KEYS = frozenset({"doc_id", "format", "issuer", "parties", "sig", "version"})
_PARTY_KEYS = frozenset({"role", "wrapped"})


class KeyGrantInvalid(CryptoError):
    """That document key grant is malformed or not for this node."""


class DocDecryptError(CryptoError):
    """A document update or attachment could not be decrypted with the case key."""


def new_doc_key() -> bytes:
    return os.urandom(DOC_KEY_SIZE)


@dataclass(frozen=True)
class KeyGrant:
    """One version of a case's party list, with the case key wrapped for each party.

    A decoded grant is well formed but not yet trusted: call `verify_grant` before acting on it.
    """

    doc_id: str
    version: int
    issuer: str
    roles: dict[str, str]
    wrapped: dict[str, bytes]
    sig: bytes

    @property
    def parties(self) -> tuple[str, ...]:
        return tuple(sorted(self.roles))


def _canonical_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _is_canonical_node_id(value: object) -> bool:
    return isinstance(value, str) and _canonical_node_id(value)


@functools.lru_cache(maxsize=1024)
def _canonical_node_id(value: str) -> bool:
    """Cached: a node checks the same few party IDs in every grant of a catch-up (thousands of them)."""
    try:
        return parse_node_id(value) == value
    except NodeIdError:
        return False


def _check_doc_id(doc_id: object) -> str:
    if not isinstance(doc_id, str) or not _DOC_ID.fullmatch(doc_id):
        raise ValueError(f"doc_id must be 1 to {MAX_DOC_ID_LENGTH} printable ASCII characters")
    return doc_id


def _check_version(version: object) -> int:
    # bool is a subclass of int in Python; True must not pass as version 1.
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"grant version must be a whole number from 1 to {MAX_VERSION}")
    return version


def _unsigned_payload(grant: KeyGrant) -> dict[str, Any]:
    """The grant as JSON-ready data without its signature; ValueError for anything malformed."""
    _check_doc_id(grant.doc_id)
    _check_version(grant.version)
    roles, wrapped = grant.roles, grant.wrapped
    if not isinstance(roles, dict) or not isinstance(wrapped, dict) or set(roles) != set(wrapped):
        raise ValueError("grant roles and wrapped keys must name the same parties")
    if not 1 <= len(roles) <= MAX_PARTIES:
        raise ValueError(f"a grant names 1 to {MAX_PARTIES} parties")
    parties: dict[str, Any] = {}
    for node_id, role in roles.items():
        if not _is_canonical_node_id(node_id):
            raise ValueError("grant party is not a canonical node ID")
        if role not in ROLES:
            raise ValueError(f"grant role must be one of: {', '.join(ROLES)}")
        key = wrapped[node_id]
        if not isinstance(key, bytes) or not _wrapped_size_ok(len(key)):
            raise ValueError(f"a wrapped key bundle is {_WRAPPED_SIZE} bytes plus {DOC_KEY_SIZE} per older key")
        parties[node_id] = {"role": role, "wrapped": b64url(key)}
    if not isinstance(grant.issuer, str) or grant.issuer not in roles:
        raise ValueError("the grant issuer must be one of its parties")
    return {
        "doc_id": grant.doc_id,
        "format": GRANT_FORMAT,
        "issuer": grant.issuer,
        "parties": parties,
        "version": grant.version,
    }


def _signed_message(grant: KeyGrant) -> bytes:
    return _GRANT_DOMAIN + _canonical_json(_unsigned_payload(grant))


def _wrap_info(doc_id: str, party_id: str, version: int) -> bytes:
    return _WRAP_DOMAIN + doc_id.encode("ascii") + b"|" + party_id.encode("ascii") + b"|" + str(version).encode()


def _wrap_key(shared_secret: bytes, ephemeral_pub: bytes, party_kx_key: bytes, info: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_pub + party_kx_key, info=info)
    return hkdf.derive(shared_secret)


def _wrap(key: bytes, *, doc_id: str, party_id: str, version: int, party_kx_key: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = ephemeral.public_key().public_bytes_raw()
    # ValueError for a malformed key or one that would give an all-zero secret.
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(party_kx_key))
    info = _wrap_info(doc_id, party_id, version)
    wrap_key = _wrap_key(shared, ephemeral_pub, party_kx_key, info)
    return ephemeral_pub + ChaCha20Poly1305(wrap_key).encrypt(_WRAP_NONCE, key, info)


def issue_grant(
    issuer: Identity,
    *,
    doc_id: str,
    version: int,
    key: bytes,
    parties: Mapping[str, tuple[str, bytes]],
    older: Sequence[bytes] = (),
) -> KeyGrant:
    """Wrap `key` (and the `older` epoch keys, newest first) for every party and sign the result as `issuer`.

    `parties` maps each node ID (canonical, as in its card) to (role, that node's X25519 public key),
    and must include the issuer. Bad arguments are this node's bug and raise ValueError.
    """
    _check_doc_id(doc_id)
    _check_version(version)
    bundle = (key, *older)
    if not all(isinstance(k, bytes) and len(k) == DOC_KEY_SIZE for k in bundle):
        raise ValueError(f"a document key is {DOC_KEY_SIZE} bytes")
    if len(bundle) > MAX_EPOCH_KEYS or len(set(bundle)) != len(bundle):
        raise ValueError(f"a grant carries 1 to {MAX_EPOCH_KEYS} distinct keys")
    if not 1 <= len(parties) <= MAX_PARTIES:
        raise ValueError(f"a grant names 1 to {MAX_PARTIES} parties")
    if issuer.node_id not in parties:
        raise ValueError("the grant issuer must be one of its parties")
    if parties[issuer.node_id][1] != issuer.public.kx_key:
        raise ValueError("the issuer's key-exchange key in the party list is not its own")
    roles: dict[str, str] = {}
    wrapped: dict[str, bytes] = {}
    for node_id, (role, kx_key) in parties.items():
        if not _is_canonical_node_id(node_id):
            raise ValueError(f"{node_id!r} is not a canonical node ID")
        if role not in ROLES:
            raise ValueError(f"grant role must be one of: {', '.join(ROLES)}")
        roles[node_id] = role
        try:
            wrapped[node_id] = _wrap(
                b"".join(bundle), doc_id=doc_id, party_id=node_id, version=version, party_kx_key=bytes(kx_key)
            )
        except ValueError:
            raise ValueError(f"the key-exchange key of party {node_id} is not usable") from None
    unsigned = KeyGrant(doc_id=doc_id, version=version, issuer=issuer.node_id, roles=roles, wrapped=wrapped, sig=b"")
    signature = issuer.sign(_signed_message(unsigned))
    return KeyGrant(doc_id=doc_id, version=version, issuer=issuer.node_id, roles=roles, wrapped=wrapped, sig=signature)


def encode_grant(grant: KeyGrant) -> bytes:
    """Canonical bytes; ValueError for a grant that `decode_grant` would refuse."""
    if not isinstance(grant.sig, bytes) or len(grant.sig) != SIGNATURE_SIZE:
        raise ValueError(f"a grant signature is {SIGNATURE_SIZE} bytes")
    payload = _unsigned_payload(grant)
    payload["sig"] = b64url(grant.sig)
    return _canonical_json(payload)


def _malformed(what: str) -> NoReturn:
    raise KeyGrantInvalid(f"document key grant is malformed ({what})")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"not JSON: {name}")


def _parse_grant(data: bytes) -> KeyGrant:
    try:
        payload = json.loads(
            data.decode("ascii"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        _malformed("not valid JSON")
    if not isinstance(payload, dict) or set(payload) != _GRANT_KEYS:
        _malformed("unexpected contents")
    if type(payload["format"]) is not int or payload["format"] != GRANT_FORMAT:
        raise KeyGrantInvalid("document key grant format is not supported by this SEAJust Node")
    parties = payload["parties"]
    if not isinstance(parties, dict) or not 1 <= len(parties) <= MAX_PARTIES:
        _malformed("party list")
    roles: dict[str, str] = {}
    wrapped: dict[str, bytes] = {}
    for node_id, entry in parties.items():
        if not isinstance(entry, dict) or set(entry) != _PARTY_KEYS:
            _malformed("party entry")
        if not isinstance(entry["role"], str) or not isinstance(entry["wrapped"], str):
            _malformed("party entry")
        key = unb64url(entry["wrapped"])
        if key is None:
            _malformed("not valid base64")
        roles[node_id] = entry["role"]
        wrapped[node_id] = key
    if not isinstance(payload["sig"], str):
        _malformed("signature")
    signature = unb64url(payload["sig"])
    if signature is None:
        _malformed("not valid base64")
    grant = KeyGrant(
        doc_id=payload["doc_id"],
        version=payload["version"],
        issuer=payload["issuer"],
        roles=roles,
        wrapped=wrapped,
        sig=signature,
    )
    try:
        canonical = encode_grant(grant)  # checks every field
    except ValueError as error:
        raise KeyGrantInvalid(f"document key grant is malformed: {error}") from None
    if canonical != data:
        _malformed("not in canonical form")
    return grant


def decode_grant(data: bytes) -> KeyGrant:
    """Parse a grant strictly; for any input at all, the only error is `KeyGrantInvalid`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        _malformed("not bytes")
    data = bytes(data)
    if len(data) > MAX_GRANT_SIZE:
        _malformed("too large")
    return _parse_grant(data)


def verify_grant(grant: KeyGrant, issuer_sign_key: bytes) -> None:
    """Raise `SignatureInvalid` unless `issuer_sign_key` signed exactly this grant.

    The caller looks the key up from `grant.issuer` (via that node's card); a grant that could never
    have been signed fails the same way as a bad signature.
    """
    try:
        message = _signed_message(grant)
    except (ValueError, TypeError, AttributeError):
        raise SignatureInvalid() from None
    verify_signature(issuer_sign_key, grant.sig, message)


def unwrap_key(grant: KeyGrant, me: Identity) -> bytes:
    """This node's copy of the current case key; `KeyGrantInvalid` if it is not a party or the copy is damaged."""
    return unwrap_keys(grant, me)[0]


def unwrap_keys(grant: KeyGrant, me: Identity) -> tuple[bytes, ...]:
    """The current key then the older epoch keys the grant carries, newest first."""
    wrapped = grant.wrapped.get(me.node_id) if isinstance(grant.wrapped, dict) else None
    if not isinstance(wrapped, bytes) or not _wrapped_size_ok(len(wrapped)):
        raise KeyGrantInvalid("this node is not a party to that document key grant")
    ephemeral_pub, ciphertext = wrapped[:KEY_SIZE], wrapped[KEY_SIZE:]
    try:
        _check_doc_id(grant.doc_id)
        _check_version(grant.version)
        shared = me.exchange(ephemeral_pub)
        info = _wrap_info(grant.doc_id, me.node_id, grant.version)
        key = ChaCha20Poly1305(_wrap_key(shared, ephemeral_pub, me.public.kx_key, info)).decrypt(
            _WRAP_NONCE, ciphertext, info
        )
    except (CryptoError, InvalidTag, ValueError):
        raise KeyGrantInvalid("the document key in that grant could not be unwrapped") from None
    keys = tuple(key[i : i + DOC_KEY_SIZE] for i in range(0, len(key), DOC_KEY_SIZE))
    if len(set(keys)) != len(keys):
        raise KeyGrantInvalid("the document key bundle in that grant repeats a key")
    return keys


def _aad(domain: bytes, doc_id: bytes, name: str) -> bytes:
    """Length-prefixed, so no two (doc_id, name) pairs give the same bytes."""
    encoded = name.encode("utf-8")
    if len(encoded) > 0xFFFF:
        raise ValueError("name too long")
    return b"".join([domain, _U16.pack(len(doc_id)), doc_id, _U16.pack(len(encoded)), encoded])


class DocCipher:
    """Encrypts a case document's CRDT updates and attachments with the case key."""

    __slots__ = ("_aead", "_doc_id_bytes", "doc_id")

    def __init__(self, key: bytes, doc_id: str) -> None:
        if not isinstance(key, bytes) or len(key) != DOC_KEY_SIZE:
            raise ValueError(f"a document key is {DOC_KEY_SIZE} bytes")
        self.doc_id = _check_doc_id(doc_id)
        self._doc_id_bytes = doc_id.encode("ascii")
        self._aead = ChaCha20Poly1305(key)

    def _seal(self, plaintext: bytes, aad: bytes) -> bytes:
        if len(plaintext) > MAX_SEALED_PLAINTEXT:
            raise CryptoError(f"cannot encrypt more than {MAX_SEALED_PLAINTEXT} bytes at once")
        nonce = os.urandom(_NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def _open(self, data: bytes, domain: bytes, name: str) -> bytes:
        try:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError("not bytes")
            view = memoryview(data)  # slices without copying, which matters for attachments
            if view.nbytes < _MIN_SEALED:
                raise ValueError("truncated")
            return self._aead.decrypt(view[:_NONCE_SIZE], view[_NONCE_SIZE:], _aad(domain, self._doc_id_bytes, name))
        except (InvalidTag, ValueError, TypeError, OverflowError, AttributeError):
            raise DocDecryptError() from None

    def seal_update(self, plaintext: bytes, *, author: str) -> bytes:
        """`author` is the node ID of the update's author, bound so it cannot be reattributed."""
        return self._seal(plaintext, _aad(_UPDATE_DOMAIN, self._doc_id_bytes, author))

    def open_update(self, data: bytes, *, author: str) -> bytes:
        return self._open(data, _UPDATE_DOMAIN, author)

    def seal_blob(self, plaintext: bytes, *, attachment_id: str) -> bytes:
        return self._seal(plaintext, _aad(_BLOB_DOMAIN, self._doc_id_bytes, attachment_id))

    def open_blob(self, data: bytes, *, attachment_id: str) -> bytes:
        return self._open(data, _BLOB_DOMAIN, attachment_id)

    def __repr__(self) -> str:
        return f"DocCipher(doc_id={self.doc_id!r})"


class EpochCipher:
    """A case's ciphers over its key epochs: seals with the current key, opens with whichever key sealed.

    Trying each key costs one failed AEAD tag check (about a microsecond) per older epoch, so no key
    identifier has to travel in the clear beside the ciphertext.
    """

    __slots__ = ("_ciphers", "doc_id")

    def __init__(self, keys: Sequence[bytes], doc_id: str) -> None:
        if not keys:
            raise ValueError("an epoch cipher needs at least one key")
        self._ciphers = tuple(DocCipher(key, doc_id) for key in keys)
        self.doc_id = doc_id

    def seal_update(self, plaintext: bytes, *, author: str) -> bytes:
        return self._ciphers[0].seal_update(plaintext, author=author)

    def open_update(self, data: bytes, *, author: str) -> bytes:
        for cipher in self._ciphers:
            try:
                return cipher.open_update(data, author=author)
            except DocDecryptError:
                continue
        raise DocDecryptError()

    def seal_blob(self, plaintext: bytes, *, attachment_id: str) -> bytes:
        return self._ciphers[0].seal_blob(plaintext, attachment_id=attachment_id)

    def open_blob(self, data: bytes, *, attachment_id: str) -> bytes:
        for cipher in self._ciphers:
            try:
                return cipher.open_blob(data, attachment_id=attachment_id)
            except DocDecryptError:
                continue
        raise DocDecryptError()

    def __repr__(self) -> str:
        return f"EpochCipher(doc_id={self.doc_id!r}, epochs={len(self._ciphers)})"
