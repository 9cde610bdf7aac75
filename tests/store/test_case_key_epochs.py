"""Case key epochs and crypto-shredding, on two (or three) nodes in process.

A case moves to a new key on schedule and when a party is revoked; the history stays readable to
its parties, a key taken before the move opens nothing said after it, and a revoked party is left
out. A closed case past retention is shredded: keys and content gone, a tombstone left, nothing
taken back from peers.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from nodeproc import PASSPHRASE
from nodeproc import deliver_case as deliver

from crypto.doc_keys import DocCipher, DocDecryptError
from node.errors import Forbidden, NotFound
from node.runtime import Node, open_node
from sync.errors import UpdateRejected


def note(node: Node, doc_id: str, text: str) -> None:
    node.cases.add_note(doc_id.removeprefix("case/"), {"text": text}, actor="tests")


def test_a_new_epoch_keeps_the_history_readable_and_locks_out_the_old_key(case: tuple[Node, Node, str]) -> None:
    th, vn, doc_id = case
    old_key = th.case_keys._held[doc_id].key
    assert th.case_keys.rekey(doc_id)
    deliver(th, vn, doc_id)  # the new grant travels to the counterpart
    note(th, doc_id, "after the new epoch")
    stored = deliver(th, vn, doc_id)
    assert stored, "the new note reached the counterpart"
    assert "after the new epoch" in str(vn.cases.get(doc_id.removeprefix("case/")))
    with pytest.raises(DocDecryptError):  # a copy of the old key does not open what was said after
        DocCipher(old_key, doc_id).open_update(stored[-1].body, author=th.node_id)
    # The history sealed with the old key still opens: the grant carried the older key along.
    assert vn.case_keys._held[doc_id].older == (old_key,)
    assert vn.cases.get(doc_id.removeprefix("case/"))["summary"] == "original"


def test_revoking_a_party_moves_the_case_to_a_key_without_it(
    case: tuple[Node, Node, str], pair: tuple[Node, Node, Node]
) -> None:
    th, vn, doc_id = case
    ph = pair[2]
    th.cases.share(doc_id.removeprefix("case/"), {"node_id": ph.node_id}, actor="tests")
    deliver(th, vn, doc_id)
    deliver(th, ph, doc_id)
    assert set(vn.case_keys.roles(doc_id)) == {th.node_id, vn.node_id, ph.node_id}
    # Dropping a party that is not revoked is refused by the other party.
    th.case_keys.rekey(doc_id, drop=[ph.node_id])
    with pytest.raises(UpdateRejected) as refused:
        vn.case_keys.accept_grants([th.case_keys.grant_bytes(doc_id) or b""], via=th.node_id)
    assert refused.value.reason == "bad_grant"
    vn.peers.revoke(ph.node_id, "compromised", actor="tests")
    vn.case_keys.accept_grants([th.case_keys.grant_bytes(doc_id) or b""], via=th.node_id)
    assert set(vn.case_keys.roles(doc_id)) == {th.node_id, vn.node_id}
    note(th, doc_id, "not for the revoked node")
    assert deliver(th, vn, doc_id)
    with pytest.raises(UpdateRejected) as not_addressed:  # the revoked node is not in the new grant
        ph.case_keys.accept_grants([th.case_keys.grant_bytes(doc_id) or b""], via=th.node_id)
    assert not_addressed.value.reason == "not_addressed"


def test_both_parties_moving_to_a_new_key_at_once_keep_both(case: tuple[Node, Node, str]) -> None:
    th, vn, doc_id = case
    th.case_keys.rekey(doc_id)
    vn.case_keys.rekey(doc_id)
    th_grant, vn_grant = th.case_keys.grant_bytes(doc_id), vn.case_keys.grant_bytes(doc_id)
    assert th_grant and vn_grant
    th.case_keys.accept_grants([vn_grant], via=vn.node_id)
    vn.case_keys.accept_grants([th_grant], via=th.node_id)
    assert set(th.case_keys._held[doc_id].keys) == set(vn.case_keys._held[doc_id].keys)
    note(th, doc_id, "sealed with Thailand's new key")
    note(vn, doc_id, "sealed with Viet Nam's new key")
    deliver(th, vn, doc_id)
    deliver(vn, th, doc_id)
    for node in (th, vn):
        text = str(node.cases.get(doc_id.removeprefix("case/")))
        assert "Thailand's new key" in text and "Viet Nam's new key" in text


def test_only_the_requesting_side_rotates_on_schedule(case: tuple[Node, Node, str]) -> None:
    th, vn, doc_id = case
    assert th.retention.rotate_due() == []  # the key is new
    th.retention.rotate_after_days = vn.retention.rotate_after_days = -1  # off
    assert th.retention.rotate_due() == []
    for node in (th, vn):
        with node.db.write() as db:
            db.execute("UPDATE case_keys SET key_since = '2000-01-01T00:00:00Z'")
        node.case_keys.load()
        node.retention.rotate_after_days = 30
    assert th.retention.rotate_due() == [doc_id]
    assert vn.retention.rotate_due() == []


def close(node: Node, case_id: str) -> None:
    node.cases.transition(case_id, {"to": "withdrawn", "reason": "no longer needed"}, actor="tests")
    node.cases.transition(case_id, {"to": "closed"}, actor="tests")


def test_a_closed_case_past_retention_is_shredded_for_good(
    case: tuple[Node, Node, str], pair: tuple[Node, Node, Node]
) -> None:
    th, vn, doc_id = case
    case_id = doc_id.removeprefix("case/")
    close(th, case_id)
    deliver(th, vn, doc_id)
    captured = th.store.entries_missing(doc_id, {})
    th.retention.shred_after_days = 30
    assert th.retention.shred_due() == []  # closed today: kept
    th.retention._today = lambda: date.today() + timedelta(days=31)
    assert th.retention.shred_due() == [case_id]

    assert th.db.query("SELECT count(*) AS n FROM cases")[0]["n"] == 0
    assert th.db.query("SELECT count(*) AS n FROM case_text")[0]["n"] == 0  # no plain text left in the search index
    assert th.db.query("SELECT count(*) AS n FROM doc_log WHERE doc_id = ?", (doc_id,))[0]["n"] == 0
    assert th.case_keys.cipher(doc_id) is None and not th.case_keys.has(doc_id)
    assert th.db.query("SELECT doc_key FROM case_keys WHERE doc_id = ?", (doc_id,))[0]["doc_key"] == b""
    with pytest.raises(NotFound):
        note(th, doc_id, "too late")
    with pytest.raises(Forbidden):
        th.store.commit_local(doc_id, lambda change: change.append("history", {}), actor="tests", action="x")
    # The counterpart still has its copy; offering it back changes nothing here.
    grant = vn.case_keys.grant_bytes(doc_id)
    assert grant is not None
    th.case_keys.accept_grants([grant], via=vn.node_id)
    assert not th.case_keys.has(doc_id)
    assert th.store.apply_remote(captured, via=vn.node_id).stored == []
    assert th.store.entries_missing(doc_id, {}) == []
    assert th.store.versions(doc_id) == vn.store.versions(doc_id)  # the tombstone: peers see nothing to offer
    audit = th.db.query("SELECT action FROM audit_log WHERE action = 'case.shredded'")
    assert len(audit) == 1


def test_shredding_survives_a_restart(case: tuple[Node, Node, str]) -> None:
    th, _, doc_id = case
    case_id = doc_id.removeprefix("case/")
    close(th, case_id)
    th.retention.shred(case_id, doc_id)
    home = th.home.path
    th.close()
    again = open_node(home, PASSPHRASE)
    try:
        assert again.store.forgotten(doc_id) and again.store.get(doc_id) is None
        assert not again.case_keys.has(doc_id)
        assert doc_id not in again.case_keys.doc_ids()
    finally:
        again.close()


def test_sharing_starts_a_new_epoch_and_the_new_party_reads_the_history(
    case: tuple[Node, Node, str], pair: tuple[Node, Node, Node]
) -> None:
    th, vn, doc_id = case
    ph = pair[2]
    before = th.case_keys._held[doc_id].key
    th.cases.share(doc_id.removeprefix("case/"), {"node_id": ph.node_id}, actor="tests")
    assert th.case_keys._held[doc_id].key != before and th.case_keys._held[doc_id].older[0] == before
    note(th, doc_id, "after the share")
    deliver(th, ph, doc_id)
    shared = ph.cases.get(doc_id.removeprefix("case/"))
    assert shared["summary"] == "original" and "after the share" in str(shared)  # both epochs open
    deliver(th, vn, doc_id)
    assert "after the share" in str(vn.cases.get(doc_id.removeprefix("case/")))
