"""A handover between real node processes: the counterpart receives each case's handover note and the directory
change, refuses nothing, and every earlier history entry is still there and still verifies."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from nodeproc import PASSPHRASE, NodeProc, introduce, wait_until

from node.accounts import Accounts
from node.runtime import open_node

pytestmark = pytest.mark.processes

PASSWORD = "a long enough passphrase"
NOTE = "Responsibility for this case was handed over from Somchai Prasert to Malee Chaiyaporn."


def accounts_on(node: NodeProc) -> None:
    """Thailand's officers, made offline before the node runs (as `seajust user add` would)."""
    opened = open_node(node.home, PASSPHRASE)
    try:
        accounts = Accounts(opened.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        for name, role in (("admin", "admin"), ("somchai", "officer"), ("malee", "officer")):
            accounts.add(name, PASSWORD, role, actor="tests")
        accounts.set_details("somchai", full_name="Somchai Prasert", email="somchai@oag.go.th", actor="tests")
        accounts.set_details("malee", full_name="Malee Chaiyaporn", email="malee@oag.go.th", actor="tests")
    finally:
        opened.close()


def case_on(node: NodeProc, case_id: str) -> dict[str, Any]:
    case = node.api("GET", f"/api/v1/cases/{case_id}")
    assert isinstance(case, dict)
    return case


def test_the_counterpart_receives_the_handover_and_loses_nothing(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    accounts_on(th)
    th.start()
    vn.start()

    case = th.api(
        "POST",
        "/api/v1/cases",
        {"kind": "mla", "counterpart": vn.node_id, "reference": "OAG-2026-117", "summary": "Zephyrine Holdings"},
    )
    case_id = case["id"]
    th.api("PUT", f"/api/v1/cases/{case_id}/officer", {"username": "somchai"})
    th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "Bank records requested from two banks"})
    contact = th.api(
        "POST",
        "/api/v1/contacts",
        {"name": "Somchai Prasert", "title": "Senior public prosecutor", "expertise": ["extradition"]},
    )
    th.api("PUT", f"/api/v1/contacts/{contact['id']}/account", {"username": "somchai"})
    wait_until(lambda: any(c["id"] == contact["id"] for c in vn.contacts()), what="the contact to reach Viet Nam")
    wait_until(
        lambda: len(vn.api("GET", "/api/v1/cases")) == 1 and len(case_on(vn, case_id)["notes"]) == 1,
        what="the case and its note to reach Viet Nam",
    )
    history_before = case_on(vn, case_id)["history"]

    summary = th.api("POST", "/api/v1/users/somchai/handover", {"to": "malee", "disable": True})
    assert {k: summary[k] for k in ("cases", "contacts", "disabled")} == {"cases": 1, "contacts": 1, "disabled": True}

    wait_until(lambda: len(case_on(vn, case_id)["notes"]) == 2, what="the handover note to reach Viet Nam")
    seen = case_on(vn, case_id)
    assert seen["notes"][-1]["text"] == NOTE
    assert seen["history"][: len(history_before)] == history_before
    assert vn.api("GET", f"/api/v1/cases/{case_id}/verify")["ok"]
    wait_until(
        lambda: next(c for c in vn.contacts() if c["id"] == contact["id"])["name"] == "Malee Chaiyaporn",
        what="the directory change to reach Viet Nam",
    )
    entry = next(c for c in vn.contacts() if c["id"] == contact["id"])
    assert (entry["title"], entry["expertise"], entry["email"]) == (
        "Senior public prosecutor",
        ["extradition"],
        "malee@oag.go.th",
    )
    assert vn.api("GET", "/api/v1/sync")["rejected"] == {}
    # Responsibility itself stays home: Viet Nam's node knows nothing of Thailand's officers.
    assert vn.api("GET", f"/api/v1/cases/{case_id}/officer") is None
    assert th.api("GET", f"/api/v1/cases/{case_id}/officer")["username"] == "malee"
