"""Case records between real node processes on loopback: shared by the two parties only, end to end."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pycrdt
import pytest
from nodeproc import (
    PASSPHRASE,
    ApiError,
    NodeProc,
    dump,
    files_contain,
    forge_case_update,
    inject_updates,
    introduce,
    wait_until,
)

from node import case_history
from node.cases import case_doc
from node.documents import utc_now
from node.runtime import open_node
from sync.messages import SignedUpdate

pytestmark = pytest.mark.processes

SECRET_SUMMARY = "Laundering through Zephyrine Holdings account 7731-QX-BANANA"
SECRET_NOTE = "Witness Porntip Quasarwell will testify on 3 March"
SECRET_FILE = b"%PDF-1.4 bank statement of Zephyrine Holdings QUOKKA-99187\n" + bytes(range(256)) * 4000


def new_case(requesting: NodeProc, requested: NodeProc, **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "mla",
        "counterpart": requested.node_id,
        "reference": "OAG-2026-117",
        "summary": SECRET_SUMMARY,
        "offences": ["money_laundering", "fraud"],
        "measures": ["bank_records"],
        "urgency": "normal",
        "requested_by": "2027-06-30",
        "legal_basis": ["asean_mlat"],
        "languages": ["en"],
        **extra,
    }
    case = requesting.api("POST", "/api/v1/cases", body)
    assert isinstance(case, dict)
    return case


def case_on(node: NodeProc, case_id: str) -> dict[str, Any] | None:
    try:
        found = node.api("GET", f"/api/v1/cases/{case_id}")
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    assert isinstance(found, dict)
    return found


def status_on(node: NodeProc, case_id: str) -> str | None:
    case = case_on(node, case_id)
    return None if case is None else str(case["status"])


def move(node: NodeProc, case_id: str, to: str, reason: str = "") -> dict[str, Any]:
    result = node.api("POST", f"/api/v1/cases/{case_id}/transitions", {"to": to, "reason": reason})
    assert isinstance(result, dict)
    return result


def upload(node: NodeProc, case_id: str, name: str, data: bytes, media_type: str = "application/pdf") -> Any:
    query = urllib.parse.urlencode({"name": name, "language": "en"})
    request = urllib.request.Request(f"{node.url}/api/v1/cases/{case_id}/attachments?{query}", data=data, method="POST")
    request.add_header("Authorization", f"Bearer {node.token}")
    request.add_header("Content-Type", media_type)
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def download(node: NodeProc, case_id: str, attachment_id: str) -> bytes:
    request = urllib.request.Request(f"{node.url}/api/v1/cases/{case_id}/attachments/{attachment_id}")
    request.add_header("Authorization", f"Bearer {node.token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            data: bytes = resp.read()
            return data
    except urllib.error.HTTPError as exc:
        with exc:
            raise ApiError(exc.code, json.loads(exc.read() or b"null")) from None


def test_case_round_trip_between_two_authorities(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()

    case = new_case(th, vn)
    assert case["status"] == "draft"
    assert case["side"] == "requesting"
    case_id = case["id"]
    wait_until(lambda: case_on(vn, case_id) is not None, what="the case to reach Viet Nam")
    seen = case_on(vn, case_id)
    assert seen is not None
    assert (seen["id"], seen["status"], seen["summary"]) == (case_id, "draft", SECRET_SUMMARY)
    assert seen["side"] == "requested"
    assert seen["references"]["requesting"] == "OAG-2026-117"

    # Only the requested side acknowledges; only the requesting side sends.
    with pytest.raises(ApiError) as refused:
        move(vn, case_id, "sent")
    assert refused.value.status == 409
    move(th, case_id, "sent")
    wait_until(lambda: status_on(vn, case_id) == "sent", what="sent to reach Viet Nam")
    assert any(row["id"] == case_id for row in vn.api("GET", "/api/v1/cases?needs_action=true"))
    with pytest.raises(ApiError) as refused:
        move(th, case_id, "acknowledged")
    assert refused.value.status == 409
    move(vn, case_id, "acknowledged")
    wait_until(lambda: status_on(th, case_id) == "acknowledged", what="the acknowledgement to reach Thailand")

    vn.api("PATCH", f"/api/v1/cases/{case_id}", {"reference": "MPS-VN-88"})
    move(vn, case_id, "in_execution")
    # The requested side returns the evidence: a 26 MB scan arrives byte-identical.
    evidence = os.urandom(26 * 1024 * 1024)
    returned = upload(vn, case_id, "bank-records-scan.pdf", evidence)
    assert returned["size"] == len(evidence)
    wait_until(lambda: download(th, case_id, returned["id"]) == evidence, timeout=60, what="the scan to reach Thailand")
    move(vn, case_id, "executed", "bank records produced")
    wait_until(lambda: status_on(th, case_id) == "executed", what="executed to reach Thailand")
    th_view = case_on(th, case_id)
    assert th_view is not None
    assert th_view["references"] == {"requesting": "OAG-2026-117", "requested": "MPS-VN-88"}
    move(th, case_id, "closed")
    wait_until(lambda: status_on(vn, case_id) == "closed", what="closed to reach Viet Nam")
    for node in (th, vn):
        report = node.api("GET", f"/api/v1/cases/{case_id}/verify")
        assert report["ok"], report
    listed = th.api("GET", "/api/v1/cases?q=Zephyrine")
    assert [row["id"] for row in listed] == [case_id]


def test_concurrent_notes_on_both_sides_survive(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()
    case_id = new_case(th, vn)["id"]
    wait_until(lambda: case_on(vn, case_id) is not None, what="the case to reach Viet Nam")
    vn.stop()  # both sides write while apart
    for i in range(3):
        th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": f"TH note {i}"})
    vn.start()
    for i in range(3):
        vn.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": f"VN note {i}"})
    expected = {f"TH note {i}" for i in range(3)} | {f"VN note {i}" for i in range(3)}

    def notes(node: NodeProc) -> set[str]:
        found = case_on(node, case_id)
        return {n["text"] for n in found["notes"]} if found else set()

    wait_until(lambda: notes(th) == expected and notes(vn) == expected, what="all six notes on both sides")
    assert case_on(th, case_id)["history"] == case_on(vn, case_id)["history"]  # type: ignore[index]


def test_third_authority_and_secretariat_never_read_a_case(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    ph = make_node("Philippines", "PH")
    sec = make_node("UNODC", "TH", "secretariat")
    for a, b in ((th, vn), (th, ph), (th, sec), (vn, ph), (vn, sec), (ph, sec)):
        introduce(a, b)
    for node in (th, vn, ph, sec):
        node.start()
    # A contact entry travels to everyone, proving the third parties are connected and syncing.
    th.api("POST", "/api/v1/contacts", {"name": "Somchai"})
    case_id = new_case(th, vn)["id"]
    th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": SECRET_NOTE})
    attachment = upload(th, case_id, "statement.pdf", SECRET_FILE)
    wait_until(
        lambda: any(n["text"] == SECRET_NOTE for n in (case_on(vn, case_id) or {"notes": []})["notes"]),
        what="the note to reach Viet Nam",
    )
    wait_until(lambda: download(vn, case_id, attachment["id"]) == SECRET_FILE, what="the file to reach Viet Nam")
    wait_until(
        lambda: all("Somchai" in {c["name"] for c in n.contacts()} for n in (ph, sec)), what="directory everywhere"
    )
    vn.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "reply from Viet Nam"})
    wait_until(lambda: len((case_on(th, case_id) or {"notes": []})["notes"]) == 2, what="the reply")
    for outsider in (ph, sec):
        assert case_on(outsider, case_id) is None
        assert outsider.api("GET", "/api/v1/cases") == []
    for outsider in (ph, sec):
        outsider.stop()
        text = dump(outsider) + outsider.log()
        for secret in (SECRET_SUMMARY, SECRET_NOTE, "Zephyrine", "QUOKKA-99187", "OAG-2026-117", case_id):
            assert secret not in text, f"{secret!r} found on {outsider.name}"
        assert files_contain(outsider.home, [b"Zephyrine", b"QUOKKA-99187", SECRET_NOTE.encode()]) == []
    # The parties hold it; their logs do not show it either.
    for party in (th, vn):
        assert "Zephyrine" not in party.log()
        assert SECRET_NOTE not in party.log()


def _forge(home: Path, case_id: str, edit: Any) -> tuple[str, list[SignedUpdate]]:
    """A forged update of the case by the (stopped) node in `home`: `edit(change, doc, identity)`."""
    opened = open_node(home, PASSPHRASE)
    try:
        doc_id = case_doc(case_id)
        return doc_id, [forge_case_update(opened, doc_id, lambda c, d, n: edit(c, d, n.identity))]
    finally:
        opened.close()


def test_forged_case_changes_from_the_counterpart_are_rejected(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    vn.start()
    case_id = new_case(th, vn)["id"]
    move(th, case_id, "sent")
    wait_until(lambda: status_on(vn, case_id) == "sent", what="the case to reach Viet Nam")
    vn.stop()
    before = case_on(th, case_id)

    def moves_to(to: str) -> Any:
        """A transition from "sent" to `to`, signed by the forging node itself."""

        def edit(change: Any, doc: Any, me: Any) -> None:
            heads = case_history.heads(doc.items("history"))
            fields = {"from": "sent", "to": to, "reason": ""}
            change.append(
                "history",
                case_history.make_entry(me, prev=heads, type="transition", user="x", at=utc_now(), **fields),
            )

        return edit

    def rewrites_summary(change: Any, doc: Any, me: Any) -> None:  # the request is the requesting side's
        change.put_record("case", "main", {"summary": "FORGED-SUMMARY-XYZ"})

    def rewrites_history(change: Any, doc: Any, me: Any) -> None:  # replaces Thailand's entry by an altered copy
        history = change._doc.get("history", type=pycrdt.Array)  # raw CRDT access: what a modified node could do
        original = dict(history[1])
        del history[1]
        history.insert(1, {**original, "to": "withdrawn"})

    for forge, reason in (
        (moves_to("executed"), "illegal_transition"),  # skipping acknowledged and in_execution
        (moves_to("withdrawn"), "illegal_transition"),  # only the requesting side withdraws
        (rewrites_summary, "not_permitted"),
        (rewrites_history, "bad_history"),
    ):
        doc_id, entries = _forge(vn.home, case_id, forge)
        asyncio.run(inject_updates(th, vn.home, entries, doc_id))
        rejected = th.api("GET", "/api/v1/sync")["rejected"]
        assert rejected.get(reason, 0) >= 1, rejected
    after = case_on(th, case_id)
    assert after is not None and before is not None
    assert (after["status"], after["summary"], after["history"]) == ("sent", SECRET_SUMMARY, before["history"])
    assert th.api("GET", "/api/v1/sync")["rejected"]["illegal_transition"] == 2
    assert "FORGED-SUMMARY-XYZ" not in th.log()
    # The genuine counterpart still works afterwards.
    vn.start()
    move(vn, case_id, "acknowledged")
    wait_until(lambda: status_on(th, case_id) == "acknowledged", what="a real acknowledgement")


def test_attachment_tampered_at_rest_on_the_holder_is_refused(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    introduce(th, vn)
    th.start()
    case_id = new_case(th, vn)["id"]
    attachment = upload(th, case_id, "statement.pdf", SECRET_FILE)
    assert download(th, case_id, attachment["id"]) == SECRET_FILE
    # Thailand's stored (encrypted) file is altered before Viet Nam fetches it.
    stored = next(p for p in (th.home / "blobs").rglob(attachment["blob"]))
    damaged = bytearray(stored.read_bytes())
    damaged[100] ^= 0x01
    stored.write_bytes(bytes(damaged))
    vn.start()
    wait_until(lambda: case_on(vn, case_id) is not None, what="the case to reach Viet Nam")
    wait_until(lambda: vn.api("GET", "/api/v1/sync")["rejected"].get("tampered_blob", 0) >= 1, what="the refusal")
    seen = case_on(vn, case_id)
    assert seen is not None and seen["attachments"][0]["available"] is False
    with pytest.raises(ApiError) as missing:
        download(vn, case_id, attachment["id"])
    assert missing.value.status == 404
    assert list((vn.home / "blobs").rglob(attachment["blob"])) == []
    # Restored on the holder, the file arrives intact.
    stored.write_bytes(bytes(damaged[:100]) + bytes([damaged[100] ^ 0x01]) + bytes(damaged[101:]))
    wait_until(lambda: download(vn, case_id, attachment["id"]) == SECRET_FILE, timeout=30, what="the intact file")


def test_explicit_share_widens_a_case_to_a_third_authority_only(make_node) -> None:  # type: ignore[no-untyped-def]
    th = make_node("Thailand", "TH")
    vn = make_node("Viet Nam", "VN")
    ph = make_node("Philippines", "PH")
    sec = make_node("UNODC", "TH", "secretariat")
    for a, b in ((th, vn), (th, ph), (vn, ph), (th, sec), (vn, sec), (ph, sec)):
        introduce(a, b)
    for node in (th, ph, sec):
        node.start()
    case_id = new_case(th, vn)["id"]
    th.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "before the share"})
    with pytest.raises(ApiError) as refused:
        th.api("POST", f"/api/v1/cases/{case_id}/share", {"node_id": sec.node_id})
    assert refused.value.status == 403
    assert case_on(ph, case_id) is None
    th.api("POST", f"/api/v1/cases/{case_id}/share", {"node_id": ph.node_id})
    wait_until(lambda: case_on(ph, case_id) is not None, what="the shared case to reach the Philippines")
    on_ph = case_on(ph, case_id)
    assert on_ph is not None
    assert on_ph["side"] == "shared" and on_ph["summary"] == SECRET_SUMMARY
    assert [n["text"] for n in on_ph["notes"]] == ["before the share"]
    with pytest.raises(ApiError) as refused:
        move(ph, case_id, "withdrawn")
    assert refused.value.status == 409
    ph.api("POST", f"/api/v1/cases/{case_id}/notes", {"text": "the Philippines holds related records"})
    # Viet Nam was offline during the share: it learns the wider party list when it comes back.
    vn.start()
    wait_until(
        lambda: (
            "the Philippines holds related records"
            in {n["text"] for n in (case_on(vn, case_id) or {"notes": []})["notes"]}
        ),
        what="the third party's note to reach Viet Nam",
    )
    assert vn.api("GET", "/api/v1/sync")["rejected"] == {}
    assert case_on(sec, case_id) is None
