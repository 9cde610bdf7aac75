"""API bearer tokens: random, shown once, stored only as a SHA-256 hash.

A token has 256 bits of entropy, so a plain hash is enough to make the stored copy useless to
a thief (no need for a slow password hash); comparison is by hash lookup, so its timing says
nothing about the token.
"""

from __future__ import annotations

import hashlib
import secrets

from node.documents import utc_now
from node.storage import Database

TOKEN_PREFIX = "sjt_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db: Database, label: str = "") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as w:
        w.table("api_tokens").insert({"token_hash": _hash(token), "label": label, "created_at": utc_now()})
        w.table("audit_log").insert({"at": utc_now(), "actor": "cli", "action": "token.create", "subject": label})
    return token


def token_is_valid(db: Database, token: str) -> bool:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return False
    return bool(db.query("SELECT 1 FROM api_tokens WHERE token_hash = ?", (_hash(token),)))
