"""The case index: a plain SQLite projection of the case documents, for lists, filters, "needs action" and search.

A case is a CRDT document, loaded on demand; a node party to 100,000 cases cannot load them all to draw a list.
So whoever applies a change to a case document also calls `CaseIndex.upsert` in the same write transaction,
and the projection (`cases`, `cases_fts`, `case_attachments`) never disagrees with the documents on disk.

What makes a case need action, and how old it is, are pure functions of one row and a date (`reasons`, `ageing`):
the same rules run for one case on its page and for the whole list, and tests pin them with a fixed `today`.
SQL only narrows the candidates with indexed conditions that are true of every case a rule could pick.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import sqlite_utils

from node.storage import Database

FINAL: Final = ("executed", "refused", "withdrawn", "closed")
# Statuses in which the requested side owes work on an urgent request.
_URGENT_REQUESTED_STATUSES: Final = ("sent", "acknowledged", "in_execution", "partially_executed")

CASE_COLUMNS: Final = (
    "case_id",
    "doc_id",
    "kind",
    "status",
    "side",
    "counterpart",
    "requesting",
    "requested",
    "requesting_country",
    "requested_country",
    "reference",
    "counterpart_reference",
    "urgency",
    "requested_by",
    "created_at",
    "sent_at",
    "acknowledged_at",
    "closed_at",
    "last_action_at",
    "status_changed_at",
    "reminded_at",
    "executed_at",
    "outcome",
    "offences",
    "measures",
    "summary",
    "updated_at",
)
_JSON_COLUMNS: Final = ("offences", "measures")
ATTACHMENT_COLUMNS: Final = (
    "attachment_id",
    "blob_id",
    "sha256",
    "name",
    "media_type",
    "size",
    "language",
    "translation",
    "added_by",
    "added_at",
)

# Trigrams cannot match a term shorter than three characters: such terms are matched with LIKE instead.
_TRIGRAM: Final = 3
# A search row's number is its case's `search_key` shifted left by _SHIFT, plus 0 for the case's head (references,
# summary, attachment names) or 1, 2, ... for its notes in the order they were indexed (`migrations._v8`).
_SHIFT: Final = 20
_LAST_NOTE: Final = (1 << _SHIFT) - 1
_ORDER: Final = "ORDER BY (urgency IS 'urgent') DESC, last_action_at DESC, case_id"
_FEW: Final = 500  # matches of a text search up to which its cases are looked up by key, not walked in list order
# Cases found by a rare term up to which a common term is matched in each case's own rows (about a millisecond a
# case for a long word), rather than all its matches read (100,000 matches: about 150 ms).
_PROBED: Final = 20
_NOT_FINAL: Final = f"status NOT IN ({', '.join(repr(s) for s in FINAL)})"


@dataclass(frozen=True)
class CaseFilter:
    """What a list asks for; None means "either way". `q` is what an officer typed, never FTS syntax."""

    status: str | None = None
    kind: str | None = None
    counterpart: str | None = None
    overdue: bool | None = None
    needs_action: bool | None = None
    q: str | None = None
    officer: str | None = None  # the user name responsible at this node (`node.officers`)
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class Reminders:
    """When silence becomes a reason to act: a request unacknowledged after `ack_days` days deserves a reminder,
    and a deadline within `nearing_days` days deserves attention before it passes."""

    ack_days: int = 10
    nearing_days: int = 7


@dataclass(frozen=True)
class _Text:
    """What the commit will do to one case's search rows: immutable, so a unit of work that rolls back puts the
    one it replaced back."""

    wipe: bool = False  # the case's rows on disk go first (it was removed, or its legacy row is replaced)
    head: str | None = None  # the head row's new text; None leaves it as it is (or gone, after a wipe)
    notes: tuple[tuple[str, str], ...] = ()  # (history entry id, text) of the note rows to add


class CaseIndex:
    """Reads of the case projection; the write paths are `upsert` and `remove`, inside the caller's transaction.

    A case's search text is written when the transaction commits (`Database.before_commit`), not in the unit of
    work that changed the case: FTS5 turns what it holds in memory into a new index segment at every savepoint,
    so writing it per unit made one segment per case and most of the cost of indexing a case was merging them.
    Each note is a search row of its own, written once: a note costs the same to index whatever the case's length.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        # What to write at the commit, by case `search_key`.
        self._text_pending: dict[int, _Text] = {}
        fts_sql = db.query("SELECT sql FROM sqlite_master WHERE name = 'case_text'")[0]["sql"]
        # The migration fell back to a word tokenizer only on builds without trigram: there a term matches words
        # starting with it, not any substring.
        self._trigram = "trigram" in fts_sql

    def upsert(
        self,
        db: sqlite_utils.Database,
        row: Mapping[str, Any],
        *,
        notes: Sequence[tuple[str, str]],
        attachments: Sequence[Mapping[str, Any]],
    ) -> None:
        """Replace everything indexed about one case (its row, its search text, its attachments).

        `notes` are (history entry id, text), every note of the case: those not indexed yet get a row each.

        Takes the caller's `sqlite_utils.Database` because it runs inside the transaction that stores the
        document change: the projection commits with the change or not at all. An attachment whose blob this
        node already holds stays `have = 1`, so re-indexing a case never makes the node fetch a blob again.
        """
        unknown = set(row) - set(CASE_COLUMNS)
        if unknown:
            raise ValueError(f"not columns of cases: {', '.join(sorted(unknown))}")
        values = {column: row.get(column) for column in CASE_COLUMNS}
        for column in _JSON_COLUMNS:
            value = values[column]
            if value is not None and not isinstance(value, str):
                values[column] = json.dumps(list(value), ensure_ascii=False)
        case_id = values["case_id"]
        if not case_id or not values["doc_id"]:
            raise ValueError("a case row needs case_id and doc_id")
        # Only what changed is written: a note moves `last_action_at` and nothing else, and an UPDATE touches only
        # the indexes of the columns it sets. Compared with the row on disk, not with a copy kept in memory, which
        # a rolled-back group commit would leave wrong.
        cursor = db.execute(f"SELECT {', '.join(CASE_COLUMNS)}, search_key FROM cases WHERE case_id = ?", (case_id,))
        stored = cursor.fetchone()
        if stored is None:
            # SQLite gives the key (the row number). A key is never taken back from a case while it is indexed: only
            # a removed case's can be given again, and its rows are wiped at the commit before the new case's are
            # written (`_Text.wipe`).
            inserted = db.execute(
                f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}) VALUES ({', '.join(':' + c for c in CASE_COLUMNS)})",
                values,
            )
            key = int(inserted.lastrowid or 0)
        else:
            key = stored[-1]
            changed = [
                c for c, old in zip(CASE_COLUMNS, stored[:-1], strict=True) if c != "updated_at" and old != values[c]
            ]
            if changed:
                db.execute(
                    f"UPDATE cases SET {', '.join(f'{c} = :{c}' for c in (*changed, 'updated_at'))} "
                    "WHERE case_id = :case_id",
                    values,
                )

        head = "\n".join(
            [
                values["reference"] or "",
                values["counterpart_reference"] or "",
                values["summary"] or "",
                *(str(a.get("name") or "") for a in attachments),
            ]
        )
        self._index_text(db, key, head, notes)

        records: list[dict[str, Any]] = []
        for attachment in attachments:
            unknown = set(attachment) - {*ATTACHMENT_COLUMNS, "have"}
            if unknown:
                raise ValueError(f"not columns of case_attachments: {', '.join(sorted(unknown))}")
            if not attachment.get("attachment_id") or not attachment.get("blob_id"):
                raise ValueError("an attachment needs attachment_id and blob_id")
            records.append({"case_id": case_id, **{column: attachment.get(column) for column in ATTACHMENT_COLUMNS}})
        held_rows = db.execute(
            f"SELECT case_id, {', '.join(ATTACHMENT_COLUMNS)}, have FROM case_attachments WHERE case_id = ?", (case_id,)
        ).fetchall()
        held_blobs = {r[ATTACHMENT_COLUMNS.index("blob_id") + 1] for r in held_rows if r[-1]}
        blob_ids = sorted({str(r["blob_id"]) for r in records} - held_blobs)
        if blob_ids:
            marks = ", ".join("?" for _ in blob_ids)
            held_blobs |= {
                r[0]
                for r in db.execute(
                    f"SELECT DISTINCT blob_id FROM case_attachments WHERE have = 1 AND blob_id IN ({marks})", blob_ids
                ).fetchall()
            }
        for record, attachment in zip(records, attachments, strict=True):
            record["have"] = int(bool(attachment.get("have")) or record["blob_id"] in held_blobs)
        columns = ("case_id", *ATTACHMENT_COLUMNS, "have")
        if sorted(tuple(r) for r in held_rows) == sorted(tuple(r[c] for c in columns) for r in records):
            return
        db.execute("DELETE FROM case_attachments WHERE case_id = ?", (case_id,))
        marks = ", ".join("?" * len(columns))
        insert = f"INSERT OR REPLACE INTO case_attachments ({', '.join(columns)}) VALUES ({marks})"
        for record in records:
            db.execute(insert, tuple(record[c] for c in columns))

    def remove(self, db: sqlite_utils.Database, case_id: str) -> None:
        """Drop a case from the projection (its keys are being destroyed): row, search text, attachments."""
        found = db.execute("SELECT search_key FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        db.execute("DELETE FROM cases WHERE case_id = ?", (case_id,))
        db.execute("DELETE FROM case_attachments WHERE case_id = ?", (case_id,))
        if found is not None:
            self._queue_text(found[0], _Text(wipe=True))

    def _index_text(self, db: sqlite_utils.Database, key: int, head: str, notes: Sequence[tuple[str, str]]) -> None:
        """Queue the search rows a case lacks: its head if it changed, a row for each note not indexed yet."""
        pending = self._text_pending.get(key)
        held_head: str | None = None
        held: set[str] = set()
        if pending is None or not pending.wipe:
            base = key << _SHIFT
            # Read from the FTS5 table's own content table (`%_content`: id, then the columns as c0, c1): a plain
            # range of its primary key, where the FTS5 cursor costs a few microseconds a row.
            rows = db.execute(
                "SELECT id, c0, iif(id = ?, c1, NULL) FROM case_text_content WHERE id BETWEEN ? AND ?",
                (base, base, base + _LAST_NOTE),
            )
            for rowid, entry, text in rows:
                if rowid == base:
                    held_head = text
                else:
                    held.add(entry)
        if pending is not None:
            held_head = pending.head if pending.head is not None else held_head
            held.update(entry for entry, _ in pending.notes)
        if held - {entry for entry, _ in notes}:
            # Rows of notes the case no longer has (history only grows, so: the one row of all its notes that the
            # upgrade made): the case's rows are written again, a row per note, this once.
            self._queue_text(key, _Text(wipe=True, head=head, notes=tuple(notes)))
            return
        new_notes = tuple(note for note in notes if note[0] not in held)
        if held_head != head or new_notes:
            self._queue_text(key, _Text(head=head if held_head != head else None, notes=new_notes))

    def _queue_text(self, key: int, change: _Text) -> None:
        """Add `change` to what the commit writes for case `key` (a wipe drops what was queued before it)."""
        previous = self._text_pending.get(key)
        if previous is not None and not change.wipe:
            change = _Text(
                wipe=previous.wipe,
                head=change.head if change.head is not None else previous.head,
                notes=previous.notes + change.notes,
            )
        self._text_pending[key] = change

        def take_back() -> None:
            if previous is None:
                self._text_pending.pop(key, None)
            else:
                self._text_pending[key] = previous

        self._db.on_unit_abort(take_back)
        if len(self._text_pending) == 1:
            self._db.on_abort(self._text_pending.clear)
        self._db.before_commit("case_text", self._write_text)

    def _write_text(self, db: sqlite_utils.Database) -> None:
        pending, self._text_pending = self._text_pending, {}
        insert = "INSERT INTO case_text (rowid, entry, text) VALUES (?, ?, ?)"
        for key, change in pending.items():
            base = key << _SHIFT
            if change.wipe:
                db.execute("DELETE FROM case_text WHERE rowid BETWEEN ? AND ?", (base, base + _LAST_NOTE))
            if change.head is not None:
                if not change.wipe:
                    db.execute("DELETE FROM case_text WHERE rowid = ?", (base,))
                db.execute(insert, (base, "", change.head))
            if change.notes:
                last = (
                    0
                    if change.wipe
                    else db.execute(
                        "SELECT max(id) FROM case_text_content WHERE id BETWEEN ? AND ?", (base + 1, base + _LAST_NOTE)
                    ).fetchone()[0]
                )
                first = last - base + 1 if last else 1
                # Past a million notes in one case, the rest are not searchable: no case comes near it.
                for seq, (entry, text) in enumerate(change.notes[: _LAST_NOTE + 1 - first], start=first):
                    db.execute(insert, (base + seq, entry, text))

    def get(self, case_id: str) -> dict[str, Any] | None:
        rows = self._db.query("SELECT * FROM cases WHERE case_id = ?", (case_id,))
        return _decoded(rows[0]) if rows else None

    def doc_id(self, case_id: str) -> str | None:
        """Which document to load for a case: the one lookup that leads from a list row to the CRDT."""
        rows = self._db.query("SELECT doc_id FROM cases WHERE case_id = ?", (case_id,))
        return str(rows[0]["doc_id"]) if rows else None

    def search(self, f: CaseFilter, *, today: date, reminders: Reminders) -> list[dict[str, Any]]:
        """One page of cases matching `f`, urgent first then most recently acted on, each with its
        `needs_action` reasons and `ageing`.

        `needs_action` is decided by `reasons` in Python, so the page is filled from SQL in growing batches
        until it is full; with `needs_action=True` the SQL already keeps only possible candidates.
        """
        if f.limit <= 0:
            return []
        if f.q and self._text_pending:
            self._db.flush_before_commit()  # the search text of what this loop turn changed, before it is searched
        where, params = self._where(f, today, reminders)
        sql = f"SELECT * FROM cases WHERE {' AND '.join(where) or '1'} {_ORDER} LIMIT ? OFFSET ?"
        if f.needs_action is None:
            rows = self._db.query(sql, (*params, f.limit, max(f.offset, 0)))
            return [_decorated(r, today, reminders) for r in rows]

        page: list[dict[str, Any]] = []
        skip = max(f.offset, 0)
        start, batch = 0, max(256, 2 * (f.limit + skip))
        while True:
            rows = self._db.query(sql, (*params, batch, start))
            for row in rows:
                if bool(reasons(row, today, reminders)) != f.needs_action:
                    continue
                if skip:
                    skip -= 1
                    continue
                page.append(_decorated(row, today, reminders))
                if len(page) == f.limit:
                    return page
            if len(rows) < batch:
                return page
            start += batch
            batch *= 2

    def needs_action(self, *, today: date, reminders: Reminders, limit: int = 200) -> list[dict[str, Any]]:
        """The officer's worklist: every case with at least one reason to act, most pressing first."""
        return self.search(CaseFilter(needs_action=True, limit=limit), today=today, reminders=reminders)

    def counts(self) -> dict[str, int]:
        """Cases by status, for the dashboard's tabs (served by the status index, no table scan)."""
        rows = self._db.query("SELECT status, count(*) AS n FROM cases GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}

    def missing_blobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Attachments whose blob this node has not stored yet, oldest first, with the case's parties:
        what the blob fetcher asks peers for."""
        return self._db.query(
            "SELECT a.*, c.doc_id, c.counterpart, c.requesting, c.requested FROM case_attachments a "
            "JOIN cases c ON c.case_id = a.case_id WHERE a.have = 0 ORDER BY a.added_at, a.attachment_id LIMIT ?",
            (limit,),
        )

    def mark_blob(self, blob_id: str, have: bool) -> None:
        """Record that a blob is (or is no longer) stored here, for every attachment that names it."""
        with self._db.write() as db:
            db.execute("UPDATE case_attachments SET have = ? WHERE blob_id = ?", (int(have), blob_id))

    def attachments(self, case_id: str) -> list[dict[str, Any]]:
        return self._db.query(
            "SELECT * FROM case_attachments WHERE case_id = ? ORDER BY added_at, attachment_id", (case_id,)
        )

    def _where(self, f: CaseFilter, today: date, reminders: Reminders) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        given = {c: getattr(f, c) for c in ("status", "kind", "counterpart") if getattr(f, c) is not None}
        lead = self._narrowest(given)
        for column, value in given.items():
            # `+column` keeps SQLite from walking a wider index than the narrowest (it has no statistics).
            where.append(f"{'' if column == lead else '+'}{column} = ?")
            params.append(value)
        overdue = f"(requested_by < ? AND {_NOT_FINAL})"
        if f.overdue is True:
            where.append(overdue)
            params.append(today.isoformat())
        elif f.overdue is False:
            where.append(f"NOT coalesce({overdue}, 0)")
            params.append(today.isoformat())
        if f.needs_action:
            # Each rule of `reasons`, loosened only where SQL cannot say it exactly (a reminder newer than the last
            # status change), so the walk in list order reads few rows that are then thrown away.
            urgent_requested = ", ".join(repr(s) for s in sorted(_URGENT_REQUESTED_STATUSES))
            where.append(
                f"{_NOT_FINAL} AND ((side = 'requested' AND status = 'sent') OR requested_by <= ? "
                f"OR (urgency = 'urgent' AND ((side = 'requested' AND status IN ({urgent_requested})) "
                "OR (side = 'requesting' AND status = 'draft'))) "
                "OR (side = 'requesting' AND status = 'sent' AND sent_at < ?) OR reminded_at IS NOT NULL)"
            )
            params.append((today + timedelta(days=reminders.nearing_days)).isoformat())
            params.append((today - timedelta(days=reminders.ack_days)).isoformat())
        if f.officer is not None:
            # Few cases per officer: checked while walking the listing index, like the text search below.
            where.append("+case_id IN (SELECT case_id FROM case_officers WHERE username = ?)")
            params.append(f.officer)
        if f.q is not None and f.q.strip():
            text_where, text_params = self._text_conditions(f.q)
            where.extend(text_where)
            params.extend(text_params)
        return where, params

    def _narrowest(self, given: Mapping[str, Any]) -> str | None:
        """Which equality filter selects the fewest cases, counted on its index (a node's statuses, kinds and
        counterparts are far from even: most cases end up closed, most are MLA), so a page walks the fewest rows."""
        if len(given) < 2:
            return next(iter(given), None)
        sizes = {
            column: self._db.query(f"SELECT count(*) AS n FROM cases WHERE {column} = ?", (value,))[0]["n"]
            for column, value in given.items()
        }
        return min(sizes, key=lambda column: sizes[column])

    def _text_conditions(self, q: str) -> tuple[list[str], list[Any]]:
        """Conditions on `cases` for what an officer typed: every whitespace-separated term must be found in some
        search row of the case (its head or any note), and no term can be an FTS syntax error.

        Each term is quoted as an FTS phrase (so `AND`, `*`, `NEAR(` and quotes are just text); a term too short
        for a trigram is matched with LIKE. A term found in few cases gives their keys, looked up directly, and the
        other terms are checked on those cases only; when every term is common, the list is walked in order until
        the page is full, each case checked against each term's matches (read once) or its own rows.
        """
        match, like = "case_text MATCH ?", "text LIKE ? ESCAPE '\\'"
        phrases: list[str] = []  # a parameter of `match` per term
        patterns: list[str] = []  # a parameter of `like` per short term
        for term in q.split():
            if len(term) >= _TRIGRAM or not self._trigram:
                phrase = '"' + term.replace('"', '""') + '"'
                phrases.append(phrase if self._trigram else phrase + " *")
            else:
                patterns.append("%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        # Which cases the rarer terms are in: reading a common term's matches stops after _FEW cases. A LIKE reads
        # every row, so it is used this way only when no term can be looked up in the index.
        probed, condition = (phrases, match) if phrases else (patterns, like)
        few: set[int] | None = None
        common: list[str] = []
        for param in probed:
            keys = self._db.rows(
                f"SELECT DISTINCT rowid >> {_SHIFT} FROM case_text WHERE {condition} LIMIT ?", (param, _FEW + 1)
            )
            if len(keys) > _FEW:
                common.append(param)
            else:
                found = {row[0] for row in keys}
                few = found if few is None else few & found
        common_phrases, left_patterns = (common, patterns) if phrases else ([], common)
        own_rows = f"rowid BETWEEN search_key << {_SHIFT} AND (search_key << {_SHIFT}) + {_LAST_NOTE}"
        where: list[str] = []
        params: list[Any] = []
        if few is not None:
            where.append(f"search_key IN ({', '.join('?' for _ in few) or 'NULL'})")
            params.extend(sorted(few))
        for phrase in common_phrases:
            if few is None or len(few) > _PROBED:
                # Its matches read once, each case checked against them. `+`: walked in list order, not every
                # match's case fetched by key and all of them sorted.
                where.append(f"+search_key IN (SELECT rowid >> {_SHIFT} FROM case_text WHERE {match})")
            else:
                where.append(f"EXISTS (SELECT 1 FROM case_text WHERE {match} AND {own_rows})")
            params.append(phrase)
        for pattern in left_patterns:  # in the case's own rows, a range of their numbers
            where.append(f"EXISTS (SELECT 1 FROM case_text WHERE {like} AND {own_rows})")
            params.append(pattern)
        return where, params


def ageing(row: Mapping[str, Any], today: date) -> dict[str, Any]:
    """How long a case has waited and how its deadline stands, in whole days as of `today`.

    Timestamps count by their calendar date (UTC as stored). A closed case is never overdue and has no days
    left: its deadline no longer asks anything of anyone.
    """
    sent = _day(row.get("sent_at"))
    last_action = _day(row.get("last_action_at"))
    due = _day(row.get("requested_by"))
    open_ = row.get("status") not in FINAL
    overdue = open_ and due is not None and due < today
    return {
        "days_since_sent": (today - sent).days if sent else None,
        "days_since_last_action": (today - last_action).days if last_action else None,
        "overdue": overdue,
        "days_overdue": (today - due).days if overdue and due else None,
        "days_left": (due - today).days if open_ and due and not overdue else None,
    }


def reasons(row: Mapping[str, Any], today: date, reminders: Reminders) -> list[str]:
    """Why a case needs this node's action today (empty when it does not), in a fixed order."""
    status, side = row.get("status"), row.get("side")
    if status in FINAL:
        return []
    found: list[str] = []
    if side == "requested" and status == "sent":
        found.append("awaiting_my_acknowledgement")
    due = _day(row.get("requested_by"))
    if due is not None and due < today:
        found.append("overdue")
    if due is not None and today <= due <= today + timedelta(days=reminders.nearing_days):
        found.append("due_soon")
    if row.get("urgency") == "urgent" and (
        (side == "requested" and status in _URGENT_REQUESTED_STATUSES) or (side == "requesting" and status == "draft")
    ):
        found.append("urgent")
    sent = _day(row.get("sent_at"))
    if side == "requesting" and status == "sent" and sent is not None and (today - sent).days > reminders.ack_days:
        found.append("no_acknowledgement")
    reminded, changed = _instant(row.get("reminded_at")), _instant(row.get("status_changed_at"))
    if reminded is not None and (changed is None or reminded > changed):
        found.append("reminder_received")
    return found


def _day(value: Any) -> date | None:
    """The calendar date of a stored date or timestamp; None if absent or unreadable (a peer's bad value must
    not break the list)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _decoded(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in _JSON_COLUMNS:
        try:
            out[column] = json.loads(out[column]) if out.get(column) else []
        except ValueError:
            out[column] = []
    return out


def _decorated(row: Mapping[str, Any], today: date, reminders: Reminders) -> dict[str, Any]:
    out = _decoded(row)
    out["needs_action"] = reasons(row, today, reminders)
    out["ageing"] = ageing(row, today)
    return out
