"""The key file opens only with the right passphrase and only if no byte of it was changed."""

import base64
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.errors import CryptoError, KeyFileError, WrongPassphrase
from crypto.identity import Identity
from crypto.keystore import (
    KEYFILE_NAME,
    NodeSecrets,
    change_passphrase,
    create_keyfile,
    load_keyfile,
    read_public_node_id,
)

FAST_N = 2**10
PASSPHRASE = "correct horse battery staple"
SECRETS = NodeSecrets(identity=Identity.from_secret_bytes(bytes(range(64))), db_key=bytes(range(100, 132)))


def counter_rng() -> Callable[[int], bytes]:
    state = {"next": 0}

    def rng(size: int) -> bytes:
        start = state["next"]
        state["next"] += size
        return bytes((start + i) % 256 for i in range(size))

    return rng


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / KEYFILE_NAME
    create_keyfile(path, SECRETS, PASSPHRASE, scrypt_n=FAST_N)
    return path


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def same(a: NodeSecrets, b: NodeSecrets) -> bool:
    return a.identity.secret_bytes() == b.identity.secret_bytes() and a.db_key == b.db_key


def test_round_trip(keyfile: Path) -> None:
    loaded = load_keyfile(keyfile, PASSPHRASE)
    assert same(loaded, SECRETS)
    assert read_public_node_id(keyfile) == SECRETS.identity.node_id


def test_file_follows_the_spec(tmp_path: Path) -> None:
    """Decrypt with the library directly, from the documented format alone."""
    path = tmp_path / "k.json"
    create_keyfile(path, SECRETS, PASSPHRASE, scrypt_n=FAST_N, rng=counter_rng())
    doc = json.loads(path.read_text())
    assert set(doc) == {"format", "version", "node_id", "kdf", "aead", "nonce", "ciphertext"}
    assert (doc["format"], doc["version"], doc["aead"]) == ("seajust-keys", 1, "chacha20poly1305")
    assert doc["node_id"] == SECRETS.identity.node_id
    assert doc["kdf"] == {
        "name": "scrypt",
        "n": FAST_N,
        "r": 8,
        "p": 1,
        "salt": base64.b64encode(bytes(range(16))).decode(),
    }
    assert base64.b64decode(doc["nonce"]) == bytes(range(16, 28))
    header = {k: doc[k] for k in ("format", "version", "node_id", "kdf", "aead")}
    aad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    key = Scrypt(salt=bytes(range(16)), length=32, n=FAST_N, r=8, p=1).derive(PASSPHRASE.encode())
    plaintext = ChaCha20Poly1305(key).decrypt(bytes(range(16, 28)), base64.b64decode(doc["ciphertext"]), aad)
    assert plaintext == SECRETS.identity.secret_bytes() + SECRETS.db_key
    again = tmp_path / "k2.json"
    create_keyfile(again, SECRETS, PASSPHRASE, scrypt_n=FAST_N, rng=counter_rng())
    assert again.read_bytes() == path.read_bytes()  # pinned randomness, pinned file


def test_secrets_do_not_appear_in_the_file_or_repr(keyfile: Path) -> None:
    content = keyfile.read_bytes()
    for secret in (SECRETS.db_key, SECRETS.identity.secret_bytes(), PASSPHRASE.encode()):
        assert secret not in content
        assert base64.b64encode(secret) not in content
    assert SECRETS.db_key.hex() not in repr(SECRETS) and repr(SECRETS.db_key) not in repr(SECRETS)


def test_wrong_passphrase(keyfile: Path) -> None:
    with pytest.raises(WrongPassphrase) as caught:
        load_keyfile(keyfile, PASSPHRASE + "!")
    assert PASSPHRASE not in str(caught.value)
    with pytest.raises(WrongPassphrase):
        load_keyfile(keyfile, "")


def test_header_is_bound_to_the_ciphertext(keyfile: Path) -> None:
    """Another valid node ID would pass every plaintext check: only the associated data catches it."""
    other = Identity.generate().node_id
    edit(keyfile, lambda doc: doc.update(node_id=other))
    assert read_public_node_id(keyfile) == other
    with pytest.raises(WrongPassphrase):
        load_keyfile(keyfile, PASSPHRASE)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda doc: doc["kdf"].update(n=2 * FAST_N), WrongPassphrase),
        (lambda doc: doc["kdf"].update(salt=base64.b64encode(bytes(16)).decode()), WrongPassphrase),
        (lambda doc: doc.update(nonce=base64.b64encode(bytes(12)).decode()), WrongPassphrase),
        (lambda doc: doc["kdf"].update(n=2**21), KeyFileError),  # over the cap: refused before any work
        (lambda doc: doc["kdf"].update(n=1000), KeyFileError),
        (lambda doc: doc["kdf"].update(r=16), KeyFileError),
        (lambda doc: doc["kdf"].update(name="argon2"), KeyFileError),
        (lambda doc: doc.update(version=2), KeyFileError),
        (lambda doc: doc.update(version=True), KeyFileError),
        (lambda doc: doc.update(format="other"), KeyFileError),
        (lambda doc: doc.update(aead="aes-gcm"), KeyFileError),
        (lambda doc: doc.update(node_id="X5CX-01BG-H0XN-BZCS-3"), KeyFileError),  # bad check character
        (lambda doc: doc.update(nonce="not base64!"), KeyFileError),
        (lambda doc: doc.pop("ciphertext"), KeyFileError),
    ],
)
def test_tampered_header(keyfile: Path, change: Callable[[dict[str, Any]], None], error: type[Exception]) -> None:
    edit(keyfile, change)
    with pytest.raises(error):
        load_keyfile(keyfile, PASSPHRASE)


def test_tampered_ciphertext(keyfile: Path) -> None:
    def flip(doc: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(doc["ciphertext"]))
        raw[5] ^= 1
        doc["ciphertext"] = base64.b64encode(raw).decode()

    edit(keyfile, flip)
    with pytest.raises(WrongPassphrase):
        load_keyfile(keyfile, PASSPHRASE)


def test_keys_must_match_the_node_id(tmp_path: Path) -> None:
    """A file correctly encrypted but naming another node (a bug or a swapped file) is refused."""
    path = tmp_path / KEYFILE_NAME
    other_id = Identity.generate().node_id
    salt, nonce = bytes(16), bytes(12)
    header = {
        "format": "seajust-keys",
        "version": 1,
        "node_id": other_id,
        "kdf": {"name": "scrypt", "n": FAST_N, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode()},
        "aead": "chacha20poly1305",
    }
    key = Scrypt(salt=salt, length=32, n=FAST_N, r=8, p=1).derive(PASSPHRASE.encode())
    aad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, SECRETS.identity.secret_bytes() + SECRETS.db_key, aad)
    doc = {**header, "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ciphertext).decode()}
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="do not match"):
        load_keyfile(path, PASSPHRASE)


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"[]", b'{"format": "seajust-keys"}', b"\xff\xfe", b" " * 70_000]
)
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / KEYFILE_NAME
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=str(path).replace("\\", "\\\\")):
        load_keyfile(path, PASSPHRASE)
    with pytest.raises(KeyFileError):
        read_public_node_id(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / KEYFILE_NAME
    with pytest.raises(KeyFileError, match="not found"):
        load_keyfile(path, PASSPHRASE)
    with pytest.raises(KeyFileError):
        read_public_node_id(path)


def test_refuses_to_overwrite(keyfile: Path) -> None:
    before = keyfile.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        create_keyfile(keyfile, NodeSecrets.generate(), "another", scrypt_n=FAST_N)
    assert keyfile.read_bytes() == before


def test_refuses_empty_passphrase(tmp_path: Path) -> None:
    path = tmp_path / KEYFILE_NAME
    with pytest.raises(CryptoError, match="empty"):
        create_keyfile(path, SECRETS, "", scrypt_n=FAST_N)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_file_mode_and_no_leftovers(keyfile: Path) -> None:
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert os.listdir(keyfile.parent) == [KEYFILE_NAME]


def test_change_passphrase(keyfile: Path) -> None:
    before = json.loads(keyfile.read_text())
    change_passphrase(keyfile, PASSPHRASE, "new passphrase", scrypt_n=FAST_N)
    after = json.loads(keyfile.read_text())
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    assert after["node_id"] == before["node_id"]
    with pytest.raises(WrongPassphrase):
        load_keyfile(keyfile, PASSPHRASE)
    assert same(load_keyfile(keyfile, "new passphrase"), SECRETS)
    if sys.platform != "win32":
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert os.listdir(keyfile.parent) == [KEYFILE_NAME]


def test_change_passphrase_refusals_leave_the_file_alone(keyfile: Path) -> None:
    before = keyfile.read_bytes()
    with pytest.raises(WrongPassphrase):
        change_passphrase(keyfile, "wrong", "new passphrase", scrypt_n=FAST_N)
    with pytest.raises(CryptoError, match="empty"):
        change_passphrase(keyfile, PASSPHRASE, "", scrypt_n=FAST_N)
    assert keyfile.read_bytes() == before


def test_default_cost(tmp_path: Path) -> None:
    path = tmp_path / KEYFILE_NAME
    secrets = NodeSecrets.generate()
    create_keyfile(path, secrets, "pass phrase \N{THAI CHARACTER KO KAI}")
    assert json.loads(path.read_text())["kdf"]["n"] == 2**15
    assert same(load_keyfile(path, "pass phrase \N{THAI CHARACTER KO KAI}"), secrets)


def test_node_secrets_checks_db_key() -> None:
    assert len(NodeSecrets.generate().db_key) == 32
    assert NodeSecrets.generate(rng=lambda n: b"k" * n).db_key == b"k" * 32
    with pytest.raises(CryptoError):
        NodeSecrets(identity=SECRETS.identity, db_key=b"short")
