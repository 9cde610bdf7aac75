"""The blob store: content-addressed files, written atomically, never reachable through a hostile ID."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import node.blobs
from node.blobs import BlobMismatch, BlobMissing, BlobStore, blob_id

DATA = b"%PDF-1.7 pretend ciphertext \x00\xff" * 1000
DATA_ID = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def temp_files(store: BlobStore) -> list[Path]:
    return sorted((store.root / "tmp").iterdir())


def test_blob_id_is_lowercase_hex_sha256() -> None:
    assert blob_id(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert blob_id(DATA) == DATA_ID


def test_put_then_read_back(store: BlobStore) -> None:
    assert store.put(DATA) == DATA_ID
    assert store.has(DATA_ID)
    assert store.read(DATA_ID) == DATA
    assert store.size(DATA_ID) == len(DATA)
    assert store.path(DATA_ID) == store.root / DATA_ID[:2] / DATA_ID
    assert store.path(DATA_ID).read_bytes() == DATA
    assert store.ids() == [DATA_ID]
    assert temp_files(store) == []


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(DATA)
    mtime = store.path(first).stat().st_mtime_ns
    assert store.put(DATA) == first
    assert store.path(first).stat().st_mtime_ns == mtime  # not rewritten
    assert store.ids() == [first]


def test_empty_blob(store: BlobStore) -> None:
    ident = store.put(b"")
    assert store.read(ident) == b""
    assert store.size(ident) == 0


def test_ids_lists_every_blob_sorted_and_nothing_else(store: BlobStore) -> None:
    made = sorted(store.put(bytes([i]) * 10) for i in range(20))
    (store.root / "ab").mkdir(exist_ok=True)
    (store.root / "ab" / "not-a-blob").write_bytes(b"x")
    store.temp_path()
    assert store.ids() == made


def test_store_survives_reopening(tmp_path: Path) -> None:
    ident = BlobStore(tmp_path / "b").put(DATA)
    assert BlobStore(tmp_path / "b").read(ident) == DATA


def test_put_writes_through_a_fsynced_temp_file_then_renames(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[tuple[Path, Path]] = []
    synced: list[int] = []
    real_replace, real_fsync = os.replace, os.fsync

    def record_replace(src: Path, dst: Path) -> None:
        assert Path(src).parent == store.root / "tmp"
        assert Path(src).read_bytes() == DATA  # complete before it becomes visible
        assert synced, "temp file renamed before fsync"
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    def record_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", record_replace)
    monkeypatch.setattr(os, "fsync", record_fsync)
    store.put(DATA)
    assert [dst for _, dst in replaced] == [store.root / DATA_ID[:2] / DATA_ID]
    assert len(synced) >= 3  # the file, the new fan-out directory's parent, and the fan-out directory
    assert temp_files(store) == []


def test_a_failed_put_leaves_no_blob_and_no_temp_file(store: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: Path, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.put(DATA)
    assert not store.has(DATA_ID)
    assert store.ids() == []
    assert temp_files(store) == []


def test_put_verified_keeps_matching_bytes(store: BlobStore) -> None:
    store.put_verified(DATA_ID, DATA)
    assert store.read(DATA_ID) == DATA


def test_put_verified_refuses_other_bytes_and_writes_nothing(store: BlobStore) -> None:
    with pytest.raises(BlobMismatch) as info:
        store.put_verified(DATA_ID, DATA + b"!")
    assert info.value.http_status == 422
    assert store.ids() == []
    assert temp_files(store) == []
    with pytest.raises(BlobMismatch):
        store.put_verified("../" + DATA_ID[3:], DATA)


def test_import_file_moves_a_matching_download_into_place(store: BlobStore) -> None:
    tmp = store.temp_path()
    tmp.write_bytes(DATA)
    store.import_file(DATA_ID, tmp)
    assert store.read(DATA_ID) == DATA
    assert not tmp.exists()
    assert temp_files(store) == []


def test_import_file_of_a_blob_already_held_just_drops_the_download(store: BlobStore) -> None:
    store.put(DATA)
    tmp = store.temp_path()
    tmp.write_bytes(DATA)
    store.import_file(DATA_ID, tmp)
    assert store.ids() == [DATA_ID]
    assert temp_files(store) == []


def test_import_file_refuses_tampered_bytes_and_removes_the_download(store: BlobStore) -> None:
    tmp = store.temp_path()
    tmp.write_bytes(DATA[:-1] + b"\x01")
    with pytest.raises(BlobMismatch):
        store.import_file(DATA_ID, tmp)
    assert not tmp.exists()
    assert store.ids() == []
    assert temp_files(store) == []


def test_import_file_from_another_directory(store: BlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "download.bin"
    outside.write_bytes(DATA)
    store.import_file(DATA_ID, outside)
    assert store.read(DATA_ID) == DATA
    assert not outside.exists()


def test_missing_blob(store: BlobStore) -> None:
    absent = blob_id(b"never stored")
    assert not store.has(absent)
    for lookup in (store.read, store.path, store.size):
        with pytest.raises(BlobMissing) as info:
            lookup(absent)
        assert info.value.http_status == 404
    store.delete(absent)  # absent is fine


def test_delete(store: BlobStore) -> None:
    ident = store.put(DATA)
    store.delete(ident)
    assert not store.has(ident)
    assert store.ids() == []


HOSTILE_IDS = [
    "../x",
    "../" + "a" * 61,
    "/etc/passwd",
    DATA_ID.upper(),
    DATA_ID[:63],
    DATA_ID + "0",
    DATA_ID[:62] + "/.",
    "",
    "tmp",
    DATA_ID[:63] + "g",
    "\uff10" * 64,  # full-width digits: str.isdigit() would accept them
    DATA_ID[:63] + "\n",
]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_malformed_ids_are_missing_and_never_touch_the_filesystem(
    store: BlobStore, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(DATA)
    (store.root / "tmp" / "x").write_bytes(b"outside the fan-out")
    touched: list[str] = []

    def no_fs(self: Path, *args: object, **kwargs: object) -> None:
        touched.append(str(self))
        raise AssertionError(f"filesystem touched for {bad!r}")

    for name in ("stat", "open", "unlink", "read_bytes", "is_file", "exists"):
        monkeypatch.setattr(Path, name, no_fs)
    assert store.has(bad) is False
    for lookup in (store.read, store.path, store.size, store.delete):
        with pytest.raises(BlobMissing):
            lookup(bad)
    assert touched == []


def test_uppercase_alias_does_not_find_a_stored_blob(store: BlobStore) -> None:
    store.put(DATA)
    with pytest.raises(BlobMissing):
        store.read(DATA_ID.upper())


def test_temp_paths_are_fresh_files_inside_the_store(store: BlobStore) -> None:
    a, b = store.temp_path(), store.temp_path()
    assert a != b
    assert a.parent == b.parent == store.root / "tmp"
    assert a.read_bytes() == b""


def test_stale_temp_files_are_swept_on_open_recent_ones_kept(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "b")
    stale, recent = store.temp_path(), store.temp_path()
    old = stale.stat().st_mtime - 2 * node.blobs.STALE_TMP_AGE
    os.utime(stale, (old, old))
    BlobStore(tmp_path / "b")
    assert not stale.exists()
    assert recent.exists()
