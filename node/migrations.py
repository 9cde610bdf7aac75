"""Schema migrations, versioned in code and applied in order on open.

`PRAGMA user_version` holds the number of migrations applied. A migration never changes
once released: fixes come as a new migration, so every node walks the same path from any
earlier schema (tested from each one), and a node refuses to open a schema newer than it knows.
"""

from collections.abc import Callable
from typing import Final

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


Migration = Callable[[sqlite_utils.Database], None]

MIGRATIONS: Final[tuple[Migration, ...]] = (_v1_initial,)

LATEST_VERSION: Final[int] = len(MIGRATIONS)
