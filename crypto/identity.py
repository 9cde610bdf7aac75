"""A node's identity: one Ed25519 key to sign, one X25519 key to receive encrypted messages.

Two keys rather than one converted key, so each is used for exactly one purpose and either
library primitive can be swapped without touching the other. Private keys stay inside
`Identity`; everything that leaves the node is a `PublicIdentity` or a node ID.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError as NaclCryptoError

from crypto.errors import CryptoError, KeyFileError, SignatureInvalid
from crypto.node_id import node_id_from_keys

KEY_SIZE = 32
SIGNATURE_SIZE = 64
SECRET_SIZE = 2 * KEY_SIZE


@dataclass(frozen=True)
class PublicIdentity:
    """What other nodes know about us: raw public keys, and the ID derived from them."""

    sign_key: bytes
    kx_key: bytes

    def __post_init__(self) -> None:
        if len(self.sign_key) != KEY_SIZE or len(self.kx_key) != KEY_SIZE:
            raise CryptoError("public keys must be 32 bytes each")

    @property
    def node_id(self) -> str:
        return node_id_from_keys(self.sign_key, self.kx_key)


class Identity:
    """A node's private keys. Kept as library key objects so raw secrets are only made on request."""

    __slots__ = ("_kx", "_node_id", "_public", "_sign", "rotations")

    def __init__(
        self,
        sign_key: Ed25519PrivateKey,
        kx_key: X25519PrivateKey,
        *,
        node_id: str | None = None,
        rotations: tuple[str, ...] = (),
    ) -> None:
        """`node_id` and `rotations` are given for a node that rotated its keys (`crypto.rotation`): its ID
        stays the hash of its first keys, and the chain of rotation statements links them to these."""
        self._sign = sign_key
        self._kx = kx_key
        self._public = PublicIdentity(
            sign_key=sign_key.public_key().public_bytes_raw(),
            kx_key=kx_key.public_key().public_bytes_raw(),
        )
        self._node_id = node_id or self._public.node_id
        self.rotations = rotations

    def rotated_to(self, new: Identity, rotations: tuple[str, ...]) -> Identity:
        """`new`'s keys under this node's ID, with the rotation chain that vouches for them."""
        return Identity(new._sign, new._kx, node_id=self.node_id, rotations=rotations)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @classmethod
    def from_secret_bytes(cls, data: bytes, *, node_id: str | None = None, rotations: tuple[str, ...] = ()) -> Identity:
        """The inverse of `secret_bytes`; also how tests make identities from fixed seeds."""
        if len(data) != SECRET_SIZE:
            raise KeyFileError(f"node secret keys must be {SECRET_SIZE} bytes")
        return cls(
            Ed25519PrivateKey.from_private_bytes(bytes(data[:KEY_SIZE])),
            X25519PrivateKey.from_private_bytes(bytes(data[KEY_SIZE:])),
            node_id=node_id,
            rotations=rotations,
        )

    def secret_bytes(self) -> bytes:
        """Ed25519 private key || X25519 private key: for the keystore only, which encrypts it."""
        return self._sign.private_bytes_raw() + self._kx.private_bytes_raw()

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def node_id(self) -> str:
        return self._node_id

    def sign(self, data: bytes) -> bytes:
        return self._sign.sign(data)

    def exchange(self, peer_kx_key: bytes) -> bytes:
        """X25519 with a peer's raw public key; refuses keys that would give an all-zero secret."""
        try:
            return self._kx.exchange(X25519PublicKey.from_public_bytes(peer_kx_key))
        except ValueError:
            raise CryptoError("the peer's key-exchange key is not usable") from None

    def __repr__(self) -> str:
        return f"Identity(node_id={self.node_id!r})"


def verify_signature(sign_key: bytes, signature: bytes, data: bytes) -> None:
    """Raise `SignatureInvalid` for a bad signature, and equally for a malformed key or signature,
    so callers have one failure to handle and an attacker learns nothing from which one it was.

    Checked by libsodium (PyNaCl) rather than OpenSSL: the same Ed25519 (RFC 8032), in about half the
    time on our machines (64 to 90 against 128 us), and a node catching up checks several signatures per case
    (decision 0012). libsodium is also the stricter of the two: it refuses small-order keys and points,
    which no honest signer produces. Signing stays with `cryptography`, which holds the private key.
    """
    try:
        if len(sign_key) != KEY_SIZE or len(signature) != SIGNATURE_SIZE:
            raise SignatureInvalid()
        crypto_sign_open(bytes(signature) + bytes(data), bytes(sign_key))
    except (NaclCryptoError, ValueError, TypeError):
        raise SignatureInvalid() from None
