"""Backup and restore of a node home: round trip, refusals, and the catch-up that follows a restore."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlcipher3
from nodeproc import PASSPHRASE, init_node, node_env

from crypto.errors import WrongPassphrase
from crypto.keystore import load_keyfile
from crypto.sealed_file import SealedFileError, SealedReader, SealedWriter
from node.backup import BackupError, create_backup, read_backup_header, restore_backup
from node.catch_up import MARKER_NAME
from node.directory import directory_doc
from node.errors import CatchingUp, HomeExists
from node.runtime import Node, open_node
from node.tokens import create_token, token_is_valid

PDF = b"%PDF-1.4 restored statement\n" + bytes(range(256)) * 64


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Thailand and Viet Nam opened in process, trusting each other; Thailand is closed by the tests."""
    procs = [init_node(tmp_path, n, c) for n, c in (("Thailand", "TH"), ("Viet Nam", "VN"))]
    th, vn = (open_node(p.home, PASSPHRASE) for p in procs)
    th.peers.add_card(vn.card(), actor="tests")
    vn.peers.add_card(th.card(), actor="tests")
    yield th, vn
    for node in (th, vn):
        with contextlib.suppress(Exception):  # already closed by the test
            node.close()


def fill(th: Node, vn: Node) -> dict[str, str]:
    """Users, a token, a contact and a case with an attachment on Thailand."""
    th.accounts.add("somchai", "a long enough password 1", "admin", actor="tests")
    token = create_token(th.db, "tests")
    contact = th.directory.create({"name": "Somchai P.", "expertise": ["extradition"]}, actor="tests")
    case = th.cases.create(
        {
            "kind": "mla",
            "counterpart": vn.node_id,
            "reference": "TH-9",
            "summary": "restored case",
            "languages": ["en"],
        },
        actor="tests",
    )
    att = th.cases.add_attachment(
        case["id"], name="a.pdf", media_type="application/pdf", data=PDF, meta={}, actor="tests"
    )
    return {"token": token, "contact": contact["id"], "case": case["id"], "attachment": att["id"]}


def test_round_trip_brings_back_users_tokens_keys_cases_and_files(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, vn = pair
    made = fill(th, vn)
    th_home, node_id = th.home.path, th.node_id
    archive = tmp_path / "th.sjbackup"
    summary = create_backup(th_home, archive, PASSPHRASE)  # while th is open (its own connection holds the db)
    th.close()
    assert summary.node_id == node_id and summary.blobs == 1
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    raw = archive.read_bytes()
    for secret in (b"restored case", b"Somchai", b"somchai", b"%PDF", made["token"].encode()):
        assert secret not in raw
    header = read_backup_header(archive)
    assert header["node_id"] == node_id and header["format"] == "seajust-backup"

    new_home = tmp_path / "elsewhere" / "th"
    restored = restore_backup(archive, new_home, PASSPHRASE)
    assert restored.node_id == node_id and restored.blobs == 1 and restored.missing_blobs == 0
    assert restored.catching_up and (new_home / MARKER_NAME).exists()
    assert stat.S_IMODE(new_home.stat().st_mode) == 0o700
    assert not [p for p in new_home.parent.iterdir() if p.name != "th"]  # no staging folder left

    node = open_node(new_home, PASSPHRASE)
    try:
        assert node.node_id == node_id
        assert load_keyfile(new_home / "keys.json", PASSPHRASE).identity.node_id == node_id
        assert token_is_valid(node.db, made["token"])
        assert node.accounts.authenticate("somchai", "a long enough password 1", client="tests").role == "admin"
        assert node.directory.get(made["contact"])["name"] == "Somchai P."
        assert node.cases.get(made["case"])["summary"] == "restored case"
        _, data = node.cases.read_attachment(made["case"], made["attachment"])
        assert data == PDF
        assert [p.node_id for p in node.peers.all()] == [vn.node_id]
        # Catching up: no local change until Viet Nam has answered.
        with pytest.raises(CatchingUp) as refused:
            node.directory.create({"name": "Too early"}, actor="tests")
        assert refused.value.http_status == 503 and "restored from a backup" in refused.value.message
    finally:
        node.close()


def test_restored_node_gets_its_later_updates_back_before_writing(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, vn = pair
    first = th.directory.create({"name": "Before the backup"}, actor="tests")
    archive = tmp_path / "th.sjbackup"
    create_backup(th.home.path, archive, PASSPHRASE)
    later = th.directory.create({"name": "After the backup"}, actor="tests")
    doc_id = directory_doc(th.node_id)
    # Viet Nam holds both of Thailand's changes, then Thailand's home is lost.
    vn.store.apply_remote(th.store.entries_missing(doc_id, vn.store.versions(doc_id)), via=th.node_id)
    assert vn.store.versions(doc_id)[th.node_id] == 2
    th.close()

    new_home = tmp_path / "th-restored"
    restore_backup(archive, new_home, PASSPHRASE)
    node = open_node(new_home, PASSPHRASE)
    try:
        assert node.store.versions(doc_id)[node.node_id] == 1
        assert node.catch_up is not None and node.catch_up.waiting_for() == [vn.node_id]
        # Viet Nam's complete version list says it holds seq 2: still behind, still refusing.
        node.engine.on_complete_versions(vn.node_id, {d: vn.store.versions(d) for d in vn.store.doc_ids()})
        assert node.catch_up.behind() == {doc_id: 1}
        with pytest.raises(CatchingUp):
            node.directory.create({"name": "Too early"}, actor="tests")
        # Its own signed update comes back from Viet Nam: verified with its own key, stored, catch-up over.
        back = node.store.apply_remote(vn.store.entries_missing(doc_id, node.store.versions(doc_id)), via=vn.node_id)
        assert [e.seq_to for e in back.stored] == [2]
        assert not (new_home / MARKER_NAME).exists()
        assert {c["id"] for c in node.directory.list()} >= {first["id"], later["id"]}
        fresh = node.directory.create({"name": "After the restore"}, actor="tests")
        assert node.store.versions(doc_id)[node.node_id] == 3  # a number no peer holds yet
        vn.store.apply_remote(node.store.entries_missing(doc_id, vn.store.versions(doc_id)), via=node.node_id)
        assert fresh["id"] in {c["id"] for c in vn.directory.list()}
    finally:
        node.close()


def test_operator_can_end_the_catch_up_by_removing_the_marker(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, _ = pair
    archive = tmp_path / "th.sjbackup"
    create_backup(th.home.path, archive, PASSPHRASE)
    th.close()
    new_home = tmp_path / "th-restored"
    restore_backup(archive, new_home, PASSPHRASE)
    node = open_node(new_home, PASSPHRASE)
    try:
        with pytest.raises(CatchingUp):
            node.directory.create({"name": "Too early"}, actor="tests")
        (new_home / MARKER_NAME).unlink()
        node.directory.create({"name": "Allowed"}, actor="tests")
    finally:
        node.close()


def test_skip_catch_up_and_a_node_without_peers_write_at_once(tmp_path: Path) -> None:
    alone = init_node(tmp_path, "Laos", "LA")
    archive = tmp_path / "la.sjbackup"
    create_backup(alone.home, archive, PASSPHRASE)
    assert not restore_backup(archive, tmp_path / "la-1", PASSPHRASE).catching_up  # no peer to wait for
    assert not restore_backup(archive, tmp_path / "la-2", PASSPHRASE, catch_up=False).catching_up
    for home in (tmp_path / "la-1", tmp_path / "la-2"):
        assert not (home / MARKER_NAME).exists()
        node = open_node(home, PASSPHRASE)
        try:
            node.directory.create({"name": "Fine"}, actor="tests")
        finally:
            node.close()


def test_wrong_passphrase_is_refused_and_leaves_nothing(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, _ = pair
    archive = tmp_path / "out" / "th.sjbackup"
    archive.parent.mkdir()
    with pytest.raises(WrongPassphrase):
        create_backup(th.home.path, archive, "not the passphrase")
    assert list(archive.parent.iterdir()) == []
    create_backup(th.home.path, archive, PASSPHRASE)
    target = tmp_path / "restore-here"
    with pytest.raises(WrongPassphrase):
        restore_backup(archive, target / "th", "not the passphrase")
    assert not target.exists() or list(target.iterdir()) == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "append"])
def test_damaged_archive_is_refused_and_leaves_nothing(pair: tuple[Node, Node], tmp_path: Path, damage: str) -> None:
    th, vn = pair
    fill(th, vn)
    archive = tmp_path / "th.sjbackup"
    create_backup(th.home.path, archive, PASSPHRASE)
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        del data[-100:]
    else:
        data += b"\x00\x00\x00\x10" + bytes(16)
    archive.write_bytes(bytes(data))
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises((SealedFileError, BackupError)):
        restore_backup(archive, target / "th", PASSPHRASE)
    assert list(target.iterdir()) == []


def test_sealed_chunks_cannot_be_dropped_reordered_or_cut_at_a_boundary() -> None:
    out = io.BytesIO()
    writer = SealedWriter(out, "pass", format_name="t", version=1, fields={}, scrypt_n=2**4, chunk_size=16)
    writer.write(bytes(range(40)))
    writer.close()
    raw = out.getvalue()
    header, body = raw[: raw.index(b"\n") + 1], raw[raw.index(b"\n") + 1 :]
    chunks, rest = [], body
    while rest:
        length = int.from_bytes(rest[:4], "big") + 4
        chunks.append(rest[:length])
        rest = rest[length:]
    assert len(chunks) == 3

    def read(blob: bytes) -> bytes:
        reader = SealedReader(io.BytesIO(blob), "pass", format_name="t", version=1)
        data = reader.read()
        reader.finish()
        return data

    assert read(raw) == bytes(range(40))
    for bad in (
        header + chunks[0] + chunks[1],  # cut at a chunk boundary: no last chunk
        header + chunks[1] + chunks[0] + chunks[2],  # reordered
        header + chunks[0] + chunks[2],  # one dropped
        header + chunks[0] + chunks[1] + chunks[2] + chunks[2],  # something after the last chunk
    ):
        with pytest.raises(SealedFileError):
            read(bad)
    with pytest.raises(WrongPassphrase):
        read(header.replace(b'"version": 1', b'"version": 1, "x": 1') + body)
    with pytest.raises(WrongPassphrase):
        SealedReader(io.BytesIO(raw), "other", format_name="t", version=1)


def test_restore_refuses_a_folder_that_holds_a_node_or_anything(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, vn = pair
    archive = tmp_path / "th.sjbackup"
    create_backup(th.home.path, archive, PASSPHRASE)
    with pytest.raises(HomeExists):
        restore_backup(archive, vn.home.path, PASSPHRASE)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(HomeExists):
        restore_backup(archive, busy, PASSPHRASE)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert restore_backup(archive, empty, PASSPHRASE).node_id == th.node_id


def test_files_missing_from_the_backup_are_fetched_again(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, vn = pair
    made = fill(th, vn)
    blob_id = th.db.query("SELECT blob_id FROM case_attachments")[0]["blob_id"]
    th.blobs.path(blob_id).unlink()  # as if the file had not been there when the backup listed the files
    archive = tmp_path / "th.sjbackup"
    create_backup(th.home.path, archive, PASSPHRASE)
    th.close()
    summary = restore_backup(archive, tmp_path / "th-restored", PASSPHRASE)
    assert summary.missing_blobs == 1 and summary.blobs == 0
    node = open_node(tmp_path / "th-restored", PASSPHRASE)
    try:
        assert [r["blob_id"] for r in node.cases.index.missing_blobs()] == [blob_id]
        assert node.cases.get(made["case"])["id"] == made["case"]
    finally:
        node.close()


def test_backup_of_a_node_being_written_is_consistent(pair: tuple[Node, Node], tmp_path: Path) -> None:
    th, _ = pair
    stop = threading.Event()
    written: list[str] = []

    def keep_writing() -> None:
        while not stop.is_set():
            written.append(th.directory.create({"name": f"Officer {len(written)}"}, actor="tests")["id"])

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        archives = []
        for n in range(3):
            archives.append(tmp_path / f"th-{n}.sjbackup")
            create_backup(th.home.path, archives[-1], PASSPHRASE)
    finally:
        stop.set()
        writer.join()
    key = load_keyfile(th.home.keyfile, PASSPHRASE).db_key
    doc_id = directory_doc(th.node_id)
    for n, archive in enumerate(archives):
        home = tmp_path / f"restored-{n}"
        restore_backup(archive, home, PASSPHRASE, catch_up=False)
        conn = sqlcipher3.connect(str(home / "node.db"))
        conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r[0] for r in conn.execute("SELECT seq_to FROM doc_log WHERE doc_id = ? ORDER BY seq_to", (doc_id,))]
        conn.close()
        assert seqs == list(range(1, len(seqs) + 1))  # no hole: one instant of the log
        node = open_node(home, PASSPHRASE)
        try:
            ids = {c["id"] for c in node.directory.list()}
            assert len(ids) == len(seqs) and ids <= set(written)  # the log replays to exactly what it holds
        finally:
            node.close()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=env or node_env(), capture_output=True, text=True, timeout=120
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seajust: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    home = init_node(tmp_path, "Thailand", "TH").home
    archive = tmp_path / "th.sjbackup"
    done = run("backup", str(home), str(archive))
    assert done.returncode == 0, done.stderr
    assert "written to" in done.stdout and PASSPHRASE not in done.stdout + done.stderr
    restored = run("restore", str(archive), str(tmp_path / "th2"))
    assert restored.returncode == 0, restored.stderr
    assert "restored into" in restored.stdout

    wrong = {**node_env(), "SEAJUST_PASSPHRASE": "not it"}
    assert_clean_error(run("backup", str(home), str(tmp_path / "x.sjbackup"), env=wrong), "passphrase")
    assert not (tmp_path / "x.sjbackup").exists()
    assert_clean_error(run("restore", str(archive), str(tmp_path / "th3"), env=wrong), "passphrase")
    assert not (tmp_path / "th3").exists()
    assert_clean_error(run("restore", str(archive), str(home)), "already holds a node")
    assert_clean_error(run("backup", str(tmp_path / "nowhere"), str(tmp_path / "y.sjbackup")), "no node home")
    assert_clean_error(run("backup", str(home), str(home / "inside.sjbackup")), "outside the node home")
    assert_clean_error(run("backup", str(home), str(tmp_path / "no" / "dir.sjbackup")), "does not exist")
    assert_clean_error(run("restore", str(tmp_path / "missing.sjbackup"), str(tmp_path / "th4")), "cannot read")
    (tmp_path / "junk").write_bytes(os.urandom(2000))
    assert_clean_error(run("restore", str(tmp_path / "junk"), str(tmp_path / "th5")), "not a seajust-backup file")
    cut = tmp_path / "cut.sjbackup"
    cut.write_bytes(archive.read_bytes()[:-50])
    assert_clean_error(run("restore", str(cut), str(tmp_path / "th6")), "cut off")
    assert not (tmp_path / "th6").exists()
