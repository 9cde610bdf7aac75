"""What a party may change in a case, judged on receipt: two nodes in process, one forging, one judging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pycrdt
import pytest
from nodeproc import forge_case_update

from crypto.authorship import sign_update
from crypto.doc_keys import decode_grant, encode_grant, issue_grant
from node import case_history
from node.crdt import DocumentChange
from node.documents import utc_now
from node.runtime import Node
from sync.errors import UpdateRejected
from sync.messages import SignedUpdate

Edit = Callable[[DocumentChange, Any, Node], None]


def forge(node: Node, doc_id: str, edit: Edit) -> SignedUpdate:
    return forge_case_update(node, doc_id, edit)


def entry(node: Node, doc: Any, **fields: Any) -> dict[str, Any]:
    return case_history.make_entry(
        node.identity, prev=case_history.heads(doc.items("history")), user="x", at=utc_now(), **fields
    )


def _history(change: DocumentChange) -> Any:
    return change._doc.get("history", type=pycrdt.Array)  # raw CRDT access, as a modified node could


FORGERIES: dict[str, tuple[Edit, str]] = {
    "requested side rewrites the request": (
        lambda c, d, n: c.put_record("case", "main", {"summary": "forged"}),
        "not_permitted",
    ),
    "changes the parties": (
        lambda c, d, n: c.put_record("case", "main", {"requested": "0000-0000-0000-0000-0"}),
        "not_permitted",
    ),
    "writes the other side's reference": (
        lambda c, d, n: c.put_record("refs", d.record("case", "main")["requesting"], {"reference": "X"}),
        "not_permitted",
    ),
    "removes an attachment": (
        lambda c, d, n: c.delete_record("attachments", next(iter(d.records("attachments")))),
        "not_permitted",
    ),
    "replaces an attachment's file": (
        lambda c, d, n: c.put_record("attachments", next(iter(d.records("attachments"))), {"sha256": "0" * 64}),
        "not_permitted",
    ),
    "attributes an attachment to the other side": (
        lambda c, d, n: c.put_record(
            "attachments",
            "ATT1",
            {
                "id": "ATT1",
                "name": "x.pdf",
                "media_type": "application/pdf",
                "size": 1,
                "sha256": "0" * 64,
                "blob": "0" * 64,
                "added_by": d.record("case", "main")["requesting"],
                "added_at": utc_now(),
            },
        ),
        "not_permitted",
    ),
    "adds an attachment with a header-breaking name": (
        lambda c, d, n: c.put_record(
            "attachments",
            "ATT2",
            {
                "id": "ATT2",
                "name": "x\r\nSet-Cookie: a=b",
                "media_type": "application/pdf",
                "size": 1,
                "sha256": "0" * 64,
                "blob": "0" * 64,
                "added_by": n.node_id,
                "added_at": utc_now(),
            },
        ),
        "not_permitted",
    ),
    "deletes a history entry": (lambda c, d, n: _history(c).__delitem__(1), "bad_history"),
    "repeats a history entry": (lambda c, d, n: _history(c).append(dict(d.items("history")[1])), "bad_history"),
    "adds an entry in the other side's name": (
        lambda c, d, n: c.append(
            "history", {**entry(n, d, type="note", text="hi"), "node": d.record("case", "main")["requesting"]}
        ),
        "bad_history",
    ),
    "moves the case as the other side would": (
        lambda c, d, n: c.append(
            "history", entry(n, d, type="transition", **{"from": "sent", "to": "withdrawn", "reason": ""})
        ),
        "illegal_transition",
    ),
    "skips a step": (
        lambda c, d, n: c.append(
            "history", entry(n, d, type="transition", **{"from": "sent", "to": "executed", "reason": ""})
        ),
        "illegal_transition",
    ),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_change_by_the_counterpart_is_refused_and_nothing_applied(
    case: tuple[Node, Node, str], name: str
) -> None:
    th, vn, doc_id = case
    edit, reason = FORGERIES[name]
    before = (th.store.versions(doc_id), th.cases.get(doc_id.split("/")[1]))
    with pytest.raises(UpdateRejected) as refused:
        th.store.apply_remote([forge(vn, doc_id, edit)], via=vn.node_id)
    assert refused.value.reason == reason
    assert (th.store.versions(doc_id), th.cases.get(doc_id.split("/")[1])) == before


@pytest.mark.parametrize("body", [b"\x00", b"\xff" * 40, b"not a CRDT update at all"])
def test_a_case_update_that_is_not_a_crdt_update_is_refused(case: tuple[Node, Node, str], body: bytes) -> None:
    """Sealed with the case key and signed by a party, but no CRDT update: its trial refuses it, nothing applied."""
    th, vn, doc_id = case
    cipher = vn.case_keys.cipher(doc_id)
    assert cipher is not None
    sealed = cipher.seal_update(body, author=vn.node_id)
    seq = vn.store.versions(doc_id).get(vn.node_id, 0) + 1
    sig = sign_update(vn.identity, doc_id=doc_id, seq_from=seq, seq_to=seq, update=sealed)
    before = (th.store.versions(doc_id), th.cases.get(doc_id.split("/")[1]))
    with pytest.raises(UpdateRejected) as refused:
        th.store.apply_remote([SignedUpdate(doc_id, vn.node_id, seq, seq, sealed, sig)], via=vn.node_id)
    assert refused.value.reason == "malformed_update"
    assert (th.store.versions(doc_id), th.cases.get(doc_id.split("/")[1])) == before


def test_the_counterparts_own_moves_are_accepted(case: tuple[Node, Node, str]) -> None:
    th, vn, doc_id = case
    case_id = doc_id.split("/")[1]
    vn.cases.update(case_id, {"reference": "VN-9"}, actor="tests")
    vn.cases.transition(case_id, {"to": "acknowledged"}, actor="tests")
    vn.cases.add_note(case_id, {"text": "received"}, actor="tests")
    vn.cases.add_attachment(case_id, name="b.pdf", media_type="application/pdf", data=b"%PDF-2", meta={}, actor="t")
    assert (
        len(th.store.apply_remote(vn.store.entries_missing(doc_id, th.store.versions(doc_id)), via=vn.node_id).stored)
        == 4
    )
    seen = th.cases.get(case_id)
    assert (seen["status"], seen["references"]["requested"], seen["notes"][-1]["text"]) == (
        "acknowledged",
        "VN-9",
        "received",
    )
    assert th.cases.verify(case_id)["ok"]


def test_a_node_outside_the_case_can_neither_read_nor_write_it(
    pair: tuple[Node, Node, Node], case: tuple[Node, Node, str]
) -> None:
    th, _, doc_id = case
    ph = pair[2]
    grant = th.case_keys.grant_bytes(doc_id)
    assert grant is not None
    with pytest.raises(UpdateRejected) as refused:
        ph.case_keys.accept_grants([grant], via=th.node_id)
    assert refused.value.reason == "not_addressed"
    with pytest.raises(UpdateRejected):
        ph.store.apply_remote(th.store.entries_missing(doc_id, {}), via=th.node_id)
    assert ph.store.doc_ids("case/") == []


def test_a_later_grant_cannot_take_the_case_over(case: tuple[Node, Node, str], pair: tuple[Node, Node, Node]) -> None:
    th, vn, doc_id = case
    ph = pair[2]
    # Viet Nam re-issues the grant at version 2 making the Philippines the requesting side instead of Thailand.
    key = vn.case_keys._held[doc_id].key
    kx = {n.node_id: n.identity.public.kx_key for n in (vn, ph)}
    forged = issue_grant(
        vn.identity,
        doc_id=doc_id,
        version=2,
        key=key,
        parties={vn.node_id: ("requested", kx[vn.node_id]), ph.node_id: ("requesting", kx[ph.node_id])},
    )
    with pytest.raises(UpdateRejected) as refused:
        th.case_keys.accept_grants([encode_grant(forged)], via=vn.node_id)
    assert refused.value.reason in ("bad_grant", "not_addressed")
    assert th.case_keys.roles(doc_id)[th.node_id] == "requesting"
    assert decode_grant(th.case_keys.grant_bytes(doc_id) or b"").version == 1
