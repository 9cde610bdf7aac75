"""A node rotates its keys and keeps its node ID; its peers follow, and its old keys open nothing new.

Thailand announces new keys (signed by the old and the new), its peer confirms holding the announcement,
Thailand switches; Viet Nam then takes the new keys from the first session Thailand signs with them, the
shared case moves to a key wrapped for them, what Thailand signed before still verifies, and a copy of
Thailand's home from before the rotation can no longer open a session.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nodeproc import inject_updates, introduce, node_env, wait_until
from test_cases_multinode import case_on, new_case

from node.policy import directory_doc

pytestmark = pytest.mark.processes


def seajust(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], env=node_env(), capture_output=True, text=True, timeout=60
    )


def test_a_node_rotates_its_keys_and_its_peers_follow(make_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    th, vn = make_node("Thailand", "TH"), make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()
    case = new_case(th, vn)
    th.api("POST", f"/api/v1/cases/{case['id']}/transitions", {"to": "sent"})
    wait_until(lambda: (case_on(vn, case["id"]) or {}).get("status") == "sent", what="the case at Viet Nam")
    card_before = th.api("GET", "/api/v1/node")["card"]
    th.stop()
    stolen = tmp_path / "stolen-copy"
    shutil.copytree(th.home, stolen)  # the home as it was, old keys inside

    announced = seajust("keys", "rotate", str(th.home))
    assert announced.returncode == 0, announced.stderr
    assert "1 trusted peer(s) still to confirm" in announced.stdout
    early = seajust("keys", "rotate", str(th.home), "--finish")
    assert early.returncode == 1 and "have not confirmed" in early.stderr and "Traceback" not in early.stderr

    th.start()  # still on the old keys: Viet Nam receives the announcement and acknowledges it
    wait_until(lambda: th.api("GET", "/api/v1/node")["key_rotation"]["unconfirmed"] == [], what="confirmation")
    th.stop()
    finished = seajust("keys", "rotate", str(th.home), "--finish")
    assert finished.returncode == 0, finished.stderr
    assert th.node_id in finished.stdout

    th.start()
    info = th.api("GET", "/api/v1/node")
    assert info["node_id"] == th.node_id and info["key_rotations"] == 1 and info["card"] != card_before
    th.api("POST", f"/api/v1/cases/{case['id']}/notes", {"text": "signed with the new keys"})
    wait_until(
        lambda: "signed with the new keys" in json.dumps(case_on(vn, case["id"])), what="Thailand's note after rotating"
    )
    vn.api("POST", f"/api/v1/cases/{case['id']}/notes", {"text": "answer to the rotated node"})
    wait_until(lambda: "answer to the rotated node" in json.dumps(case_on(th, case["id"])), what="Viet Nam's answer")
    # What Thailand signed with its old keys still verifies everywhere.
    for node in (th, vn):
        assert node.api("GET", f"/api/v1/cases/{case['id']}/verify")["ok"] is True
    assert "rotated its keys" in vn.log()  # Viet Nam holds the new keys since Thailand first signed with them
    # The case moved to a key wrapped for Thailand's new keys.
    assert case_on(vn, case["id"])["parties"] == case_on(th, case["id"])["parties"]  # type: ignore[index]

    # A copy of the home from before the rotation (its passphrase known) no longer opens a session.
    rejected = vn.api("GET", "/api/v1/sync")["rejected"].get("bad_signature", 0)
    with pytest.raises(Exception):  # noqa: B017 - the session is refused, however the socket reports it
        asyncio.run(inject_updates(vn, stolen, [], directory_doc(th.node_id)))
    wait_until(
        lambda: vn.api("GET", "/api/v1/sync")["rejected"].get("bad_signature", 0) > rejected,
        what="the old keys refused",
    )
