"""Back up a running node, lose it, restore it: it gets everything back from its peer before it writes again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nodeproc import ApiError, NodeProc, introduce, node_env, wait_until
from test_cases_multinode import case_on, download, new_case, upload

from node.catch_up import MARKER_NAME

pytestmark = pytest.mark.processes

BEFORE_FILE = b"%PDF-1.4 before the backup\n" + bytes(range(256)) * 300
AFTER_FILE = b"%PDF-1.4 after the backup\n" + bytes(range(255, -1, -1)) * 300


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=node_env(), capture_output=True, text=True, timeout=120
    )


def names(node: NodeProc) -> set[str]:
    return {c["name"] for c in node.contacts()}


def notes(node: NodeProc, case_id: str) -> set[str]:
    found = case_on(node, case_id)
    return {n["text"] for n in found["notes"]} if found else set()


def test_backup_destroy_restore_converge_nothing_lost(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()

    for name in ("Somchai P.", "Malee K."):
        th.api("POST", "/api/v1/contacts", {"name": name})
    vn.api("POST", "/api/v1/contacts", {"name": "Nguyen V."})
    case_id = new_case(th, vn)["id"]
    th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "note before the backup"})
    before_att = upload(th, case_id, "before.pdf", BEFORE_FILE)["id"]
    wait_until(lambda: notes(vn, case_id) == {"note before the backup"}, what="the case to reach Viet Nam")

    archive = tmp_path / "backups" / "th.sjbackup"
    archive.parent.mkdir()
    made = cli("backup", str(th.home), str(archive))  # Thailand keeps running
    assert made.returncode == 0, made.stderr

    # Work done after the backup: only Viet Nam will still hold it once Thailand's home is gone.
    th.api("POST", "/api/v1/contacts", {"name": "Anong after-backup"})
    th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "note after the backup"})
    after_att = upload(th, case_id, "after.pdf", AFTER_FILE)["id"]
    wait_until(
        lambda: "Anong after-backup" in names(vn) and len(notes(vn, case_id)) == 2,
        what="the later work to reach Viet Nam",
    )
    wait_until(lambda: download(vn, case_id, after_att) == AFTER_FILE, what="Viet Nam to fetch the later file")
    everything = names(th)
    assert everything == {"Somchai P.", "Malee K.", "Nguyen V.", "Anong after-backup"}

    th.stop()
    vn.stop()
    shutil.rmtree(th.home)

    restored_home = tmp_path / "new-machine" / "th"
    restored = cli("restore", str(archive), str(restored_home))
    assert restored.returncode == 0, restored.stderr
    assert (restored_home / MARKER_NAME).exists()
    th2 = NodeProc(home=restored_home, name="Thailand", country="TH", port=th.port, node_id=th.node_id, token=th.token)
    th2.start()
    try:
        # Viet Nam is down: the restored node reads, but refuses changes while it cannot catch up.
        assert names(th2) == {"Somchai P.", "Malee K.", "Nguyen V."}
        with pytest.raises(ApiError) as refused:
            th2.api("POST", "/api/v1/contacts", {"name": "Too early"})
        assert refused.value.status == 503 and "restored from a backup" in refused.value.body["error"]
        assert th2.api("GET", "/api/v1/sync")["catch_up"]["waiting_for"] == [vn.node_id]
        with pytest.raises(ApiError):
            th2.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "too early"})

        vn.start()
        wait_until(lambda: not (restored_home / MARKER_NAME).exists(), timeout=30, what="the catch-up to end")
        assert names(th2) == everything
        assert th2.api("GET", "/api/v1/sync")["catch_up"] is None
        assert notes(th2, case_id) == {"note before the backup", "note after the backup"}
        assert download(th2, case_id, before_att) == BEFORE_FILE  # from the backup
        wait_until(lambda: download(th2, case_id, after_att) == AFTER_FILE, timeout=30, what="the later file back")

        th2.api("POST", "/api/v1/contacts", {"name": "Kanya after-restore"})
        th2.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "note after the restore"})
        final_notes = {"note before the backup", "note after the backup", "note after the restore"}
        wait_until(
            lambda: names(vn) == everything | {"Kanya after-restore"} and notes(vn, case_id) == final_notes,
            what="the new work to reach Viet Nam",
        )
        assert names(th2) == names(vn)
        assert case_on(th2, case_id)["history"] == case_on(vn, case_id)["history"]  # type: ignore[index]
    finally:
        th2.stop()
    assert "Traceback" not in th2.log()
