"""A file sealed under a passphrase, written and read as a stream of authenticated chunks.

A backup holds the node's database and every attachment file, so it can be far larger than
memory: it is cut into chunks of `CHUNK_SIZE` bytes, each sealed with ChaCha20-Poly1305 under
a key derived from the passphrase (scrypt, fresh salt per file, so nonces never repeat across
files). A chunk's nonce is its index plus a flag marking the last chunk, and every chunk is
bound to the plaintext header as associated data, so a chunk moved, dropped, repeated, cut off
or followed by anything is refused, and no header field can be changed unnoticed.

Layout: one line of JSON (the header: format, version, KDF parameters, a passphrase check and
whatever the caller adds, such as the node ID), then chunks, each a 4-byte big-endian length
followed by that many bytes of ciphertext. The header's `check` is the tag of an empty message
under a nonce no chunk uses: a wrong passphrase is told apart from a damaged file before any
chunk is read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from collections.abc import Callable
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto.errors import CryptoError, WrongPassphrase
from crypto.passphrase import (
    DEFAULT_SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    b64,
    canonical_json,
    check_scrypt_n,
    derive_key,
    passphrase_bytes,
    scrypt_n_ok,
)

AEAD_NAME = "chacha20poly1305"
CHUNK_SIZE = 1024 * 1024
SALT_SIZE = 16
TAG_SIZE = 16
MAX_HEADER = 16 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
_LENGTH = struct.Struct(">I")
_MIDDLE, _LAST, _CHECK = 0, 1, 2
_RESERVED = ("format", "version", "kdf", "aead", "chunk_size", "check")


class SealedFileError(CryptoError):
    """The file is damaged or was altered: it cannot be opened."""


def _nonce(kind: int, index: int) -> bytes:
    return bytes([kind, 0, 0, 0]) + index.to_bytes(8, "big")


class SealedWriter:
    """Seals what is written to it onto `out`; `close()` seals the last chunk (without it the file is refused)."""

    def __init__(
        self,
        out: IO[bytes],
        passphrase: str,
        *,
        format_name: str,
        version: int,
        fields: dict[str, Any],
        scrypt_n: int = DEFAULT_SCRYPT_N,
        chunk_size: int = CHUNK_SIZE,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        secret = passphrase_bytes(passphrase)
        check_scrypt_n(scrypt_n)
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise CryptoError("the chunk size is out of range")
        if set(fields) & set(_RESERVED):
            raise CryptoError("header fields may not replace the format's own")
        salt = rng(SALT_SIZE)
        if len(salt) != SALT_SIZE:
            raise CryptoError("the random source returned the wrong number of bytes")
        header: dict[str, Any] = {
            **fields,
            "format": format_name,
            "version": version,
            "kdf": {"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": b64(salt)},
            "aead": AEAD_NAME,
            "chunk_size": chunk_size,
        }
        self._aad = canonical_json(header)
        self._aead = ChaCha20Poly1305(derive_key(secret, salt, scrypt_n))
        header["check"] = b64(self._aead.encrypt(_nonce(_CHECK, 0), b"", self._aad))
        line = json.dumps(header, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\n"
        if len(line) > MAX_HEADER:
            raise CryptoError("the header is too large")
        self._out = out
        self._out.write(line)
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._index = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed sealed file")
        self._buffer += data
        while len(self._buffer) > self._chunk_size:  # keep at least one byte back: the last chunk is never empty
            self._seal(bytes(self._buffer[: self._chunk_size]), _MIDDLE)
            del self._buffer[: self._chunk_size]
        return len(data)

    def close(self) -> None:
        if not self._closed:
            self._seal(bytes(self._buffer), _LAST)
            self._buffer.clear()
            self._closed = True

    def _seal(self, plain: bytes, kind: int) -> None:
        sealed = self._aead.encrypt(_nonce(kind, self._index), plain, self._aad)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._index += 1


def read_header(source: IO[bytes], *, format_name: str, version: int) -> dict[str, Any]:
    """The plaintext header (what the file says it is), checked for shape only: nothing in it is proven
    until the passphrase opens the file."""
    line = source.readline(MAX_HEADER + 1)
    if not line.endswith(b"\n") or len(line) > MAX_HEADER:
        raise SealedFileError(f"this is not a {format_name} file")
    try:
        header = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        raise SealedFileError(f"this is not a {format_name} file") from None
    if not isinstance(header, dict) or header.get("format") != format_name:
        raise SealedFileError(f"this is not a {format_name} file")
    if type(header.get("version")) is not int or header["version"] != version:
        raise SealedFileError(
            f"this {format_name} file has version {header.get('version')!r}, which this program cannot read"
        )
    kdf = header.get("kdf")
    if (
        header.get("aead") != AEAD_NAME
        or not isinstance(kdf, dict)
        or set(kdf) != {"name", "n", "r", "p", "salt"}
        or kdf["name"] != "scrypt"
        or (kdf["r"], kdf["p"]) != (SCRYPT_R, SCRYPT_P)
        or not scrypt_n_ok(kdf["n"])
    ):
        raise SealedFileError(f"this {format_name} file uses unsupported encryption parameters")
    chunk_size = header.get("chunk_size")
    if type(chunk_size) is not int or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise SealedFileError(f"this {format_name} file is damaged: its chunk size is not valid")
    _unb64(kdf["salt"], SALT_SIZE)
    _unb64(header.get("check"), TAG_SIZE)
    return header


def _unb64(text: object, size: int) -> bytes:
    try:
        if not isinstance(text, str):
            raise ValueError
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SealedFileError("the file is damaged: its header is not valid") from None
    if len(data) != size:
        raise SealedFileError("the file is damaged: its header is not valid")
    return data


class SealedReader:
    """Reads back what `SealedWriter` sealed, chunk by chunk; raises `SealedFileError` at the first chunk that
    does not open and, at the end, if the last chunk is missing or anything follows it."""

    def __init__(self, source: IO[bytes], passphrase: str, *, format_name: str, version: int) -> None:
        self.header = read_header(source, format_name=format_name, version=version)
        try:
            secret = passphrase_bytes(passphrase)
        except CryptoError:
            raise WrongPassphrase() from None
        kdf = self.header["kdf"]
        fields = {k: v for k, v in self.header.items() if k != "check"}
        self._aad = canonical_json(fields)
        self._aead = ChaCha20Poly1305(derive_key(secret, _unb64(kdf["salt"], SALT_SIZE), kdf["n"]))
        try:
            self._aead.decrypt(_nonce(_CHECK, 0), _unb64(self.header["check"], TAG_SIZE), self._aad)
        except InvalidTag:
            raise WrongPassphrase("the passphrase does not open this file (or its header was altered)") from None
        self._source = source
        self._max_sealed = self.header["chunk_size"] + TAG_SIZE
        self._buffer = bytearray()
        self._index = 0
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            self._next_chunk()
        if size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def finish(self) -> None:
        """Read to the end, so a cut-off or extended file is refused even if the reader stopped early."""
        while not self._ended:
            self._next_chunk()
            self._buffer.clear()

    def _next_chunk(self) -> None:
        raw = self._source.read(_LENGTH.size)
        if len(raw) < _LENGTH.size:
            raise SealedFileError("the file is incomplete: it was cut off")
        (length,) = _LENGTH.unpack(raw)
        if not TAG_SIZE <= length <= self._max_sealed:
            raise SealedFileError("the file is damaged: a chunk has an impossible length")
        sealed = self._source.read(length)
        if len(sealed) < length:
            raise SealedFileError("the file is incomplete: it was cut off")
        for kind in (_MIDDLE, _LAST):
            try:
                plain = self._aead.decrypt(_nonce(kind, self._index), sealed, self._aad)
            except InvalidTag:
                continue
            self._index += 1
            self._buffer += plain
            if kind == _LAST:
                if self._source.read(1):
                    raise SealedFileError("the file is damaged: something follows its last chunk")
                self._ended = True
            return
        raise SealedFileError(f"the file is damaged or was altered (chunk {self._index} does not verify)")
