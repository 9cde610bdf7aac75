"""The key file: the node's private keys and database key, sealed under the operator's passphrase.

This is the only module in `crypto` that touches the file system, because the file's format and
its safe writing are the same concern. The header (format, version, node ID, KDF parameters,
AEAD name) is plaintext so a node can show its ID before it is unlocked, and is bound to the
ciphertext as associated data so no header field can be changed without the file failing to open.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.errors import CryptoError, KeyFileError, NodeIdError, WrongPassphrase
from crypto.identity import SECRET_SIZE, Identity
from crypto.node_id import parse_node_id
from crypto.passphrase import DEFAULT_SCRYPT_N, MAX_SCRYPT_N, SCRYPT_P, SCRYPT_R
from crypto.passphrase import b64 as _b64
from crypto.passphrase import canonical_json as _canonical_json
from crypto.passphrase import check_scrypt_n as _check_scrypt_n
from crypto.passphrase import derive_key as _derive_key
from crypto.passphrase import fsync_directory as _fsync_directory
from crypto.passphrase import passphrase_bytes as _passphrase_bytes
from crypto.rotation import RotationInvalid, verify_chain

KEYFILE_NAME = "keys.json"
FORMAT = "seajust-keys"
VERSION = 1
AEAD_NAME = "chacha20poly1305"
DB_KEY_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 12
_MAX_FILE_SIZE = 64 * 1024
_PLAINTEXT_SIZE = SECRET_SIZE + DB_KEY_SIZE
_TAG_SIZE = 16


@dataclass(frozen=True)
class NodeSecrets:
    """Everything the passphrase unlocks. `db_key` keys the SQLCipher database."""

    identity: Identity
    db_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.db_key) != DB_KEY_SIZE:
            raise CryptoError(f"the database key must be {DB_KEY_SIZE} bytes")

    @classmethod
    def generate(cls, *, rng: Callable[[int], bytes] = os.urandom) -> NodeSecrets:
        return cls(identity=Identity.generate(), db_key=rng(DB_KEY_SIZE))


def _unb64(text: object, size: int, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise KeyFileError(f"key file {path} is damaged: {what} is missing")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyFileError(f"key file {path} is damaged: {what} is not base64") from None
    if len(data) != size:
        raise KeyFileError(f"key file {path} is damaged: {what} has the wrong length")
    return data


def _header(node_id: str, n: int, salt: bytes, rotations: tuple[str, ...] = ()) -> dict[str, Any]:
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "node_id": node_id,
        "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "aead": AEAD_NAME,
    }
    if rotations:  # a node that rotated its keys: the chain linking its node ID to the keys inside (public)
        header["rotations"] = list(rotations)
    return header


def _encode(secrets: NodeSecrets, passphrase: str, scrypt_n: int, rng: Callable[[int], bytes]) -> bytes:
    secret = _passphrase_bytes(passphrase)
    _check_scrypt_n(scrypt_n)
    salt = rng(SALT_SIZE)
    nonce = rng(NONCE_SIZE)
    if len(salt) != SALT_SIZE or len(nonce) != NONCE_SIZE:
        raise CryptoError("the random source returned the wrong number of bytes")
    header = _header(secrets.identity.node_id, scrypt_n, salt, secrets.identity.rotations)
    key = _derive_key(secret, salt, scrypt_n)
    plaintext = secrets.identity.secret_bytes() + secrets.db_key
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, plaintext, _canonical_json(header))
    document = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write a temp file beside the target, fsync, then rename over: a crash leaves old or new, never half."""
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp already creates the file 0600; chmod again in case the umask or platform differs.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def create_keyfile(
    path: Path,
    secrets: NodeSecrets,
    passphrase: str,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    rng: Callable[[int], bytes] = os.urandom,
) -> None:
    """Refuses to overwrite: replacing a key file silently would lose the node's identity for good."""
    path = Path(path)
    _passphrase_bytes(passphrase)
    if path.exists():
        raise KeyFileError(f"key file {path} already exists; it will not be overwritten")
    content = _encode(secrets, passphrase, scrypt_n, rng)
    try:
        _write_atomically(path, content)
    except OSError as exc:
        raise KeyFileError(f"could not write key file {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class _ParsedKeyFile:
    header: dict[str, Any]
    node_id: str
    n: int
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    rotations: tuple[str, ...] = ()


def _read(path: Path) -> _ParsedKeyFile:
    """Parse and validate everything but the ciphertext, before any expensive or secret work."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found") from None
    except OSError as exc:
        raise KeyFileError(f"could not read key file {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_FILE_SIZE:
        raise KeyFileError(f"key file {path} is too large to be a key file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise KeyFileError(f"key file {path} is damaged: not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{path} is not a SEAJust key file")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise KeyFileError(f"key file {path} has version {version!r}, which this SEAJust Node cannot read")
    if doc.get("aead") != AEAD_NAME:
        raise KeyFileError(f"key file {path} uses an unsupported cipher")
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or set(kdf) != {"name", "n", "r", "p", "salt"} or kdf["name"] != "scrypt":
        raise KeyFileError(f"key file {path} uses an unsupported key derivation")
    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    if not all(type(x) is int for x in (n, r, p)) or (r, p) != (SCRYPT_R, SCRYPT_P):
        raise KeyFileError(f"key file {path} uses unsupported scrypt parameters")
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0):
        raise KeyFileError(f"key file {path} asks for scrypt n={n}, outside the accepted range")
    salt = _unb64(kdf["salt"], SALT_SIZE, "salt", path)
    nonce = _unb64(doc.get("nonce"), NONCE_SIZE, "nonce", path)
    ciphertext = _unb64(doc.get("ciphertext"), _PLAINTEXT_SIZE + _TAG_SIZE, "ciphertext", path)
    node_id = doc.get("node_id")
    try:
        if not isinstance(node_id, str) or parse_node_id(node_id) != node_id:
            raise NodeIdError()
    except NodeIdError:
        raise KeyFileError(f"key file {path} is damaged: its node ID is not valid") from None
    header = {k: doc[k] for k in ("format", "version", "node_id", "kdf", "aead")}
    rotations = doc.get("rotations", [])
    if (
        not isinstance(rotations, list)
        or not all(isinstance(r, str) for r in rotations)
        or ("rotations" in doc and not rotations)
    ):
        raise KeyFileError(f"key file {path} is damaged: its key rotations are not valid")
    if rotations:
        header["rotations"] = rotations
    return _ParsedKeyFile(header, node_id, n, salt, nonce, ciphertext, tuple(rotations))


def load_keyfile(path: Path, passphrase: str) -> NodeSecrets:
    """A wrong passphrase and a tampered file look the same to the cipher; both raise `WrongPassphrase`
    unless the damage is visible in the plaintext header."""
    path = Path(path)
    parsed = _read(path)
    try:
        secret = _passphrase_bytes(passphrase)
    except CryptoError:
        raise WrongPassphrase() from None  # `create_keyfile` never accepts such a passphrase
    key = _derive_key(secret, parsed.salt, parsed.n)
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(parsed.nonce, parsed.ciphertext, _canonical_json(parsed.header))
    except InvalidTag:
        raise WrongPassphrase() from None
    if parsed.rotations:
        try:
            chain = verify_chain(parsed.node_id, parsed.rotations)
        except RotationInvalid:
            raise KeyFileError(f"key file {path} is damaged: its key rotations do not verify") from None
        identity = Identity.from_secret_bytes(
            plaintext[:SECRET_SIZE], node_id=parsed.node_id, rotations=parsed.rotations
        )
        current = (identity.public.sign_key, identity.public.kx_key)
        if current != (chain[-1].sign, chain[-1].kx):
            raise KeyFileError(f"key file {path} is damaged: its keys are not the ones its last rotation names")
    else:
        identity = Identity.from_secret_bytes(plaintext[:SECRET_SIZE])
        if identity.node_id != parsed.node_id:
            raise KeyFileError(f"key file {path} is damaged: its keys do not match its node ID")
    return NodeSecrets(identity=identity, db_key=plaintext[SECRET_SIZE:])


def replace_identity(path: Path, passphrase: str, identity: Identity) -> None:
    """Seal `identity` (a rotation of the node's keys, same node ID) in place of the current one, same passphrase.

    The old private keys are gone from the file afterwards: that is the point of rotating them.
    """
    path = Path(path)
    secrets = load_keyfile(path, passphrase)
    if identity.node_id != secrets.identity.node_id:
        raise KeyFileError("a key rotation keeps the node ID")
    content = _encode(NodeSecrets(identity=identity, db_key=secrets.db_key), passphrase, _read(path).n, os.urandom)
    try:
        _write_atomically(path, content)
    except OSError as exc:
        raise KeyFileError(f"could not write key file {path}: {exc.strerror or exc}") from None


def read_public_node_id(path: Path) -> str:
    """The ID is in the clear so `seajust` can say which node a home belongs to before unlocking it.
    It is only a claim until `load_keyfile` checks it against the decrypted keys."""
    return _read(Path(path)).node_id


def change_passphrase(path: Path, old: str, new: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
    """Re-encrypts under a fresh salt and nonce; the keys, and so the node ID, stay the same."""
    path = Path(path)
    _passphrase_bytes(new)
    _check_scrypt_n(scrypt_n)
    secrets = load_keyfile(path, old)
    content = _encode(secrets, new, scrypt_n, os.urandom)
    try:
        _write_atomically(path, content)
    except OSError as exc:
        raise KeyFileError(f"could not write key file {path}: {exc.strerror or exc}") from None
