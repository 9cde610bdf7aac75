"""Statistics between real node processes: three authorities report aggregates, the secretariat merges them
and never holds a case."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import aiohttp
import pytest
from nodeproc import PASSPHRASE, ApiError, NodeProc, dump, files_contain, inject_updates, introduce, wait_until

from node.policy import report_doc
from node.runtime import open_node

pytestmark = pytest.mark.processes

REQUESTED_BY = "2027-02-17"  # an exact date that must never reach the secretariat


def seed(requesting: NodeProc, requested: NodeProc, n: int, tag: str, *, acknowledge: bool = False) -> list[str]:
    ids = []
    for i in range(n):
        case = requesting.api(
            "POST",
            "/api/v1/cases",
            {
                "kind": "mla" if i % 2 == 0 else "extradition",
                "counterpart": requested.node_id,
                "reference": f"REF-{tag}-{i}-QUINCUNX",
                "summary": f"Secret summary {tag} {i} about Ostrogoth Trading",
                "offences": ["fraud"] if i % 2 == 0 else ["corruption", "money_laundering"],
                "measures": ["bank_records"],
                "legal_basis": ["asean_mlat"],
                "languages": ["en"],
                "requested_by": REQUESTED_BY,
            },
        )
        requesting.api(
            "POST", f"/api/v1/cases/{case['id']}/transitions", {"to": "sent", "force": True, "reason": "seeding"}
        )
        ids.append(case["id"])
    if acknowledge:
        for case_id in ids:
            wait_until(lambda c=case_id: _status(requested, c) == "sent", what="the case to arrive")
            requested.api("POST", f"/api/v1/cases/{case_id}/transitions", {"to": "acknowledged", "reason": ""})
    return ids


def _status(node: NodeProc, case_id: str) -> str | None:
    try:
        return str(node.api("GET", f"/api/v1/cases/{case_id}")["status"])
    except ApiError:
        return None


def sent_cases(node: NodeProc) -> list[dict[str, Any]]:
    return [c for c in node.api("GET", "/api/v1/cases?limit=1000") if c["sent_at"] and c["side"] != "shared"]


def test_secretariat_totals_are_the_sum_of_the_members_and_hold_no_case(make_node) -> None:  # type: ignore[no-untyped-def]
    th, vn, ph = make_node("Thailand", "TH"), make_node("Viet Nam", "VN"), make_node("Philippines", "PH")
    sec = make_node("UNODC", "TH", "secretariat")
    nodes = (th, vn, ph, sec)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            introduce(a, b)
    for node in nodes:
        node.start()
    th_vn = seed(th, vn, 4, "thvn", acknowledge=True)
    seed(vn, ph, 3, "vnph")
    seed(ph, th, 5, "phth")
    wait_until(lambda: len(sent_cases(vn)) == 7 and len(sent_cases(ph)) == 8 and len(sent_cases(th)) == 9, what="cases")

    preview = th.api("GET", "/api/v1/stats/preview")
    assert preview["totals"]["cases"] == 9
    for node in (th, vn, ph):
        sent = node.api("POST", "/api/v1/stats/send", {})
        assert sent["payload"] == node.api("GET", "/api/v1/stats/preview")
    assert th.api("GET", "/api/v1/stats/sent")[0]["payload"] == preview
    expected_total = sum(len(sent_cases(n)) for n in (th, vn, ph))  # each case once per party holding it

    wait_until(lambda: sec.api("GET", "/api/v1/stats")["reporting_nodes"] == 3, what="three reports at the secretariat")
    network = sec.api("GET", "/api/v1/stats")
    assert network["totals"]["cases"] == expected_total == 24
    assert network["totals"]["by_direction"] == {"incoming": 12, "outgoing": 12}
    assert network["response_days"]["sent_to_acknowledged"]["n"] == 2 * len(th_vn)  # each party reports it
    assert {m["country"]: m["status"] for m in sec.api("GET", "/api/v1/stats/members")} == {
        "TH": "reported",
        "VN": "reported",
        "PH": "reported",
    }
    request = urllib.request.Request(
        f"{sec.url}/api/v1/stats?format=csv", headers={"Authorization": f"Bearer {sec.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/csv")
        assert resp.read().decode().startswith("period,section,key,value")
    # The secretariat computes nothing from cases: it has none, and cannot preview a report of its own.
    assert sec.api("GET", "/api/v1/cases") == []
    with pytest.raises(ApiError) as refused:
        sec.api("GET", "/api/v1/stats/preview")
    assert refused.value.status == 403

    sec.stop()
    text = dump(sec) + sec.log()
    for secret in ("Ostrogoth", "QUINCUNX", REQUESTED_BY, *th_vn):
        assert secret not in text, secret
    for case in sent_cases(th):
        assert case["sent_at"] not in text
    assert files_contain(sec.home, [b"Ostrogoth", b"QUINCUNX"]) == []


def test_reports_from_untrusted_nodes_or_replayed_are_not_taken(make_node) -> None:  # type: ignore[no-untyped-def]
    th, vn = make_node("Thailand", "TH"), make_node("Viet Nam", "VN")
    sec = make_node("UNODC", "TH", "secretariat")
    stranger = make_node("Stranger", "LA")
    introduce(th, vn)
    introduce(th, sec)
    introduce(vn, sec)
    introduce(th, stranger)  # Thailand trusts it; the secretariat does not
    with (vn.home / "seajust.toml").open("a") as config:
        config.write('reporting = "off"\n')  # Viet Nam switched reporting off
    for node in (th, vn, sec, stranger):
        node.start()
    seed(th, vn, 3, "a")
    th.api("POST", "/api/v1/stats/send", {})
    wait_until(lambda: sec.api("GET", "/api/v1/stats")["reporting_nodes"] == 1, what="Thailand's report")
    first = sec.api("GET", "/api/v1/stats")
    seed(th, vn, 3, "b")
    th.api("POST", "/api/v1/stats/send", {})
    wait_until(lambda: sec.api("GET", "/api/v1/stats")["totals"]["cases"] == 6, what="the updated report")
    wait_until(
        lambda: (
            {m["country"]: m["status"] for m in sec.api("GET", "/api/v1/stats/members")}.get("VN") == "not reporting"
        ),
        timeout=30,
        what="Viet Nam shown as not reporting",
    )
    assert {m["country"]: m["status"] for m in sec.api("GET", "/api/v1/stats/members")} == {
        "TH": "reported",
        "VN": "not reporting",
    }
    assert sec.api("GET", "/api/v1/stats")["not_reporting"] == ["VN"]

    # The stranger's signed report, handed to the secretariat by a node it does trust, is refused.
    stranger.api("POST", "/api/v1/stats/send", {})
    stranger.stop()
    opened = open_node(stranger.home, PASSPHRASE)
    try:
        forged = opened.store.entries_missing(report_doc(stranger.node_id), {})
    finally:
        opened.close()
    th.stop()
    # Directly: the secretariat does not even open a session with it.
    with pytest.raises(aiohttp.WSMessageTypeError):  # the secretariat closes the link instead of answering
        asyncio.run(inject_updates(sec, stranger.home, forged, report_doc(stranger.node_id)))
    # Relayed by a member it trusts: refused (a report goes to the secretariat from its author only).
    asyncio.run(inject_updates(sec, th.home, forged, report_doc(stranger.node_id)))
    rejected = sec.api("GET", "/api/v1/sync")["rejected"]
    assert rejected.get("untrusted_sender", 0) >= 1 and rejected.get("not_entitled", 0) == 1, rejected
    assert sec.api("GET", "/api/v1/stats")["reporting_nodes"] == 1

    # Thailand's first, older report sent again in a fresh session changes nothing.
    opened = open_node(th.home, PASSPHRASE)
    try:
        old = opened.store.entries_missing(report_doc(th.node_id), {})[:1]
    finally:
        opened.close()
    asyncio.run(inject_updates(sec, th.home, old, report_doc(th.node_id)))
    assert sec.api("GET", "/api/v1/stats")["totals"]["cases"] == 6 != first["totals"]["cases"]
