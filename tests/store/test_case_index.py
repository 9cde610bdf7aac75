"""The case index: the SQLite projection that lists, filters, "needs action" and search read instead of documents.

An upsert replaces a case's row, search text and attachments (keeping which blobs are here); every filter narrows
as it says; search finds substrings in scripts written without spaces and never fails on what an officer types;
each needs-action reason appears exactly when its rule says, and the SQL narrowing never loses a case the rule
would pick; a node with 100,000 cases still answers from indexes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import node.storage
from node.case_index import _FEW, _PROBED, FINAL, CaseFilter, CaseIndex, Reminders, ageing, reasons
from node.migrations import LATEST_VERSION, MIGRATIONS
from node.storage import Database

TODAY = date(2025, 3, 10)
REMINDERS = Reminders(ack_days=10, nearing_days=7)
ME, THEM, OTHER = "node-th", "node-kh", "node-vn"


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def db(tmp_path: Path, key: bytes) -> Iterator[Database]:
    database = Database(tmp_path / "node.db", key)
    yield database
    database.close()


@pytest.fixture
def index(db: Database) -> CaseIndex:
    return CaseIndex(db)


def quiet(case_id: str = "C-1", **changes: Any) -> dict[str, Any]:
    """A case this node sent, acknowledged by the counterpart, with no deadline: nothing to do."""
    row: dict[str, Any] = {
        "case_id": case_id,
        "doc_id": f"doc-{case_id}",
        "kind": "mla",
        "status": "acknowledged",
        "side": "requesting",
        "counterpart": THEM,
        "requesting": ME,
        "requested": THEM,
        "requesting_country": "TH",
        "requested_country": "KH",
        "reference": f"TH/OAG/{case_id}",
        "counterpart_reference": None,
        "urgency": "normal",
        "requested_by": None,
        "created_at": "2025-01-02T08:00:00+00:00",
        "sent_at": "2025-01-03T08:00:00+00:00",
        "acknowledged_at": "2025-01-05T08:00:00+00:00",
        "closed_at": None,
        "last_action_at": "2025-01-05T08:00:00+00:00",
        "status_changed_at": "2025-01-05T08:00:00+00:00",
        "reminded_at": None,
        "offences": ["money_laundering"],
        "measures": ["bank_records"],
        "summary": "Bank records of a shell company",
        "updated_at": "2025-01-05T08:00:00+00:00",
    }
    row.update(changes)
    return row


def put(
    db: Database,
    index: CaseIndex,
    row: dict[str, Any],
    notes: tuple[str, ...] = (),
    attachments: tuple[dict[str, Any], ...] = (),
) -> None:
    with db.write() as w:
        index.upsert(w, row, notes=entries(notes), attachments=attachments)


def entries(notes: tuple[str, ...]) -> list[tuple[str, str]]:
    """Notes as the history gives them: (entry id, text), the id derived from the text as a hash would be."""
    return [(hashlib.sha256(text.encode()).hexdigest(), text) for text in notes]


def search_rows(db: Database) -> int:
    return int(db.query("SELECT count(*) AS n FROM case_text")[0]["n"])


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["case_id"] for r in rows]


def find(index: CaseIndex, **criteria: Any) -> list[str]:
    return ids(index.search(CaseFilter(**criteria), today=TODAY, reminders=REMINDERS))


# --- migration ---------------------------------------------------------------------------------------------------


def test_new_database_has_the_case_tables(db: Database) -> None:
    assert db.schema_version() == LATEST_VERSION == len(MIGRATIONS)
    assert {"case_keys", "cases", "case_text", "case_attachments"} <= set(db.db.table_names())
    fts = db.query("SELECT sql FROM sqlite_master WHERE name = 'case_text'")[0]["sql"]
    assert "trigram" in fts  # this build has it: the unicode61 fallback is for builds that do not
    indexes = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {
        "cases_status",
        "cases_counterpart",
        "cases_kind",
        "cases_requested_by",
        "cases_last_action_at",
        "case_attachments_have",
        "case_attachments_case_id",
        "cases_case_id",
    } <= indexes


def test_a_version_1_database_is_migrated_and_keeps_its_data(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node.storage, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(node.storage, "LATEST_VERSION", 1)
    old = Database(tmp_path / "node.db", key)
    assert old.schema_version() == 1
    assert "cases" not in old.db.table_names()
    with old.write() as w:
        w.table("api_tokens").insert({"token_hash": "h", "label": "kept", "created_at": "t"})
    old.close()
    monkeypatch.undo()

    new = Database(tmp_path / "node.db", key)
    assert new.schema_version() == LATEST_VERSION
    assert new.query("SELECT label FROM api_tokens") == [{"label": "kept"}]
    index = CaseIndex(new)
    put(new, index, quiet("C-1", summary="after the upgrade"))
    assert find(index, q="upgrade") == ["C-1"]
    new.close()


def test_search_text_of_one_row_per_case_moves_to_a_row_per_note(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A version 7 database kept all of a case's notes in one search row: after the upgrade the same searches
    find the same cases, and the case's next change replaces that row by one row per note."""
    monkeypatch.setattr(node.storage, "MIGRATIONS", MIGRATIONS[:7])
    monkeypatch.setattr(node.storage, "LATEST_VERSION", 7)
    old = Database(tmp_path / "node.db", key)
    with old.write() as w:
        for case_id, summary, notes in (
            ("C-1", "Seizure of a fishing vessel", "Called the harbour master\nThe vessel was boarded"),
            ("C-2", "Freezing of accounts", ""),
        ):
            w.execute("INSERT INTO cases (case_id, doc_id, status) VALUES (?, ?, 'sent')", (case_id, f"doc-{case_id}"))
            w.execute(
                "INSERT INTO cases_fts (rowid, case_id, reference, counterpart_reference, summary, notes, attachments) "
                "VALUES (?, ?, ?, '', ?, ?, 'warrant.pdf')",
                (int(case_id[2:]), case_id, f"TH/{case_id}", summary, notes),
            )
    old.close()
    monkeypatch.undo()

    with caplog.at_level(logging.INFO, logger="node.storage"):
        new = Database(tmp_path / "node.db", key)
    assert f"upgrading the database from schema 7 to {LATEST_VERSION}" in caplog.text  # the operator knows why
    index = CaseIndex(new)
    assert "cases_fts" not in new.db.table_names()
    assert find(index, q="harbour boarded") == ["C-1"]
    assert sorted(find(index, q="warrant")) == ["C-1", "C-2"]
    assert find(index, q="TH/C-2 accounts") == ["C-2"]
    assert search_rows(new) == 3  # two heads, and C-1's notes in one row

    put(new, index, quiet("C-1", summary="Seizure of a fishing vessel"), notes=("Called the harbour master",))
    assert new.query("SELECT entry FROM case_text WHERE entry != '' ORDER BY rowid") == [
        {"entry": entries(("Called the harbour master",))[0][0]}
    ]
    assert find(index, q="harbour") == ["C-1"] and find(index, q="boarded") == []
    put(new, index, quiet("C-3", summary="A new case after the upgrade"))
    assert find(index, q="upgrade") == ["C-3"]
    new.close()


# --- upsert --------------------------------------------------------------------------------------------------------


def test_upsert_replaces_the_row_and_the_search_text(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("C-1", summary="Seizure of a fishing vessel"), notes=("first note",))
    put(db, index, quiet("C-1", summary="Freezing of accounts", status="in_execution"), notes=("second note",))

    assert db.query("SELECT count(*) AS n FROM cases")[0]["n"] == 1
    assert search_rows(db) == 2  # the head and the one note the case has
    assert find(index, q="vessel") == []
    assert find(index, q="first") == []  # not a note of the case any more: its rows were written again
    assert find(index, q="accounts") == ["C-1"]
    assert find(index, q="second") == ["C-1"]
    case = index.get("C-1")
    assert case is not None
    assert case["status"] == "in_execution"
    assert case["offences"] == ["money_laundering"]
    assert case["measures"] == ["bank_records"]
    assert index.doc_id("C-1") == "doc-C-1"
    assert index.get("nope") is None
    assert index.doc_id("nope") is None


def _changes(db: Database, index: CaseIndex, row: dict[str, Any], notes: tuple[str, ...], **kw: Any) -> int:
    """Rows an upsert wrote (SQLite's own count, FTS shadow tables included)."""
    before = db.query("SELECT total_changes() AS n")[0]["n"]
    put(db, index, row, notes=notes, **kw)
    return int(db.query("SELECT total_changes() AS n")[0]["n"] - before)


def test_upsert_writes_only_what_changed(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("C-1"), notes=("first note",), attachments=(attachment("a1", "b1"),))
    # The same case again, re-projected a moment later: nothing is written, not even `updated_at`.
    assert (
        _changes(
            db,
            index,
            quiet("C-1", updated_at="2025-02-01T00:00:00Z"),
            ("first note",),
            attachments=(attachment("a1", "b1"),),
        )
        == 0
    )
    row = index.get("C-1")
    assert row is not None and row["updated_at"] == "2025-01-05T08:00:00+00:00"
    # A status change rewrites the row only; a note rewrites the search text too.
    changed = quiet("C-1", status="in_execution", updated_at="2025-02-02T00:00:00Z")
    assert _changes(db, index, changed, ("first note",), attachments=(attachment("a1", "b1"),)) == 1
    row = index.get("C-1")
    assert row is not None and (row["status"], row["updated_at"]) == ("in_execution", "2025-02-02T00:00:00Z")
    assert find(index, q="second") == []
    assert _changes(db, index, changed, ("first note", "second note"), attachments=(attachment("a1", "b1"),)) > 1
    assert find(index, q="second") == ["C-1"] and find(index, q="first") == ["C-1"]
    assert [a["attachment_id"] for a in index.attachments("C-1")] == ["a1"]
    # An attachment renamed is rewritten and found by its new name.
    put(db, index, changed, notes=("first note", "second note"), attachments=(attachment("a1", "b1", name="x.pdf"),))
    assert find(index, q="x.pdf") == ["C-1"]


def test_upsert_in_a_failed_transaction_leaves_nothing(db: Database, index: CaseIndex) -> None:
    with pytest.raises(RuntimeError), db.write() as w:
        index.upsert(w, quiet("C-1"), notes=entries(("n",)), attachments=[{"attachment_id": "a", "blob_id": "b"}])
        raise RuntimeError("the document change failed")
    assert index.get("C-1") is None
    assert search_rows(db) == 0
    assert index.attachments("C-1") == []


async def test_grouped_upserts_write_their_search_text_once_at_the_commit(db: Database, index: CaseIndex) -> None:
    """Search text waits for the group's commit (one FTS5 segment per commit, not per case); a unit undone takes
    its text back; a search in the same loop turn still finds what was written before it."""
    db.group_commits(asyncio.get_running_loop())
    mark = db.commit_mark()
    for n in range(1, 4):
        with db.write(grouped=True) as w:
            index.upsert(w, quiet(f"C-{n}", summary=f"vessel number {n}"), notes=(), attachments=())
    with pytest.raises(RuntimeError), db.write(grouped=True) as w:
        index.upsert(w, quiet("C-9", summary="vessel undone"), notes=(), attachments=())
        index.upsert(w, quiet("C-1", summary="vessel renamed by the undone unit"), notes=(), attachments=())
        raise RuntimeError("the document change failed")
    assert search_rows(db) == 0  # not yet: at the commit
    assert sorted(find(index, q="vessel")) == ["C-1", "C-2", "C-3"]  # a search writes it first
    assert find(index, q="renamed") == [] and find(index, q="undone") == []
    with db.write(grouped=True) as w:
        index.upsert(w, quiet("C-2", summary="freezing of accounts"), notes=(), attachments=())
    await db.durable(mark)
    assert search_rows(db) == 3
    assert find(index, q="accounts") == ["C-2"] and sorted(find(index, q="vessel")) == ["C-1", "C-3"]
    db.stop_grouping()


def test_a_removed_case_leaves_no_search_text(db: Database, index: CaseIndex) -> None:
    put(
        db,
        index,
        quiet("C-1", summary="Seizure of a fishing vessel"),
        notes=("a note",),
        attachments=(attachment("a1", "b1"),),
    )
    put(db, index, quiet("C-2", summary="another vessel"))
    with db.write() as w:
        index.remove(w, "C-1")
    assert index.get("C-1") is None and index.attachments("C-1") == []
    assert search_rows(db) == 1  # C-2's head
    assert find(index, q="vessel") == ["C-2"]


def test_a_note_is_indexed_once_whatever_the_length_of_its_case(db: Database, index: CaseIndex) -> None:
    """Each note is a search row written once: adding one to a long case writes no more than adding one to a short
    case (one search row for all the notes rewrote every note at every note)."""
    notes = tuple(
        f"hearing number {n} was adjourned by the court of first instance; counsel for the person sought asked for "
        f"time to answer the supplementary evidence sent on day {n}"
        for n in range(60)
    )
    put(db, index, quiet("C-1"), notes=notes[:1])
    second = _changes(db, index, quiet("C-1"), notes[:2])
    put(db, index, quiet("C-1"), notes=notes[:59])
    sixtieth = _changes(db, index, quiet("C-1"), notes)
    assert sixtieth == second
    assert search_rows(db) == 1 + 60
    assert find(index, q="number 59") == ["C-1"] and find(index, q="number 0") == ["C-1"]
    # Notes arrive in any order (a peer's concurrent note lands before one of ours): each is still indexed once.
    put(db, index, quiet("C-1"), notes=(notes[0], "a late note from the counterpart", *notes[1:]))
    assert search_rows(db) == 1 + 61
    assert find(index, q="late note") == ["C-1"]


def test_every_term_is_found_in_some_row_of_the_same_case(db: Database, index: CaseIndex) -> None:
    """A query's terms may sit in the summary and in different notes of one case; all of them must be in the case."""
    put(db, index, quiet("C-1", summary="Timber smuggling"), notes=("Witness heard in Phnom Penh", "Bank replied"))
    put(db, index, quiet("C-2", summary="Casino fraud"), notes=("Witness heard in Bangkok",))
    assert find(index, q="timber witness") == ["C-1"]
    assert find(index, q="penh replied smuggling") == ["C-1"]
    assert sorted(find(index, q="witness heard")) == ["C-1", "C-2"]
    assert find(index, q="timber bangkok") == []  # each term is in some case, never both in one
    assert find(index, q="in casino") == ["C-2"]  # a short term (LIKE) in a note, a long one in the summary
    assert sorted(find(index, q="Ba in")) == ["C-1", "C-2"]
    assert find(index, q="zz timber") == []


def test_a_removed_case_key_given_again_in_the_same_transaction_keeps_the_texts_apart(
    db: Database, index: CaseIndex
) -> None:
    put(db, index, quiet("C-1", summary="Seizure of a vessel"), notes=("The vessel was boarded",))
    with db.write() as w:
        index.remove(w, "C-1")
        index.upsert(
            w, quiet("C-2", summary="Freezing of accounts"), notes=entries(("Accounts frozen",)), attachments=()
        )
    assert find(index, q="vessel") == [] and find(index, q="boarded") == []
    assert find(index, q="frozen") == ["C-2"] and search_rows(db) == 2


def test_search_rows_are_deleted_without_a_trace_in_the_index(db: Database) -> None:
    """A shredded case's words must not stay in old index segments (FTS5's secure-delete)."""
    assert db.query("SELECT v FROM case_text_config WHERE k = 'secure-delete'") == [{"v": 1}]


def test_upsert_refuses_misnamed_columns(db: Database, index: CaseIndex) -> None:
    with pytest.raises(ValueError, match="statuss"):
        put(db, index, {**quiet("C-1"), "statuss": "sent"})
    with pytest.raises(ValueError, match="filename"):
        put(db, index, quiet("C-1"), attachments=({"attachment_id": "a", "blob_id": "b", "filename": "x"},))
    with pytest.raises(ValueError, match="doc_id"):
        put(db, index, quiet("C-1", doc_id=None))
    assert index.get("C-1") is None


def test_counts_by_status(db: Database, index: CaseIndex) -> None:
    for n, status in enumerate(["draft", "sent", "sent", "closed"]):
        put(db, index, quiet(f"C-{n}", status=status))
    assert index.counts() == {"draft": 1, "sent": 2, "closed": 1}


# --- filters -------------------------------------------------------------------------------------------------------


def test_each_filter_narrows_as_it_says(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("A", kind="mla", status="sent", side="requested", counterpart=THEM))  # awaiting my ack
    put(db, index, quiet("B", kind="extradition", status="in_execution", counterpart=OTHER, requested_by="2025-03-01"))
    put(db, index, quiet("C", kind="mla", status="executed", counterpart=THEM, requested_by="2025-03-01"))  # final
    put(db, index, quiet("D", kind="mla", status="acknowledged", counterpart=OTHER))

    assert sorted(find(index)) == ["A", "B", "C", "D"]
    assert sorted(find(index, status="sent")) == ["A"]
    assert sorted(find(index, kind="mla")) == ["A", "C", "D"]
    assert sorted(find(index, counterpart=OTHER)) == ["B", "D"]
    assert sorted(find(index, overdue=True)) == ["B"]
    assert sorted(find(index, overdue=False)) == ["A", "C", "D"]
    assert sorted(find(index, needs_action=True)) == ["A", "B"]
    assert sorted(find(index, needs_action=False)) == ["C", "D"]
    assert sorted(find(index, kind="mla", counterpart=THEM, needs_action=True)) == ["A"]
    assert find(index, status="nothing") == []


def test_order_is_urgent_first_then_latest_action_and_pages_do_not_overlap(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("old", last_action_at="2025-01-01T00:00:00Z"))
    put(db, index, quiet("new", last_action_at="2025-03-01T00:00:00Z"))
    put(db, index, quiet("urgent-old", urgency="urgent", last_action_at="2024-12-01T00:00:00Z"))
    put(db, index, quiet("never", last_action_at=None))

    assert find(index) == ["urgent-old", "new", "old", "never"]
    assert find(index, limit=2) == ["urgent-old", "new"]
    assert find(index, limit=2, offset=2) == ["old", "never"]
    assert find(index, limit=0) == []


def test_needs_action_pages_count_only_cases_that_need_action(db: Database, index: CaseIndex) -> None:
    for n in range(30):
        # every third case awaits this node's acknowledgement; the others need nothing
        put(db, index, quiet(f"C-{n:02}", status="sent" if n % 3 == 0 else "acknowledged", side="requested"))
    wanted = [f"C-{n:02}" for n in range(30) if n % 3 == 0]
    assert sorted(find(index, needs_action=True, limit=100)) == wanted
    first, second = find(index, needs_action=True, limit=4), find(index, needs_action=True, limit=4, offset=4)
    assert len(first) == len(second) == 4
    assert set(first).isdisjoint(second)
    assert len(find(index, needs_action=False, limit=100)) == 20
    assert ids(index.needs_action(today=TODAY, reminders=REMINDERS, limit=3)) == first[:3]


def test_rows_carry_their_reasons_and_ageing(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("A", status="sent", side="requested", requested_by="2025-03-12"))
    (row,) = index.search(CaseFilter(), today=TODAY, reminders=REMINDERS)
    assert row["needs_action"] == ["awaiting_my_acknowledgement", "due_soon"]
    assert row["ageing"]["days_left"] == 2
    assert row["offences"] == ["money_laundering"]


# --- search --------------------------------------------------------------------------------------------------------


@pytest.fixture
def texts(db: Database, index: CaseIndex) -> CaseIndex:
    put(db, index, quiet("EN", summary="Laundering of proceeds through casinos", reference="TH/OAG/2025/17"))
    put(db, index, quiet("TH", summary="การฟอกเงินผ่านบัญชีธนาคาร"))
    put(db, index, quiet("KM", summary="ការលាងលុយតាមធនាគារ"))
    put(db, index, quiet("VI", summary="Nguyễn Văn Hùng rửa tiền qua ngân hàng", counterpart_reference="VN-BTP-88"))
    put(
        db,
        index,
        quiet("NOTE", summary="Extradition of a fugitive"),
        notes=("Called the desk officer about the hearing date",),
        attachments=({"attachment_id": "att-1", "blob_id": "b1", "name": "arrest-warrant.pdf"},),
    )
    return index


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("casinos", ["EN"]),
        ("LAUNDERING", ["EN"]),  # case-insensitive
        ("ฟอกเงิน", ["TH"]),  # a Thai substring in a sentence without spaces
        ("บัญชี", ["TH"]),
        ("លាងលុយ", ["KM"]),
        ("rửa tiền", ["VI"]),
        ("rua tien", ["VI"]),  # Vietnamese typed without diacritics
        ("2025/17", ["EN"]),  # own reference
        ("BTP-88", ["VI"]),  # counterpart's reference
        ("desk officer", ["NOTE"]),  # notes
        ("warrant", ["NOTE"]),  # attachment names
        ("casinos fugitive", []),  # every term must match
        ("ân", ["VI"]),  # shorter than a trigram: LIKE
        ("ng", ["EN", "NOTE", "VI"]),
        ("ฟอ", ["TH"]),
        ("Ng ngân", ["VI"]),  # short and long terms together
        ("50%", []),
        ("_", []),
    ],
)
def test_search_finds_substrings_in_any_script(texts: CaseIndex, q: str, expected: list[str]) -> None:
    assert sorted(find(texts, q=q)) == expected


@pytest.mark.parametrize(
    "q", ['"', '""', "AND OR", "*", "NEAR(", "NEAR(a b)", "a:b", "reference:x", "^x", "(", ")", "-", "\\", "'", "\x00"]
)
def test_hostile_queries_never_raise(texts: CaseIndex, q: str) -> None:
    assert isinstance(find(texts, q=q), list)


def test_a_blank_query_filters_nothing(texts: CaseIndex) -> None:
    assert len(find(texts, q="   ")) == len(find(texts)) == 5


def test_search_combines_with_the_other_filters(db: Database, texts: CaseIndex) -> None:
    put(db, texts, quiet("EN2", summary="More casinos", status="sent", side="requested"))
    assert sorted(find(texts, q="casinos")) == ["EN", "EN2"]
    assert find(texts, q="casinos", status="sent") == ["EN2"]
    assert find(texts, q="casinos", needs_action=True) == ["EN2"]


# --- needs action: each rule ---------------------------------------------------------------------------------------

RULES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("nothing to do", {}, []),
    ("sent to me", {"side": "requested", "status": "sent"}, ["awaiting_my_acknowledgement"]),
    ("acknowledged by me", {"side": "requested", "status": "acknowledged"}, []),
    ("shared, sent", {"side": "shared", "status": "sent", "sent_at": "2025-03-09T00:00:00Z"}, []),
    ("due yesterday", {"requested_by": "2025-03-09"}, ["overdue"]),
    ("due today", {"requested_by": "2025-03-10"}, ["due_soon"]),
    ("due in nearing_days", {"requested_by": "2025-03-17"}, ["due_soon"]),
    ("due after that", {"requested_by": "2025-03-18"}, []),
    ("overdue but executed", {"requested_by": "2025-03-01", "status": "executed"}, []),
    ("overdue but closed", {"requested_by": "2025-03-01", "status": "closed"}, []),
    ("urgent, I execute", {"urgency": "urgent", "side": "requested", "status": "in_execution"}, ["urgent"]),
    ("urgent, partly done", {"urgency": "urgent", "side": "requested", "status": "partially_executed"}, ["urgent"]),
    ("urgent, I acknowledged", {"urgency": "urgent", "side": "requested", "status": "acknowledged"}, ["urgent"]),
    ("urgent, I refused", {"urgency": "urgent", "side": "requested", "status": "refused"}, []),
    ("urgent draft of mine", {"urgency": "urgent", "side": "requesting", "status": "draft"}, ["urgent"]),
    ("urgent, mine, they work", {"urgency": "urgent", "side": "requesting", "status": "in_execution"}, []),
    ("normal draft", {"side": "requesting", "status": "draft"}, []),
    (
        "urgent, sent to me",
        {"urgency": "urgent", "side": "requested", "status": "sent"},
        ["awaiting_my_acknowledgement", "urgent"],
    ),
    ("sent 11 days ago", {"status": "sent", "sent_at": "2025-02-27T23:00:00Z"}, ["no_acknowledgement"]),
    ("sent 10 days ago", {"status": "sent", "sent_at": "2025-02-28T08:00:00Z"}, []),
    ("sent long ago, acknowledged", {"status": "acknowledged", "sent_at": "2024-01-01T00:00:00Z"}, []),
    (
        "reminded after the last change",
        {"reminded_at": "2025-03-05T10:00:00+00:00", "status_changed_at": "2025-03-01T10:00:00+00:00"},
        ["reminder_received"],
    ),
    (
        "reminded in another offset, still after",
        {"reminded_at": "2025-03-01T12:00:00+07:00", "status_changed_at": "2025-03-01T04:00:00+00:00"},
        ["reminder_received"],
    ),
    (
        "reminded, then the status moved",
        {"reminded_at": "2025-03-05T10:00:00+00:00", "status_changed_at": "2025-03-06T10:00:00+00:00"},
        [],
    ),
    (
        "reminded, no status change known",
        {"reminded_at": "2025-03-05T10:00:00Z", "status_changed_at": None},
        ["reminder_received"],
    ),
    (
        "reminded but withdrawn",
        {"reminded_at": "2025-03-05T10:00:00Z", "status_changed_at": "2025-03-01T00:00:00Z", "status": "withdrawn"},
        [],
    ),
    ("unreadable deadline", {"requested_by": "soon"}, []),
]


@pytest.mark.parametrize(("changes", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_reason_appears_exactly_when_its_rule_says(
    db: Database, index: CaseIndex, changes: dict[str, Any], expected: list[str]
) -> None:
    row = quiet("C-1", **changes)
    assert reasons(row, TODAY, REMINDERS) == expected
    put(db, index, row)
    assert ids(index.needs_action(today=TODAY, reminders=REMINDERS)) == (["C-1"] if expected else [])
    (listed,) = index.search(CaseFilter(), today=TODAY, reminders=REMINDERS)
    assert listed["needs_action"] == expected


def test_reminder_settings_move_the_thresholds() -> None:
    row = quiet(status="sent", sent_at="2025-03-05T00:00:00Z", requested_by="2025-03-20")
    assert reasons(row, TODAY, REMINDERS) == []
    assert reasons(row, TODAY, Reminders(ack_days=4, nearing_days=10)) == ["due_soon", "no_acknowledgement"]


def test_sql_narrowing_never_loses_a_case_the_rules_pick(db: Database, index: CaseIndex) -> None:
    """Random cases over every value the rules look at: the indexed SQL and the pure rules agree on all of them."""
    rng = random.Random(20250310)
    statuses = ["draft", "sent", "acknowledged", "in_execution", "partially_executed", *FINAL]
    days = [None, "2025-02-01", "2025-02-27", "2025-02-28", "2025-03-09", "2025-03-10", "2025-03-17", "2025-03-18"]
    rows = []
    with db.write() as w:
        for n in range(600):
            row = quiet(
                f"C-{n:03}",
                status=rng.choice(statuses),
                side=rng.choice(["requesting", "requested", "shared"]),
                urgency=rng.choice(["normal", "urgent", None]),
                requested_by=rng.choice(days),
                sent_at=rng.choice([None, *(f"{d}T12:00:00Z" for d in days if d)]),
                reminded_at=rng.choice([None, None, "2025-03-01T00:00:00Z"]),
                status_changed_at=rng.choice([None, "2025-02-15T00:00:00Z", "2025-03-05T00:00:00Z"]),
            )
            rows.append(row)
            index.upsert(w, row, notes=(), attachments=())
    expected = {r["case_id"] for r in rows if reasons(r, TODAY, REMINDERS)}
    assert 0 < len(expected) < len(rows)
    assert set(ids(index.needs_action(today=TODAY, reminders=REMINDERS, limit=1000))) == expected
    assert set(find(index, needs_action=False, limit=1000)) == {r["case_id"] for r in rows} - expected
    overdue = {r["case_id"] for r in rows if ageing(r, TODAY)["overdue"]}
    assert set(find(index, overdue=True, limit=1000)) == overdue
    assert set(find(index, overdue=False, limit=1000)) == {r["case_id"] for r in rows} - overdue


# --- ageing --------------------------------------------------------------------------------------------------------


def test_ageing_in_whole_days() -> None:
    open_late = quiet(sent_at="2025-02-28T23:59:00Z", last_action_at="2025-03-07T01:00:00Z", requested_by="2025-03-04")
    assert ageing(open_late, TODAY) == {
        "days_since_sent": 10,
        "days_since_last_action": 3,
        "overdue": True,
        "days_overdue": 6,
        "days_left": None,
    }
    assert ageing(quiet(requested_by="2025-03-15"), TODAY) | {"days_since_sent": None} == {
        "days_since_sent": None,
        "days_since_last_action": 64,
        "overdue": False,
        "days_overdue": None,
        "days_left": 5,
    }
    assert ageing(quiet(requested_by="2025-03-10"), TODAY)["days_left"] == 0
    closed = ageing(quiet(status="closed", requested_by="2025-03-01"), TODAY)
    assert (closed["overdue"], closed["days_overdue"], closed["days_left"]) == (False, None, None)
    draft = ageing(quiet(status="draft", sent_at=None, last_action_at=None), TODAY)
    assert (draft["days_since_sent"], draft["days_since_last_action"], draft["days_left"]) == (None, None, None)


# --- attachments ---------------------------------------------------------------------------------------------------


def attachment(attachment_id: str, blob_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "attachment_id": attachment_id,
        "blob_id": blob_id,
        "sha256": f"plain-{blob_id}",
        "name": f"{attachment_id}.pdf",
        "media_type": "application/pdf",
        "size": 1234,
        "language": "th",
        "translation": None,
        "added_by": ME,
        "added_at": f"2025-03-0{attachment_id[-1]}T00:00:00Z",
        **changes,
    }


def test_missing_blobs_and_mark_blob(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("C-1"), attachments=(attachment("a1", "b1"), attachment("a2", "b2")))
    put(db, index, quiet("C-2", counterpart=OTHER), attachments=(attachment("a3", "b1"),))  # the same file again
    missing = index.missing_blobs()
    assert [(m["attachment_id"], m["blob_id"], m["case_id"]) for m in missing] == [
        ("a1", "b1", "C-1"),
        ("a2", "b2", "C-1"),
        ("a3", "b1", "C-2"),
    ]
    assert (missing[2]["doc_id"], missing[2]["counterpart"]) == ("doc-C-2", OTHER)
    assert len(index.missing_blobs(limit=1)) == 1

    index.mark_blob("b1", True)
    assert [m["attachment_id"] for m in index.missing_blobs()] == ["a2"]
    assert [a["have"] for a in index.attachments("C-1")] == [1, 0]
    index.mark_blob("b1", False)
    assert len(index.missing_blobs()) == 3


def test_attachments_keep_have_across_upserts(db: Database, index: CaseIndex) -> None:
    put(db, index, quiet("C-1"), attachments=(attachment("a1", "b1"), attachment("a2", "b2")))
    index.mark_blob("b1", True)
    # the case changes: a2 removed, a1 renamed, a4 added, and a4 names a blob this node already holds
    put(db, index, quiet("C-1"), attachments=(attachment("a1", "b1", name="renamed.pdf"), attachment("a4", "b1")))
    assert [(a["attachment_id"], a["name"], a["have"]) for a in index.attachments("C-1")] == [
        ("a1", "renamed.pdf", 1),
        ("a4", "a4.pdf", 1),
    ]
    assert find(index, q="renamed") == ["C-1"]
    assert find(index, q="a2.pdf") == []
    assert index.missing_blobs() == []
    # a blob this node stored itself (it attached the file) is known from the start
    put(db, index, quiet("C-2"), attachments=(attachment("a5", "b5", have=True),))
    assert [a["have"] for a in index.attachments("C-2")] == [1]


# --- scale ---------------------------------------------------------------------------------------------------------

SCALE = 5_000  # bench/cases_bench.py measures 100,000


def test_a_hundred_thousand_cases_answer_from_indexes(db: Database, index: CaseIndex) -> None:
    statuses = ["draft", "sent", "acknowledged", "in_execution", "partially_executed", *FINAL]
    counterparts = [f"node-{n}" for n in range(12)]
    words = ["fraud", "casino", "vessel", "timber", "การฟอกเงิน", "ยาเสพติด", "ការលាងលុយ", "online scam", "gold"]
    started = time.perf_counter()
    with db.write() as w:
        for n in range(SCALE):
            day = f"2025-{1 + n % 12:02}-{1 + n % 28:02}"
            row = quiet(
                f"C-{n:06}",
                kind="extradition" if n % 9 == 0 else "mla",
                status=statuses[n % len(statuses)],
                side="requested" if n % 2 else "requesting",
                counterpart=counterparts[n % len(counterparts)],
                urgency="urgent" if n % 40 == 0 else "normal",
                requested_by=day if n % 3 == 0 else None,
                sent_at=f"{day}T09:00:00Z",
                last_action_at=f"{day}T10:{n % 60:02}:00Z",
                reminded_at=f"{day}T11:00:00Z" if n % 97 == 0 else None,
                summary=f"Case {n}: {words[n % len(words)]} and {words[(n * 7) % len(words)]}",
            )
            index.upsert(w, row, notes=(), attachments=())
    print(f"\n{SCALE} upserts in one transaction: {time.perf_counter() - started:.1f}s")

    def timed(label: str, run: Any) -> Any:
        began = time.perf_counter()
        result = run()
        print(f"{label}: {(time.perf_counter() - began) * 1000:.1f} ms, {len(result)} rows")
        return result

    page = timed("first page", lambda: index.search(CaseFilter(), today=TODAY, reminders=REMINDERS))
    assert len(page) == 100
    assert page[0]["urgency"] == "urgent"
    rows = timed(
        "counterpart + kind (kind selects far more)",
        lambda: index.search(CaseFilter(counterpart="node-1", kind="mla"), today=TODAY, reminders=REMINDERS),
    )
    assert len(rows) == 100
    rows = timed(
        "status + counterpart + kind",
        lambda: index.search(
            CaseFilter(status="sent", counterpart="node-1", kind="mla"), today=TODAY, reminders=REMINDERS
        ),
    )
    assert rows
    assert all((r["status"], r["counterpart"], r["kind"]) == ("sent", "node-1", "mla") for r in rows)
    rows = timed("overdue", lambda: index.search(CaseFilter(overdue=True), today=TODAY, reminders=REMINDERS))
    assert rows
    assert all(r["ageing"]["overdue"] for r in rows)
    rows = timed("needs action", lambda: index.needs_action(today=TODAY, reminders=REMINDERS))
    assert len(rows) == 200
    assert all(r["needs_action"] for r in rows)
    rows = timed(
        "needs action, one counterpart, page 3",
        lambda: index.search(
            CaseFilter(needs_action=True, counterpart="node-0", limit=50, offset=100), today=TODAY, reminders=REMINDERS
        ),
    )
    assert len(rows) == 50
    rows = timed(
        "not needing action", lambda: index.search(CaseFilter(needs_action=False), today=TODAY, reminders=REMINDERS)
    )
    assert rows
    assert not any(r["needs_action"] for r in rows)
    rows = timed("search 'ฟอกเงิน'", lambda: index.search(CaseFilter(q="ฟอกเงิน"), today=TODAY, reminders=REMINDERS))
    assert len(rows) == 100
    assert all("ฟอกเงิน" in r["summary"] for r in rows)
    rows = timed(
        "search 'scam' + status",
        lambda: index.search(CaseFilter(q="scam", status="sent"), today=TODAY, reminders=REMINDERS),
    )
    assert rows
    assert all("scam" in r["summary"] and r["status"] == "sent" for r in rows)
    rows = timed("search 'go' (LIKE)", lambda: index.search(CaseFilter(q="go"), today=TODAY, reminders=REMINDERS))
    assert rows
    assert all("go" in r["summary"] for r in rows)
    counts = timed("counts", index.counts)
    assert sum(counts.values()) == SCALE


def test_rare_and_common_terms_find_the_same_cases_in_list_order(db: Database, index: CaseIndex) -> None:
    """A term with few matches is looked up by key, one with many walks the list: both give every match, in
    list order, page by page (`_FEW` is the boundary)."""
    rng = random.Random(7)
    rows = []
    with db.write() as w:
        for n in range(_FEW + 200):
            words = ["casino"] + (["vessel"] if n % 97 == 0 else [])
            row = quiet(
                f"C-{n:04}",
                urgency=rng.choice(["normal", "urgent"]),
                last_action_at=f"2025-0{rng.randint(1, 3)}-{rng.randint(10, 28)}T08:00:00+00:00",
                summary=" ".join(words),
            )
            rows.append(row)
            index.upsert(w, row, notes=(), attachments=())
    listed = ids(index.search(CaseFilter(limit=10_000), today=TODAY, reminders=REMINDERS))
    for term, count in (("vessel", len([r for r in rows if "vessel" in r["summary"]])), ("casino", len(rows))):
        expected = [
            case_id for case_id in listed if term in next(r for r in rows if r["case_id"] == case_id)["summary"]
        ]
        assert len(expected) == count
        pages = [find(index, q=term, limit=100, offset=start) for start in range(0, count + 100, 100)]
        assert [case_id for page in pages for case_id in page] == expected
        assert find(index, q=term, status="acknowledged", limit=5) == expected[:5]
    assert len(find(index, q="casino", limit=10_000)) > _FEW  # the walking path was taken


def test_terms_in_different_rows_find_the_same_cases_by_every_path(db: Database, index: CaseIndex) -> None:
    """Every way a query of several terms is answered gives the cases a plain reading would: a rare term's cases
    checked case by case (up to `_PROBED`) or against a common term's matches read once, both terms common (the list
    walked), and short terms (LIKE) with either."""
    rng = random.Random(11)
    texts: dict[str, str] = {}
    with db.write() as w:
        for n in range(_FEW + 150):
            case_id = f"C-{n:04}"
            notes = (
                ["hearing on the casino accounts"] + [f"vessel number {n}"] * (n % 37 == 0) + ["ship"] * (n % 3 == 0)
            )
            summary = "timber" if n % 2 else "gold"
            row = quiet(
                case_id,
                last_action_at=f"2025-0{rng.randint(1, 3)}-{rng.randint(10, 28)}T08:00:00+00:00",
                summary=summary,
            )
            index.upsert(w, row, notes=entries(tuple(notes)), attachments=())
            texts[case_id] = " ".join([summary, *notes])
    assert (
        len([t for t in texts.values() if "vessel" in t]) <= _PROBED < len([t for t in texts.values() if "ship" in t])
    )
    listed = ids(index.search(CaseFilter(limit=10_000), today=TODAY, reminders=REMINDERS))
    for q in (
        "vessel casino",
        "casino vessel",
        "vessel timber",
        "ship gold",
        "ship casino timber",
        "gold ship ip",
        "vessel go",
        "casino hearing",  # both common: the list is walked
        "casino ng",
        "ng",
    ):
        expected = [c for c in listed if all(term in texts[c] for term in q.split())]
        assert find(index, q=q, limit=10_000) == expected, q
        assert find(index, q=q, limit=7, offset=3) == expected[3:10], q
