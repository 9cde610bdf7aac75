"""Keys derived from an operator's passphrase, shared by the key file and the backup archive.

Both seal secrets under the same passphrase, so they must agree on how it is encoded and
stretched (scrypt, r=8, p=1) and on the bounds a file may ask for: one place keeps a crafted
file of either kind from making unlocking cost gigabytes of memory.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crypto.errors import CryptoError

SCRYPT_R = 8
SCRYPT_P = 1
DEFAULT_SCRYPT_N = 2**15
# A crafted file asking for more would make unlocking take gigabytes of memory.
MAX_SCRYPT_N = 2**20


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def canonical_json(value: object) -> bytes:
    """The bytes a header is bound to as associated data: one spelling for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def derive_key(passphrase: bytes, salt: bytes, n: int) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=n, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase)


def passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise CryptoError("the passphrase must not be empty")
    try:
        return passphrase.encode("utf-8")
    except UnicodeEncodeError:
        raise CryptoError("the passphrase contains characters that cannot be encoded") from None


def scrypt_n_ok(n: object) -> bool:
    return type(n) is int and 2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0


def check_scrypt_n(n: int) -> None:
    if not scrypt_n_ok(n):
        raise CryptoError(f"scrypt n must be a power of two between 2 and {MAX_SCRYPT_N}")


def fsync_directory(directory: Path) -> None:
    """Make a rename itself durable (POSIX); platforms without directory handles skip this."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
