"""Identity: signatures verify only for the right key and data, and secrets never leak through repr."""

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto.errors import CryptoError, KeyFileError, SignatureInvalid
from crypto.identity import Identity, PublicIdentity, verify_signature
from crypto.node_id import node_id_from_keys

SECRET = bytes(range(64))


def test_pinned_identity() -> None:
    identity = Identity.from_secret_bytes(SECRET)
    assert identity.public.sign_key == Ed25519PrivateKey.from_private_bytes(SECRET[:32]).public_key().public_bytes_raw()
    assert identity.public.kx_key == X25519PrivateKey.from_private_bytes(SECRET[32:]).public_key().public_bytes_raw()
    assert identity.node_id == "3DQT-E0X4-ZKGQ-PP7F-Q"
    assert (
        identity.node_id
        == identity.public.node_id
        == node_id_from_keys(identity.public.sign_key, identity.public.kx_key)
    )


def test_sign_and_verify() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"request for assistance")
    verify_signature(identity.public.sign_key, signature, b"request for assistance")
    with pytest.raises(SignatureInvalid):
        verify_signature(identity.public.sign_key, signature, b"request for assistancE")
    with pytest.raises(SignatureInvalid):
        verify_signature(Identity.generate().public.sign_key, signature, b"request for assistance")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(SignatureInvalid):
        verify_signature(identity.public.sign_key, flipped, b"request for assistance")


@pytest.mark.parametrize(
    ("key", "signature"),
    [(b"short", bytes(64)), (bytes(32), b"short"), (b"", b""), (bytes(33), bytes(64)), (bytes(32), bytes(65))],
)
def test_malformed_key_or_signature_is_just_invalid(key: bytes, signature: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        verify_signature(key, signature, b"data")


IDENTITY_POINT = bytes([1]) + bytes(31)  # the neutral element of the curve, a point of order 1


@pytest.mark.parametrize("message", [b"", b"data", b"request for assistance" * 100])
def test_a_degenerate_key_verifies_nothing(message: bytes) -> None:
    """Under a small-order public key, R = the neutral point and S = 0 satisfy the verification equation
    for every message: a checker that accepts such keys lets whoever chose the key 'sign' anything without a
    private key. libsodium (decision 0012) refuses small-order keys and R points."""
    with pytest.raises(SignatureInvalid):
        verify_signature(IDENTITY_POINT, IDENTITY_POINT + bytes(32), message)


def test_a_non_canonical_signature_is_refused() -> None:
    """S must be below the group order: S + L verifies under a lax checker (signature malleability)."""
    identity = Identity.generate()
    signature = identity.sign(b"data")
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(signature[32:], "little") + order
    malleated = signature[:32] + s.to_bytes(32, "little")
    with pytest.raises(SignatureInvalid):
        verify_signature(identity.public.sign_key, malleated, b"data")


def test_secret_bytes_round_trip() -> None:
    identity = Identity.generate()
    secret = identity.secret_bytes()
    assert len(secret) == 64
    again = Identity.from_secret_bytes(secret)
    assert again.public == identity.public
    assert again.secret_bytes() == secret
    assert again.sign(b"x") == identity.sign(b"x")  # Ed25519 is deterministic


@pytest.mark.parametrize("size", [0, 32, 63, 65, 96])
def test_secret_bytes_wrong_length(size: int) -> None:
    with pytest.raises(KeyFileError):
        Identity.from_secret_bytes(bytes(size))


def test_repr_hides_secrets() -> None:
    identity = Identity.from_secret_bytes(SECRET)
    text = repr(identity) + str(identity)
    assert identity.node_id in text
    for secret in (SECRET, SECRET[:32], SECRET[32:]):
        for form in (secret.hex(), repr(secret), secret.hex().upper()):
            assert form not in text
    assert "00010203" not in text


def test_exchange_agrees_and_refuses_bad_keys() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    assert alice.exchange(bob.public.kx_key) == bob.exchange(alice.public.kx_key)
    assert alice.exchange(bob.public.kx_key) != alice.exchange(Identity.generate().public.kx_key)
    with pytest.raises(CryptoError):
        alice.exchange(bytes(32))  # low-order point: all-zero shared secret
    with pytest.raises(CryptoError):
        alice.exchange(b"short")


def test_public_identity_is_a_frozen_checked_value() -> None:
    identity = Identity.from_secret_bytes(SECRET)
    public = PublicIdentity(sign_key=identity.public.sign_key, kx_key=identity.public.kx_key)
    assert public == identity.public
    assert hash(public) == hash(identity.public)
    assert public.node_id == identity.node_id
    with pytest.raises(AttributeError):
        public.sign_key = bytes(32)  # type: ignore[misc]
    with pytest.raises(CryptoError):
        PublicIdentity(sign_key=b"short", kx_key=bytes(32))
