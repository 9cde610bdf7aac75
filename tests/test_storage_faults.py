"""A disk that refuses writes (full, read-only): the node says so, keeps nothing half-written, serves reads,
and takes writes again once the disk is fixed, with no restart.

Unit tests drive a real `Database` and real document stores into SQLite's own page limit
(`PRAGMA max_page_count`, which fails exactly as a full disk does: SQLITE_FULL) or a connection that
cannot write. Process tests run a real node with its home on a small tmpfs, or on a read-only bind
mount, in a mount namespace of its own (`unshare`), fill or lock that filesystem under it and free it
again; they are skipped where this machine cannot make mount namespaces.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from nodeproc import PASSPHRASE, ApiError, NodeProc, introduce, node_env, wait_until

from node.errors import StorageError, StorageFull, StorageReadOnly
from node.policy import directory_doc
from node.runtime import Node, open_node
from node.storage import RETRY_EVERY, Database, fault_behind
from sync.engine import STALL_SECONDS
from sync.errors import ReplicaUnavailable

# -- unit: a real database at SQLite's page limit ---------------------------------------------------------


class Clock:
    """Monotonic time the test moves on by hand (the database's retry interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limit_pages(db: Database) -> None:
    """Let the database grow no more (no free pages left either): a write that needs a new page fails with
    SQLITE_FULL, as on a full disk."""
    db.db.execute("VACUUM")
    assert db.query("PRAGMA freelist_count")[0]["freelist_count"] == 0
    pages = db.query("PRAGMA page_count")[0]["page_count"]
    db.query(f"PRAGMA max_page_count = {pages}")


def _unlimit_pages(db: Database) -> None:
    db.query("PRAGMA max_page_count = 1073741823")


def test_a_full_database_refuses_the_whole_unit_of_work_and_takes_writes_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(tmp_path / "node.db", os.urandom(32))
    with db.write() as w:
        w.execute("CREATE TABLE t (n INTEGER, blob BLOB)")
    _limit_pages(db)
    caplog.set_level(logging.INFO, logger="node.storage")
    for _ in range(3):
        with pytest.raises(StorageFull, match="disk holding the node's database is full") as raised, db.write() as w:
            w.execute("INSERT INTO t VALUES (1, x'00')")  # fits in the table's page: written, then undone
            w.execute("INSERT INTO t VALUES (2, ?)", (os.urandom(64 * 1024),))  # needs new pages
        assert raised.value.http_status == 507
    assert db.query("SELECT count(*) AS n FROM t") == [{"n": 0}]  # nothing of the unit of work is kept
    health = db.health()
    assert health.state == "full" and health.refused == {"full": 3} and health.since
    assert health.detail and "free space" in health.detail
    refusals = [r for r in caplog.records if "refuses writes" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING  # once, not per refused write

    _unlimit_pages(db)  # space is back: the next write goes through, the same connection, no reopening
    with db.write() as w:
        w.execute("INSERT INTO t VALUES (3, ?)", (os.urandom(64 * 1024),))
    assert db.query("SELECT n FROM t") == [{"n": 3}]
    assert db.health().state == "ok" and db.health().refused == {"full": 3}
    assert any("takes writes again" in r.getMessage() for r in caplog.records)
    db.close()


def test_errors_of_the_unit_of_work_itself_are_not_taken_for_disk_faults(tmp_path: Path) -> None:
    db = Database(tmp_path / "node.db", os.urandom(32))
    with db.write() as w:
        w.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        w.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(Exception, match="UNIQUE constraint") as raised, db.write() as w:
        w.execute("INSERT INTO t VALUES (1)")
    assert not isinstance(raised.value, StorageError)
    with pytest.raises(KeyError), db.write() as w:
        w.execute("INSERT INTO t VALUES (2)")
        raise KeyError("the caller's own error")
    assert db.query("SELECT n FROM t") == [{"n": 1}] and db.health().state == "ok"
    db.close()


def test_a_connection_that_cannot_write_is_reopened_once_the_retry_interval_passed(tmp_path: Path) -> None:
    clock = Clock()
    db = Database(tmp_path / "node.db", os.urandom(32), clock=clock)
    with db.write() as w:
        w.execute("CREATE TABLE t (n INTEGER)")
    db.db.execute("PRAGMA query_only = 1")  # refuses writes (SQLITE_READONLY) like a connection opened read-only
    for _ in range(2):
        with pytest.raises(StorageReadOnly, match="cannot be written") as raised, db.write() as w:
            w.execute("INSERT INTO t VALUES (1)")
        assert raised.value.http_status == 503
    assert db.health().state == "read_only"  # before the retry interval: no new connection, no probe
    assert db.query("SELECT count(*) AS n FROM t") == [{"n": 0}]
    clock.now += RETRY_EVERY
    with db.write() as w:  # a fresh connection can write: the write goes through
        w.execute("INSERT INTO t VALUES (2)")
    assert db.query("SELECT n FROM t") == [{"n": 2}]
    assert db.health().state == "ok" and db.health().refused == {"read_only": 2}
    db.close()


def test_health_probes_while_refused_so_recovery_shows_without_other_writes(tmp_path: Path) -> None:
    clock = Clock()
    db = Database(tmp_path / "node.db", os.urandom(32), clock=clock)
    db.db.execute("PRAGMA query_only = 1")
    with pytest.raises(StorageReadOnly), db.write() as w:
        w.execute("CREATE TABLE t (n INTEGER)")
    assert db.health().state == "read_only"
    clock.now += RETRY_EVERY
    assert db.health().state == "ok"  # the probe reopened the database and wrote to it
    db.close()


# -- unit: the document store keeps memory and disk in step when the disk is full -------------------------


@pytest.fixture
def two_nodes(tmp_path: Path) -> Any:
    from nodeproc import init_node

    th_proc, vn_proc = init_node(tmp_path, "Thailand", "TH"), init_node(tmp_path, "Viet Nam", "VN")
    introduce(th_proc, vn_proc)
    th, vn = open_node(th_proc.home, PASSPHRASE), open_node(vn_proc.home, PASSPHRASE)
    yield th, vn
    th.close()
    vn.close()


def _names(node: Node) -> set[str]:
    return {c["name"] for c in node.directory.list()}


def _big_contact(name: str) -> dict[str, Any]:
    """A contact of some 3 KB, more than the free room in any page: storing it needs new pages."""
    return {"name": name, "expertise": [f"area {i} " + "x" * 90 for i in range(30)]}


def test_a_local_change_refused_by_a_full_disk_leaves_the_document_as_stored(two_nodes: tuple[Node, Node]) -> None:
    th, _ = two_nodes
    doc = directory_doc(th.node_id)
    th.directory.create({"name": "Somchai"}, actor="tests")
    _limit_pages(th.db)
    kept = {"Somchai"}
    for i in range(10):  # the first changes fit in free room of existing pages; then the "disk" is full
        before = th.store.versions(doc)
        try:
            th.directory.create(_big_contact(f"Officer {i}"), actor="tests")
        except StorageError as exc:
            assert isinstance(fault_behind(exc), StorageFull)
            break
        kept.add(f"Officer {i}")
    else:
        raise AssertionError("no change was refused at the page limit")
    assert th.store.versions(doc) == before and _names(th) == kept  # memory rolled back with the disk
    assert th.db.health().state == "full"
    _unlimit_pages(th.db)
    th.directory.create(_big_contact("Accepted"), actor="tests")
    assert _names(th) == kept | {"Accepted"} and th.db.health().state == "ok"


def test_received_updates_refused_by_a_full_disk_are_not_half_applied(two_nodes: tuple[Node, Node]) -> None:
    th, vn = two_nodes
    doc = directory_doc(vn.node_id)
    for i in range(3):
        vn.directory.create(_big_contact(f"VN officer {i}"), actor="tests")
    entries = vn.store.entries_missing(doc, th.store.versions(doc))
    assert len(entries) >= 3
    _limit_pages(th.db)
    with pytest.raises(ReplicaUnavailable) as raised:  # the engine stalls the session: no ack, no rejection
        th.store.apply_remote(entries, via=vn.node_id)
    assert isinstance(fault_behind(raised.value), StorageFull)
    assert th.store.versions(doc).get(vn.node_id, 0) == 0 and _names(th) == set()
    assert th.db.query("SELECT count(*) AS n FROM doc_log WHERE author = ?", (vn.node_id,)) == [{"n": 0}]
    assert th.rejections.counts == {}  # the sender did nothing wrong
    _unlimit_pages(th.db)
    stored = th.store.apply_remote(entries, via=vn.node_id).stored  # the same entries, offered again
    assert len(stored) == len(entries) and _names(th) == {f"VN officer {i}" for i in range(3)}


# -- processes: a node whose home is on a filesystem the test controls -------------------------------------


@functools.cache
def _unshare_prefix() -> tuple[str, ...] | None:
    """How to give a process a mount namespace of its own here, or None if this machine cannot."""
    plain = ("unshare", "--mount", "--propagation", "private")
    userns = ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private")
    for prefix in (plain, userns) if os.geteuid() == 0 else (userns,):
        try:
            done = subprocess.run(
                [*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return None


needs_namespaces = pytest.mark.skipif(
    _unshare_prefix() is None,
    reason="cannot make a mount namespace here (needs root, or unprivileged user namespaces): "
    "the page-limit tests above cover the same paths in-process",
)


def _start_in_namespace(node: NodeProc, setup: str, timeout: float = 20.0) -> None:
    """Run `node` as `python -m node.cli run HOME` in its own mount namespace, after the shell commands `setup`."""
    prefix = _unshare_prefix()
    assert prefix is not None
    script = f"set -e; {setup}; exec {shlex.quote(sys.executable)} -m node.cli run {shlex.quote(str(node.home))}"
    with open(node.log_path, "ab") as log:
        node.proc = subprocess.Popen([*prefix, "sh", "-c", script], env=node_env(), stdout=log, stderr=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"node {node.name} exited with {node.proc.returncode}:\n{node.log()}")
        try:
            with urllib.request.urlopen(node.url + "/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"node {node.name} did not start:\n{node.log()}")


def _on_small_tmpfs(home: Path, stage: Path) -> str:
    """Shell commands that put a copy of `home` on a 24 MiB tmpfs mounted over it."""
    h, st = shlex.quote(str(home)), shlex.quote(str(stage))
    return f"cp -a {h} {st}; mount -t tmpfs -o size=24m,mode=0700 tmpfs {h}; cp -a {st}/. {h}/"


def _inside(node: NodeProc, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in the node's mount namespace (where its home is the small or read-only filesystem)."""
    assert node.proc is not None
    userns = "--user" in (_unshare_prefix() or ())
    enter = ["nsenter", "-t", str(node.proc.pid), "-m", *(["-U", "--preserve-credentials"] if userns else [])]
    return subprocess.run([*enter, *command], env=node_env(), capture_output=True, text=True, timeout=60, check=check)


def _fill(node: NodeProc) -> None:
    """Fill the node's filesystem with a file of zeros until the disk says ENOSPC."""
    _inside(node, "sh", "-c", f"cat /dev/zero > {shlex.quote(str(node.home / 'filler'))} 2>/dev/null || true")


def _healthz(node: NodeProc) -> dict[str, Any]:
    with urllib.request.urlopen(node.url + "/healthz", timeout=5) as resp:
        assert resp.status == 200  # a node with a sick disk still serves: restarting it would not help
        result = json.loads(resp.read())
        assert isinstance(result, dict)
        return result


def _metrics(node: NodeProc) -> str:
    request = urllib.request.Request(node.url + "/metrics", headers={"Authorization": f"Bearer {node.token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return str(resp.read().decode())


def _refused_full(node: NodeProc) -> float:
    for line in _metrics(node).splitlines():
        if line.startswith('seajust_storage_refused_writes_total{cause="full"}'):
            return float(line.split()[-1])
    raise AssertionError("no seajust_storage_refused_writes_total metric")


def _names_of(node: NodeProc) -> set[str]:
    return {c["name"] for c in node.contacts()}


def _upload(node: NodeProc, case_id: str, data: bytes) -> Any:
    request = urllib.request.Request(
        f"{node.url}/api/v1/cases/{case_id}/attachments?name=evidence.pdf&language=en", data=data, method="POST"
    )
    request.add_header("Authorization", f"Bearer {node.token}")
    request.add_header("Content-Type", "application/pdf")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, json.loads(exc.read())) from None


def _add_admin(node: NodeProc) -> None:
    """A web user, so the node has no one-time setup code to store when it starts."""
    opened = open_node(node.home, PASSPHRASE)
    try:
        opened.accounts.add("operator", "a long enough passphrase 42", "admin", actor="tests")
    finally:
        opened.close()


@pytest.mark.processes
@needs_namespaces
def test_a_full_disk_refuses_changes_keeps_reads_and_sync_whole_then_recovers_without_restart(
    make_node, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    _start_in_namespace(th, _on_small_tmpfs(th.home, tmp_path / "stage"))
    vn.start()
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    vn.api("POST", "/api/v1/contacts", {"name": "Nguyen Van An"})
    both = {"Somchai", "Nguyen Van An"}
    wait_until(lambda: _names_of(th) == both and _names_of(vn) == both, what="the nodes to converge")
    case = th.api("POST", "/api/v1/cases", {"kind": "mla", "counterpart": vn.node_id, "summary": "Disk full"})
    pid = th.proc.pid

    _fill(th)
    assert int(_inside(th, "df", "--output=avail", "-B1", str(th.home)).stdout.split()[-1]) < 64 * 1024
    # Writes that still fit in SQLite's WAL file may go through; the first that needs the disk is refused.
    for attempt in range(20):
        try:
            th.api("POST", "/api/v1/contacts", {"name": f"Written on a full disk {attempt}"})
        except ApiError as exc:
            assert exc.status == 507, exc.body
            assert "disk holding the node's database is full" in exc.body["error"]
            break
    else:
        raise AssertionError("no write was refused on a full disk")
    with pytest.raises(ApiError) as upload:  # an attachment file is refused by the disk too, not a 500
        _upload(th, case["id"], os.urandom(256 * 1024))
    assert upload.value.status == 507, upload.value.body
    written = _names_of(th)  # reads go on
    assert both <= written
    health = _healthz(th)
    assert health["status"] == "degraded" and health["storage"] == "full" and "free space" in health["detail"]
    assert "seajust_storage_writable 0.0" in _metrics(th)
    refused = _refused_full(th)
    assert refused >= 1

    # The peer's change arrives and is refused whole: nothing of it stored or acknowledged, the peer not blamed.
    vn.api("POST", "/api/v1/contacts", {"name": "Sent while TH was full"})
    wait_until(lambda: _refused_full(th) > refused, what="TH to try to store VN's change")
    assert _names_of(th) == written
    assert vn.api("GET", "/api/v1/peers")[0]["outbox"] >= 1
    assert th.api("GET", "/api/v1/sync")["rejected"] == {}
    assert th.proc.poll() is None

    _inside(th, "rm", f"{th.home}/filler")
    wait_until(
        lambda: th.api("POST", "/api/v1/contacts", {"name": "Written after space came back"}) is not None,
        what="TH to take writes again",
    )
    final = written | {"Sent while TH was full", "Written after space came back"}
    wait_until(lambda: _names_of(th) == final and _names_of(vn) == final, timeout=30, what="the nodes to converge")
    assert _healthz(th) == {"status": "ok"} and "seajust_storage_writable 1.0" in _metrics(th)
    assert th.proc.pid == pid and th.proc.poll() is None  # the same process throughout: no restart
    log = th.log()
    assert log.count("the database refuses writes") == 1 and "takes writes again" in log


def _forget_addresses(holder: NodeProc, peer: NodeProc) -> None:
    """`holder` keeps trusting `peer` but no longer knows where to reach it: only `peer` dials (a node behind NAT)."""
    opened = open_node(holder.home, PASSPHRASE)
    try:
        with opened.db.write() as w:
            w.execute("UPDATE peers SET addresses = '[]' WHERE node_id = ?", (peer.node_id,))
    finally:
        opened.close()


@pytest.mark.processes
@needs_namespaces
def test_a_node_that_dials_its_peer_reconnects_after_its_disk_refused_what_the_peer_sent(
    make_node, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    _forget_addresses(vn, th)  # only Thailand dials
    _start_in_namespace(th, _on_small_tmpfs(th.home, tmp_path / "stage"))
    vn.start()
    vn.api("POST", "/api/v1/contacts", {"name": "Nguyen Van An"})
    wait_until(lambda: _names_of(th) == {"Nguyen Van An"}, what="Thailand to dial Viet Nam and catch up")

    _fill(th)
    refused = _refused_full(th)
    for attempt in range(20):  # the change reaches Thailand once a write of its own needs the disk
        vn.api("POST", "/api/v1/contacts", {"name": f"Sent while TH was full {attempt}"})
        try:
            wait_until(lambda: _refused_full(th) > refused, timeout=2, what="Thailand to refuse a change")
            break
        except AssertionError:
            continue
    sent = {c["name"] for c in vn.contacts()}
    _inside(th, "rm", f"{th.home}/filler")
    wait_until(
        lambda: _names_of(th) == sent,
        timeout=STALL_SECONDS + 15,
        what="Thailand to dial again and receive what it refused",
    )


@pytest.mark.processes
@needs_namespaces
def test_a_node_on_a_read_only_home_serves_reads_refuses_changes_and_takes_them_once_writable(
    make_node,
) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    _add_admin(th)
    opened = open_node(th.home, PASSPHRASE)
    try:
        opened.directory.create({"name": "Somchai"}, actor="tests")
    finally:
        opened.close()
    home = shlex.quote(str(th.home))
    _start_in_namespace(th, f"mount --bind {home} {home}; mount -o remount,bind,ro {home}")
    pid = th.proc.pid
    assert _names_of(th) == {"Somchai"}  # reads work
    health = _healthz(th)
    assert health["status"] == "degraded" and health["storage"] == "read_only"
    with pytest.raises(ApiError) as refused:
        th.api("POST", "/api/v1/contacts", {"name": "Refused"})
    assert refused.value.status == 503 and "cannot be written" in refused.value.body["error"]
    assert "seajust_storage_writable 0.0" in _metrics(th)

    seajust = [sys.executable, "-m", "node.cli", "status", str(th.home)]
    shown = _inside(th, *seajust, check=False)  # the operator's view, where the home is read-only
    assert shown.returncode == 3 and "storage: READ-ONLY" in shown.stdout and "Traceback" not in shown.stderr
    summary = json.loads(_inside(th, *seajust, "--json", check=False).stdout)
    assert summary["storage"]["state"] == "read_only" and summary["running"] is True
    assert any("cannot be written" in warning for warning in summary["warnings"])

    _inside(th, "mount", "-o", "remount,bind,rw", str(th.home))
    wait_until(
        lambda: th.api("POST", "/api/v1/contacts", {"name": "Written once writable"}) is not None,
        what="the node to take writes again",
    )
    assert _names_of(th) == {"Somchai", "Written once writable"}
    assert _healthz(th) == {"status": "ok"}
    assert json.loads(_inside(th, *seajust, "--json", check=False).stdout)["storage"]["state"] == "ok"
    assert th.proc.pid == pid and th.proc.poll() is None  # no restart
