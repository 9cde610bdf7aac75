"""Schema migrations, versioned in code and applied in order on open.

`PRAGMA user_version` holds the number of migrations applied. A migration never changes
once released: fixes come as a new migration, so every node walks the same path from any
earlier schema (tested from each one), and a node refuses to open a schema newer than it knows.
"""

import contextlib
import re
import sqlite3
from collections.abc import Callable
from typing import Final

import sqlcipher3
import sqlite_utils


def _v1_initial(db: sqlite_utils.Database) -> None:
    db.table("peers").create(
        {
            "node_id": str,
            "name": str,
            "country": str,
            "role": str,
            "sign_key": bytes,
            "kx_key": bytes,
            "addresses": str,  # JSON list of base URLs
            "card": str,
            "trusted_at": str,
            "last_sync": str,
        },
        pk="node_id",
        not_null={"name", "country", "role", "sign_key", "kx_key", "addresses", "card", "trusted_at"},
    )
    # One row per signed update (or author-compacted run of updates) of a CRDT document.
    db.table("doc_log").create(
        {
            "doc_id": str,
            "author": str,
            "seq_from": int,
            "seq_to": int,
            "body": bytes,
            "sig": bytes,
            "stored_at": str,
        },
        pk=("doc_id", "author", "seq_to"),
        not_null={"seq_from", "body", "sig", "stored_at"},
    )
    db.table("doc_snapshots").create(
        {"doc_id": str, "state": bytes, "versions": str, "updated_at": str},
        pk="doc_id",
        not_null={"state", "versions", "updated_at"},
    )
    # What each peer is known to hold: the highest seq of each author's updates per document.
    db.table("peer_cursors").create(
        {"peer_id": str, "doc_id": str, "author": str, "seq": int},
        pk=("peer_id", "doc_id", "author"),
        not_null={"seq"},
    )
    db.table("api_tokens").create(
        {"token_hash": str, "label": str, "created_at": str},
        pk="token_hash",
        not_null={"created_at"},
    )
    db.table("audit_log").create(
        {"id": int, "at": str, "actor": str, "action": str, "doc_id": str, "subject": str},
        pk="id",
        not_null={"at", "actor", "action"},
    )
    db.table("rejections").create(
        {"id": int, "at": str, "peer": str, "reason": str, "detail": str},
        pk="id",
        not_null={"at", "reason"},
    )
    db.execute(
        "CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END"
    )


# Tried in order: substring search whatever the script (Thai, Khmer, Lao and Burmese put no spaces between
# words, so word tokenizers see a whole sentence as one token), ignoring Vietnamese and other diacritics where
# the build allows it (SQLite 3.45+); word-prefix search only if this build has no trigram tokenizer (< 3.34).
CASES_FTS_TOKENIZERS: Final[tuple[str, ...]] = (
    "trigram remove_diacritics 1",
    "trigram",
    "unicode61 remove_diacritics 2",
)


def _v2_cases(db: sqlite_utils.Database) -> None:
    """The case projection: what lists, filters, "needs action" and search read instead of the CRDT documents."""
    # The keys of the case documents this node was given (the lead's), one row per document.
    db.table("case_keys").create(
        {"doc_id": str, "doc_key": bytes, "grant": bytes, "version": int, "parties": str, "received_at": str},
        pk="doc_id",
        not_null={"doc_key", "grant", "version", "parties", "received_at"},
    )
    db.table("cases").create(
        {
            "case_id": str,
            "doc_id": str,
            "kind": str,
            "status": str,
            "side": str,  # this node's side: requesting | requested | shared
            "counterpart": str,
            "requesting": str,
            "requested": str,
            "requesting_country": str,
            "requested_country": str,
            "reference": str,  # this node's own reference
            "counterpart_reference": str,
            "urgency": str,
            "requested_by": str,  # YYYY-MM-DD
            "created_at": str,
            "sent_at": str,
            "acknowledged_at": str,
            "closed_at": str,
            "last_action_at": str,
            "status_changed_at": str,
            "reminded_at": str,  # the last reminder received from the counterpart
            "executed_at": str,  # when the requested side reported it executed (else partially executed)
            "outcome": str,  # for a closed case, the status it was closed from (statistics count closed cases by it)
            "offences": str,  # JSON list of vocab.OFFENCES codes
            "measures": str,  # JSON list of vocab.MEASURES codes
            "summary": str,
            "updated_at": str,
        },
        pk="case_id",
        not_null={"doc_id", "status"},
    )
    db.execute("CREATE UNIQUE INDEX cases_doc_id ON cases(doc_id)")
    # Every list is ordered urgent first, then most recent action first (`case_index.search`): with that order in
    # the index after the filtered column, a page of a filtered list is read in order and stops when full.
    listing = "(urgency IS 'urgent') DESC, last_action_at DESC, case_id"
    db.execute(f"CREATE INDEX cases_listing ON cases({listing})")
    for column in ("status", "counterpart", "kind"):
        db.execute(f"CREATE INDEX cases_{column} ON cases({column}, {listing})")
    for column in ("requested_by", "last_action_at", "urgency"):
        db.execute(f"CREATE INDEX cases_{column} ON cases({column})")
    # "Needs action" looks up reminded cases; few are, so the index holds only those.
    db.execute("CREATE INDEX cases_reminded_at ON cases(reminded_at) WHERE reminded_at IS NOT NULL")
    for tokenizer in CASES_FTS_TOKENIZERS:
        try:
            db.execute(
                "CREATE VIRTUAL TABLE cases_fts USING fts5(case_id UNINDEXED, reference, counterpart_reference, "
                f"summary, notes, attachments, tokenize = '{tokenizer}')"
            )
        except (sqlcipher3.OperationalError, sqlite3.OperationalError) as exc:
            if "tokenize" not in str(exc) and "tokenizer" not in str(exc):
                raise
            continue
        break
    else:
        raise RuntimeError("this SQLite build has none of the full-text tokenizers SEAJust Node needs")
    db.table("case_attachments").create(
        {
            "attachment_id": str,
            "case_id": str,
            "blob_id": str,  # sha256 of the ciphertext: what peers are asked for
            "sha256": str,  # of the plaintext
            "name": str,
            "media_type": str,
            "size": int,
            "language": str,
            "translation": str,
            "added_by": str,
            "added_at": str,
            "have": int,  # 1 once the blob is stored on this node
        },
        pk="attachment_id",
        not_null={"case_id", "blob_id", "have"},
        defaults={"have": 0},
    )
    db.execute("CREATE INDEX case_attachments_case_id ON case_attachments(case_id)")
    db.execute("CREATE INDEX case_attachments_have ON case_attachments(have, added_at, attachment_id)")
    # A blob arriving marks every attachment that names it, whichever case.
    db.execute("CREATE INDEX case_attachments_blob_id ON case_attachments(blob_id)")


def _v3_statistics(db: sqlite_utils.Database) -> None:
    """What this node sent the secretariat, and when: the officer's log of every statistics report that left."""
    db.table("stats_sent").create(
        {"id": int, "period": str, "sent_at": str, "payload": str, "trigger": str},
        pk="id",
        not_null={"period", "sent_at", "payload", "trigger"},
    )


def _v4_accounts(db: sqlite_utils.Database) -> None:
    """Officers' accounts for the web UI: password hashes, failed logins, server-side sessions, the setup code."""
    db.table("users").create(
        {
            "username": str,
            "password_hash": str,  # Argon2id, in the PHC string format
            "role": str,
            "disabled": int,
            "created_at": str,
            "last_login": str,
        },
        pk="username",
        not_null={"password_hash", "role", "disabled", "created_at"},
        defaults={"disabled": 0},
    )
    # Kept in the database, not in memory, so a restart does not lift a lock-out.
    db.table("login_failures").create(
        {"id": int, "username": str, "client": str, "at": float},
        pk="id",
        not_null={"username", "client", "at"},
    )
    db.execute("CREATE INDEX login_failures_username ON login_failures(username, at)")
    db.execute("CREATE INDEX login_failures_client ON login_failures(client, at)")
    db.execute("CREATE INDEX login_failures_at ON login_failures(at)")
    # Only the SHA-256 of a session id is stored: a copy of the database does not let anyone in.
    db.table("sessions").create(
        {"id_hash": str, "username": str, "csrf": str, "created_at": float, "last_seen": float},
        pk="id_hash",
        not_null={"username", "csrf", "created_at", "last_seen"},
    )
    db.execute("CREATE INDEX sessions_username ON sessions(username)")
    db.table("setup_codes").create(
        {"code_hash": str, "created_at": float, "used": int},
        pk="code_hash",
        not_null={"created_at", "used"},
        defaults={"used": 0},
    )


def _v5_invitations(db: sqlite_utils.Database) -> None:
    """One-time invitation codes (only their hashes) an admin gave to another authority (`node.invitations`)."""
    db.table("invitations").create(
        {
            "invite_id": str,  # first 8 bytes of SHA-256("id|" + code), hex
            "code_hash": bytes,  # SHA-256(code): never the code itself
            "created_at": str,
            "created_by": str,
            "expires_at": float,  # seconds since 1970
            "failures": int,  # wrong macs so far; MAX_ATTEMPTS burns the invitation
            "used_at": str,
            "used_by": str,  # the node ID that claimed it
        },
        pk="invite_id",
        not_null={"code_hash", "created_at", "created_by", "expires_at", "failures"},
    )


def _v6_officers(db: sqlite_utils.Database) -> None:
    """Who at this node answers for each case and each of its own contact points (`node.officers`).

    Local, never replicated: the counterpart deals with the authority, not with our user names. A display name
    and e-mail on the account let a handover tell the counterpart (and the directory) who took over.
    """
    db.table("users").add_column("full_name", str)
    db.table("users").add_column("email", str)
    db.table("case_officers").create(
        {"case_id": str, "username": str, "assigned_at": str, "assigned_by": str},
        pk="case_id",
        not_null={"username", "assigned_at", "assigned_by"},
    )
    db.execute("CREATE INDEX case_officers_username ON case_officers(username)")
    db.table("contact_accounts").create(
        {"contact_id": str, "username": str, "linked_at": str, "linked_by": str},
        pk="contact_id",
        not_null={"username", "linked_at", "linked_by"},
    )
    db.execute("CREATE INDEX contact_accounts_username ON contact_accounts(username)")


def _v7_membership(db: sqlite_utils.Database) -> None:
    """Network membership: mail through relays (`node.mail`: the sender's stream and seq per peer and relay, and
    the highest seq accepted per incoming stream, so a replayed envelope is refused after a restart too), case key
    epochs, revoked nodes and where a peer's trust came from."""
    db.table("mail_out").create(
        {"peer_id": str, "relay": str, "stream": bytes, "seq": int},
        pk=("peer_id", "relay"),
        not_null={"stream", "seq"},
    )
    db.table("mail_in").create(
        {"sender": str, "stream": bytes, "seq": int, "at": str},
        pk=("sender", "stream"),
        not_null={"seq", "at"},
    )
    # Case key epochs (`node.case_keys`): the earlier keys still needed to read a case, and when the current began.
    db.table("case_keys").add_column("older_keys", bytes)
    db.table("case_keys").add_column("key_since", str)
    db.execute("UPDATE case_keys SET key_since = received_at")
    # Nodes revoked from the network's roster (`node.membership`): refused for good, whatever card is offered.
    db.table("revoked_nodes").create(
        {"node_id": str, "reason": str, "revoked_at": str}, pk="node_id", not_null={"reason", "revoked_at"}
    )
    db.table("peers").add_column("source", str)  # "card" (an admin trusted it) or "roster" (admitted to the network)
    # Crypto-shredded documents (`node.retention`): their keys and content are gone; the version vector stays, so
    # peers do not offer them again.
    db.table("doc_tombstones").create(
        {"doc_id": str, "versions": str, "forgotten_at": str}, pk="doc_id", not_null={"versions", "forgotten_at"}
    )
    db.table("case_keys").add_column("shredded_at", str)
    # Key rotation (`crypto.rotation`): a peer's retired signing keys, still good for what it signed before; its
    # rotation chain; and this node's own rotation between announcing it and switching to the new keys.
    db.table("peer_old_keys").create(
        {"node_id": str, "sign_key": bytes, "kx_key": bytes, "retired_at": str},
        pk=("node_id", "sign_key"),
        not_null={"kx_key", "retired_at"},
    )
    db.table("peers").add_column("rotations", str)
    db.table("key_rotation").create(
        {"id": int, "secret": bytes, "statement": str, "seq": int, "created_at": str},
        pk="id",
        not_null={"secret", "statement", "seq", "created_at"},
    )


def _v8_search_rows(db: sqlite_utils.Database) -> None:
    """Search text split into rows: a case's head (references, summary, attachment names) and one row per note.

    One row per case made every note re-tokenise all the case's notes, so a case that runs for years slowed each
    note added to it. A note's row is written once and never rewritten (`node.case_index`). A row's number says
    whose it is: the case's `search_key` (its row number in `cases`) shifted left by 20 bits, plus 0 for the head
    and 1, 2, ... for notes.
    The old text moves over as a head row and one "legacy" row of all the notes, replaced by per-note rows the
    next time the case changes, so search finds the same cases before and after the upgrade.
    """
    fts_sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'cases_fts'").fetchone()[0]
    tokenizer = re.search(r"tokenize\s*=\s*'([^']*)'", fts_sql)
    if tokenizer is None:
        raise RuntimeError("the search table of this database names no tokenizer")
    db.execute(f"CREATE VIRTUAL TABLE case_text USING fts5(entry UNINDEXED, text, tokenize = '{tokenizer[1]}')")
    # A deleted row leaves no trace in the index (SQLite 3.42+): a shredded case's words must not stay readable
    # in old index segments. Affordable now that rows are deleted only when a case's head changes or it goes.
    with contextlib.suppress(sqlcipher3.OperationalError, sqlite3.OperationalError):
        db.execute("INSERT INTO case_text (case_text, rank) VALUES ('secure-delete', 1)")
    # `search_key` is the table's own row number (an INTEGER PRIMARY KEY, so kept by VACUUM): given by SQLite as a
    # case is inserted, and carried by every index entry, so a search that walks a list in order checks each case's
    # key against the words' matches without reading its row. The table is rebuilt around it, indexes unchanged.
    indexes = [
        r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cases'") if r[0]
    ]
    kept = [(r[1], r[2] or "TEXT") for r in db.execute("PRAGMA table_info(cases)")]
    not_null = {"case_id", "doc_id", "status"}
    definitions = ", ".join(f"{name} {type_}{' NOT NULL' if name in not_null else ''}" for name, type_ in kept)
    names = ", ".join(name for name, _ in kept)
    db.execute(f"CREATE TABLE cases_v8 (search_key INTEGER PRIMARY KEY, {definitions})")
    db.execute(f"INSERT INTO cases_v8 (search_key, {names}) SELECT rowid, {names} FROM cases")
    db.execute("DROP TABLE cases")
    db.execute("ALTER TABLE cases_v8 RENAME TO cases")
    for sql in [*indexes, "CREATE UNIQUE INDEX cases_case_id ON cases(case_id)"]:
        db.execute(sql)
    columns = ("reference", "counterpart_reference", "summary", "attachments")
    head = " || char(10) || ".join(f"coalesce(f.{c}, '')" for c in columns)
    db.execute(
        f"INSERT INTO case_text (rowid, entry, text) SELECT c.search_key << 20, '', {head} "
        "FROM cases_fts f JOIN cases c ON c.case_id = f.case_id"
    )
    db.execute(
        "INSERT INTO case_text (rowid, entry, text) SELECT (c.search_key << 20) + 1, '*', f.notes "
        "FROM cases_fts f JOIN cases c ON c.case_id = f.case_id WHERE f.notes != ''"
    )
    db.execute("DROP TABLE cases_fts")


Migration = Callable[[sqlite_utils.Database], None]

MIGRATIONS: Final[tuple[Migration, ...]] = (
    _v1_initial,
    _v2_cases,
    _v3_statistics,
    _v4_accounts,
    _v5_invitations,
    _v6_officers,
    _v7_membership,
    _v8_search_rows,
)

LATEST_VERSION: Final[int] = len(MIGRATIONS)
