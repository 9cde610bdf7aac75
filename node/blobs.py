"""Case attachments as files: opaque ciphertext, named by the SHA-256 of its bytes.

Attachments (PDFs, scans, office documents, often tens of megabytes) are encrypted with the
case's key before they get here, so the store never sees plaintext and needs no key of its own.
They live as files rather than in the SQLite database so a 25 MB scan never passes through the
one write connection, and so a peer can be sent one straight from disk (`sync.blob_transport`).

Naming a blob by its hash makes storing idempotent and every copy self-checking: whatever a
peer sends, `put_verified` and `import_file` keep it only if it hashes to the ID that was asked
for. Files are fanned out by the first two hex digits (`ab/abcdef...`) so no directory grows
to hundreds of thousands of entries. A write becomes visible only complete and on disk: it goes
to a temporary file under `tmp/`, is fsynced, renamed into place, and the directory fsynced.

IDs are checked against exactly 64 lowercase hex digits before any path is built, so a
hostile ID ("../node.db", an absolute path, an uppercase alias) never reaches the filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Final

from node.errors import NodeError
from sync.blob_transfer import is_blob_id

TMP_DIR: Final = "tmp"
TMP_SUFFIX: Final = ".part"
STALE_TMP_AGE: Final = 24 * 3600.0  # seconds; older temp files are leftovers of a crash
_CHUNK: Final = 1024 * 1024


class BlobError(NodeError):
    """The attachment store could not do that."""

    http_status = 422


class BlobMissing(BlobError):
    """This node does not hold that attachment (yet): it may still be on its way from another node."""

    http_status = 404


class BlobMismatch(BlobError):
    """The attachment received is not the one asked for (its fingerprint differs), so it was discarded."""

    http_status = 422


def blob_id(data: bytes) -> str:
    """The ID of a blob: lowercase hex SHA-256 of its (already encrypted) bytes."""
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    # Makes a rename or new file durable; only POSIX can open a directory for this.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Content-addressed files under one directory (the node passes `HOME/blobs`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / TMP_DIR
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._sweep_stale_temp_files()

    # -- writing ----------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store `data` and return its ID; storing the same bytes again changes nothing."""
        ident = blob_id(data)
        if self.has(ident):
            return ident
        tmp = self.temp_path()
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            self._move_into_place(tmp, ident)
        finally:
            tmp.unlink(missing_ok=True)
        return ident

    def put_verified(self, expected_id: str, data: bytes) -> None:
        """Store `data` only if it is the blob `expected_id` names; otherwise `BlobMismatch`, nothing written."""
        if not is_blob_id(expected_id) or blob_id(data) != expected_id:
            raise BlobMismatch()
        self.put(data)

    def import_file(self, expected_id: str, path: Path) -> None:
        """Move the file at `path` (a finished download) into the store if it hashes to `expected_id`.

        The file is consumed either way: moved into place, or deleted with `BlobMismatch`. It is
        hashed by streaming, so a large attachment is never held in memory.
        """
        try:
            with path.open("rb") as f:
                digest = hashlib.sha256()
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                if not is_blob_id(expected_id) or digest.hexdigest() != expected_id:
                    raise BlobMismatch()
                if self.has(expected_id):
                    return
                os.fsync(f.fileno())
            try:
                self._move_into_place(path, expected_id)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # On another filesystem: copy into our temp directory, which can be renamed, and check the copy.
                self._import_copy(expected_id, path)
        finally:
            path.unlink(missing_ok=True)

    def delete(self, blob_id: str) -> None:
        """Remove the blob if it is here; removing an absent blob is not an error."""
        self._file(blob_id).unlink(missing_ok=True)

    def temp_path(self) -> Path:
        """A new, empty file under `tmp/` (same filesystem as the blobs, so it can be renamed into place)."""
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=TMP_SUFFIX)
        os.close(fd)
        return Path(name)

    # -- reading ----------------------------------------------------------------------

    def has(self, blob_id: str) -> bool:
        return is_blob_id(blob_id) and self._file(blob_id).is_file()

    def read(self, blob_id: str) -> bytes:
        try:
            return self._file(blob_id).read_bytes()
        except FileNotFoundError:
            raise BlobMissing() from None

    def path(self, blob_id: str) -> Path:
        """Where the blob is on disk, for streaming it out; `BlobMissing` if it is not here."""
        path = self._file(blob_id)
        if not path.is_file():
            raise BlobMissing()
        return path

    def size(self, blob_id: str) -> int:
        try:
            return self._file(blob_id).stat().st_size
        except FileNotFoundError:
            raise BlobMissing() from None

    def ids(self) -> list[str]:
        found: list[str] = []
        for fan in self.root.iterdir():
            if len(fan.name) != 2 or not fan.is_dir():
                continue
            found.extend(p.name for p in fan.iterdir() if is_blob_id(p.name) and p.name[:2] == fan.name)
        return sorted(found)

    # -- internals --------------------------------------------------------------------

    def _file(self, blob_id: str) -> Path:
        """The only place a path is built from an ID, after the ID is checked."""
        if not is_blob_id(blob_id):
            raise BlobMissing()
        return self.root / blob_id[:2] / blob_id

    def _move_into_place(self, tmp: Path, blob_id: str) -> None:
        dest = self._file(blob_id)
        fan = dest.parent
        if not fan.is_dir():
            fan.mkdir(exist_ok=True)
            _fsync_dir(self.root)
        os.replace(tmp, dest)
        _fsync_dir(fan)

    def _import_copy(self, expected_id: str, source: Path) -> None:
        copy = self.temp_path()
        with source.open("rb") as src, copy.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        self.import_file(expected_id, copy)

    def _sweep_stale_temp_files(self) -> None:
        cutoff = time.time() - STALE_TMP_AGE
        for leftover in self._tmp.glob("*" + TMP_SUFFIX):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
