"""Backing up a node home while it runs, and bringing it back on another machine.

A backup is one file sealed under the node's passphrase (`crypto.sealed_file`): a tar of the
settings, the key file, a consistent copy of the database (SQLite's online backup, so the
running node need not stop) and the attachment files. Restoring writes a new home and marks it
as catching up (`node.catch_up`): the restored node takes its own later updates back from its
peers before it makes any change, so no sequence number is used twice.

Nothing in the archive is trusted until the passphrase opens it, and even then each member is
checked by name and type before it is written: a crafted archive cannot write outside the new
home. A restore that fails leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from crypto.errors import WrongPassphrase
from crypto.keystore import load_keyfile
from crypto.passphrase import fsync_directory
from crypto.sealed_file import SealedReader, SealedWriter, read_header
from node.blobs import BlobStore
from node.catch_up import MARKER_NAME, mark
from node.config import CONFIG_NAME, NodeHome
from node.documents import utc_now
from node.errors import HomeExists, NodeError
from node.storage import DB_NAME, Database, backup_database
from sync.blob_transfer import is_blob_id

FORMAT = "seajust-backup"
VERSION = 1
MANIFEST = "backup.json"
KEYFILE = "keys.json"
BLOBS = "blobs"
_FILES = (MANIFEST, CONFIG_NAME, KEYFILE, DB_NAME)
_MAX_SMALL = 1024 * 1024  # the manifest, settings and key file are a few kB


class BackupError(NodeError):
    """The backup could not be written or read."""


@dataclass(frozen=True)
class BackupSummary:
    node_id: str
    created_at: str
    blobs: int
    size: int


@dataclass(frozen=True)
class RestoreSummary:
    node_id: str
    created_at: str
    blobs: int
    missing_blobs: int
    catching_up: bool


def create_backup(home_path: Path, target: Path, passphrase: str) -> BackupSummary:
    """Write a sealed backup of the node in `home_path` to `target` (atomically, mode 0600)."""
    home = NodeHome(home_path)
    home.require()
    secrets = load_keyfile(home.keyfile, passphrase)  # before anything is written: a wrong passphrase stops here
    node_id = secrets.identity.node_id
    target = Path(target)
    if not target.parent.is_dir():
        raise BackupError(f"cannot write the backup: folder {target.parent} does not exist")
    if target.exists() and target.is_dir():
        raise BackupError(f"{target} is a folder; give a file name for the backup")
    try:
        if target.resolve().is_relative_to(home.path.resolve()):
            raise BackupError("write the backup outside the node home, preferably on another disk")
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {target}: {exc.strerror or exc}") from None
    created_at = utc_now()
    try:
        with _workspace(target.parent) as work, _atomic(target) as out:
            schema = backup_database(home.database, secrets.db_key, work / DB_NAME)
            # Listed after the snapshot: every file the database copy names was stored before it (a file is
            # on disk before its case records it), so all of them are here; later ones are harmless extras.
            blobs = _blob_ids(home.path / BLOBS)
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "node_id": node_id,
                "created_at": created_at,
                "schema_version": schema,
                "blobs": len(blobs),
            }
            writer = SealedWriter(
                out,
                passphrase,
                format_name=FORMAT,
                version=VERSION,
                fields={"node_id": node_id, "created_at": created_at},
            )
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
                _add_file(tar, CONFIG_NAME, home.config_path)
                _add_file(tar, KEYFILE, home.keyfile)
                _add_file(tar, DB_NAME, work / DB_NAME)
                for blob_id in blobs:
                    with contextlib.suppress(FileNotFoundError):  # shredded meanwhile: not needed any more
                        _add_file(tar, f"{BLOBS}/{blob_id[:2]}/{blob_id}", home.path / BLOBS / blob_id[:2] / blob_id)
            writer.close()
    except OSError as exc:
        raise BackupError(f"could not write the backup {target}: {exc.strerror or exc}") from None
    return BackupSummary(node_id, created_at, len(blobs), target.stat().st_size)


def restore_backup(archive: Path, home_path: Path, passphrase: str, *, catch_up: bool = True) -> RestoreSummary:
    """Write a new node home from a backup, check that it opens, and (by default) mark it as catching up."""
    from node.runtime import open_node  # the runtime imports much; only a restore needs it

    home = NodeHome(Path(home_path))
    home.require_new()
    if home.path.exists() and (not home.path.is_dir() or any(home.path.iterdir())):
        raise HomeExists(f"{home.path} exists and is not empty; restore into a new folder")
    try:
        source = open(archive, "rb")  # noqa: SIM115 - closed below, after the staging folder is handled
    except OSError as exc:
        raise BackupError(f"cannot read the backup {archive}: {exc.strerror or exc}") from None
    try:
        reader = SealedReader(source, passphrase, format_name=FORMAT, version=VERSION)
        node_id, created_at = reader.header.get("node_id"), reader.header.get("created_at")
        if not isinstance(node_id, str) or not isinstance(created_at, str):
            raise BackupError("the backup is damaged: its header does not name a node")
        try:
            home.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot create {home.path.parent}: {exc.strerror or exc}") from None
        staging = Path(tempfile.mkdtemp(prefix=f".{home.path.name}.restore-", dir=home.path.parent))
        try:
            manifest, blobs = _extract(reader, staging)
            reader.finish()
            if manifest.get("node_id") != node_id:
                raise BackupError("the backup is damaged: its parts name different nodes")
            try:
                secrets = load_keyfile(staging / KEYFILE, passphrase)
            except WrongPassphrase:
                raise BackupError("the key file in the backup does not open with the backup's passphrase") from None
            if secrets.identity.node_id != node_id:
                raise BackupError("the backup is damaged: its key file belongs to another node")
            if catch_up:
                mark(staging, backup_created_at=created_at)
            node = open_node(staging, passphrase)  # checks everything opens; migrations bring an old copy up to date
            try:
                missing = _forget_missing_blobs(node.db, node.blobs)
            finally:
                node.close()
            caught_up = not (staging / MARKER_NAME).exists()  # a node without peers has nothing to catch up
            os.chmod(staging, 0o700)
            with contextlib.suppress(FileNotFoundError):
                home.path.rmdir()  # an empty folder given as HOME
            os.rename(staging, home.path)
            fsync_directory(home.path.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"the backup is damaged: {exc}") from None
    except OSError as exc:
        raise BackupError(f"could not restore into {home.path}: {exc.strerror or exc}") from None
    finally:
        source.close()
    return RestoreSummary(node_id, created_at, blobs, missing, catch_up and not caught_up)


def read_backup_header(archive: Path) -> dict[str, Any]:
    """What a backup says it is (node ID, date), without the passphrase: unproven until it is opened."""
    try:
        with open(archive, "rb") as source:
            return read_header(source, format_name=FORMAT, version=VERSION)
    except OSError as exc:
        raise BackupError(f"cannot read the backup {archive}: {exc.strerror or exc}") from None


# -- writing ------------------------------------------------------------------------------


@contextlib.contextmanager
def _workspace(parent: Path) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix=".seajust-backup-", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[IO[bytes]]:
    """A temp file beside the target, renamed over it only once complete and on disk."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_directory(target.parent)


def _blob_ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return BlobStore(root).ids()


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = 0  # nothing about the node's files but their content leaves in the archive
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        tar.addfile(_info(name, size), handle)


# -- reading ------------------------------------------------------------------------------


def _extract(reader: SealedReader, staging: Path) -> tuple[dict[str, Any], int]:
    """Write the archive's members into `staging`, refusing anything that is not a part of a node home."""
    seen: set[str] = set()
    manifest: dict[str, Any] = {}
    blobs = 0
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = member.name
            if not member.isreg() or name in seen or not _allowed(name):
                raise BackupError(f"the backup holds something that is not part of a node home: {name[:80]!r}")
            if name in (MANIFEST, CONFIG_NAME, KEYFILE) and member.size > _MAX_SMALL:
                raise BackupError(f"the backup is damaged: {name} is too large")
            seen.add(name)
            source = tar.extractfile(member)
            assert source is not None  # a regular file
            path = staging.joinpath(*name.split("/"))
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            if name == MANIFEST:
                try:
                    manifest = json.loads(path.read_text(encoding="utf-8"))
                except ValueError:
                    raise BackupError("the backup is damaged: its manifest is not JSON") from None
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise BackupError("the backup is damaged: its manifest is not valid")
            elif name.startswith(BLOBS + "/"):
                blobs += 1
    absent = [n for n in _FILES if n not in seen]
    if absent:
        raise BackupError(f"the backup is incomplete: {', '.join(absent)} missing")
    return manifest, blobs


def _allowed(name: str) -> bool:
    if name in _FILES:
        return True
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == BLOBS and is_blob_id(parts[2]) and parts[1] == parts[2][:2]


def _forget_missing_blobs(db: Database, blobs: BlobStore) -> int:
    """Files the database says are here but the backup lacks are marked missing, so they are fetched again."""
    missing = 0
    for row in db.query("SELECT DISTINCT blob_id FROM case_attachments WHERE have = 1"):
        if not blobs.has(row["blob_id"]):
            missing += 1
            with db.write() as conn:
                conn.execute("UPDATE case_attachments SET have = 0 WHERE blob_id = ?", (row["blob_id"],))
    return missing
