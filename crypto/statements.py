"""Roster statements: the signed decisions that make up a network's membership.

A statement stands on its own: it names its author and is signed by it, so it can be checked by
anyone holding the author's card, wherever it was copied from (the roster documents replicate it
to every member; an auditor can be handed one). The text form mirrors a card::

    SJSTMT1.<base64url(canonical JSON)>.<base64url(Ed25519 over b"seajust-statement-v1\\n" + JSON)>

JSON: {"v": 1, "kind": ..., "by": node ID, "at": unix seconds, ...the kind's fields}. Kinds:

    found    {"network": name, "members": [{"card": card text, "standing": ...}, ...]}   the genesis
    admit    {"card": card text, "standing": "member" | "observer" | "secretariat"}
    endorse  {"node": node ID}          a member's agreement to an admission
    revoke   {"node": node ID, "reason": "compromised" | "left" | "other"}

Parsing is strict and raises only `StatementInvalid`: statements arrive from the network. What a
signature cannot settle (whether the author may make that decision) is `node.roster`'s job.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from crypto.encoding import b64url, unb64url
from crypto.errors import CryptoError, NodeIdError, SignatureInvalid
from crypto.identity import SIGNATURE_SIZE, Identity, verify_signature
from crypto.node_id import parse_node_id

PREFIX: Final = "SJSTMT1."
KINDS: Final = ("found", "admit", "endorse", "revoke")
STANDINGS: Final = ("member", "observer", "secretariat")
REASONS: Final = ("compromised", "left", "other")
MAX_STATEMENT: Final = 256 * 1024  # a founding statement lists every founding member's card (8 kB at most each)
MAX_FOUNDERS: Final = 30
_DOMAIN: Final = b"seajust-statement-v1\n"
_NETWORK: Final = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_FIELDS: Final = {
    "found": frozenset({"network", "members"}),
    "admit": frozenset({"card", "standing"}),
    "endorse": frozenset({"node"}),
    "revoke": frozenset({"node", "reason"}),
}
_COMMON: Final = frozenset({"v", "kind", "by", "at"})


class StatementInvalid(CryptoError):
    """That roster statement is malformed or its signature does not verify."""


@dataclass(frozen=True)
class Statement:
    """A well-formed statement; `verify` it with its author's key before acting on it."""

    kind: str
    by: str
    at: int
    fields: dict[str, Any]
    text: str
    body: bytes
    sig: bytes

    @property
    def subject(self) -> str | None:
        """The node an endorsement or a revocation is about."""
        node = self.fields.get("node")
        return node if isinstance(node, str) else None

    def verify(self, sign_key: bytes) -> None:
        """Raise `SignatureInvalid` unless the author's key signed exactly this statement."""
        verify_signature(sign_key, self.sig, _DOMAIN + self.body)


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bad(what: str) -> NoReturn:
    raise StatementInvalid(f"roster statement is malformed ({what})")


def _node_id(value: Any, what: str) -> str:
    try:
        if isinstance(value, str) and parse_node_id(value) == value:
            return value
    except NodeIdError:
        pass
    _bad(f"{what} is not a canonical node ID")


def _check_fields(kind: str, fields: dict[str, Any]) -> None:
    if kind == "found":
        if not isinstance(fields["network"], str) or not _NETWORK.fullmatch(fields["network"]):
            _bad("network name")
        members = fields["members"]
        if not isinstance(members, list) or not 1 <= len(members) <= MAX_FOUNDERS:
            _bad("founding members")
        for member in members:
            if not isinstance(member, dict) or set(member) != {"card", "standing"}:
                _bad("founding member")
            if not isinstance(member["card"], str) or member["standing"] not in STANDINGS:
                _bad("founding member")
    elif kind == "admit":
        if not isinstance(fields["card"], str) or fields["standing"] not in STANDINGS:
            _bad("admission")
    elif kind == "endorse":
        _node_id(fields["node"], "endorsed node")
    else:
        _node_id(fields["node"], "revoked node")
        if fields["reason"] not in REASONS:
            _bad("revocation reason")


def make_statement(identity: Identity, kind: str, *, now: int | None = None, **fields: Any) -> str:
    """Sign a statement as `identity`; ValueError for fields `parse_statement` would refuse."""
    if kind not in KINDS or set(fields) != _FIELDS[kind]:
        raise ValueError(f"a {kind} statement has the fields {sorted(_FIELDS.get(kind, ()))}")
    payload = {"v": 1, "kind": kind, "by": identity.node_id, "at": int(time.time()) if now is None else now, **fields}
    try:
        _check_fields(kind, payload)
    except StatementInvalid as exc:
        raise ValueError(exc.args[0]) from None
    body = _canonical(payload)
    text = PREFIX + b64url(body) + "." + b64url(identity.sign(_DOMAIN + body))
    if len(text) > MAX_STATEMENT:
        raise ValueError("roster statement is too large")
    return text


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def parse_statement(text: object) -> Statement:
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_STATEMENT:
        _bad("not a statement")
    parts = text[len(PREFIX) :].split(".")
    if len(parts) != 2:
        _bad("wrong number of parts")
    body, sig = unb64url(parts[0]), unb64url(parts[1])
    if body is None or sig is None or len(sig) != SIGNATURE_SIZE:
        _bad("encoding")
    try:
        payload = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        _bad("not JSON")
    if not isinstance(payload, dict) or payload.get("v") != 1 or payload.get("kind") not in KINDS:
        _bad("version or kind")
    kind = payload["kind"]
    if set(payload) != _COMMON | _FIELDS[kind]:
        _bad("unexpected contents")
    if type(payload["at"]) is not int or not 0 <= payload["at"] < 2**63:
        _bad("time")
    by = _node_id(payload["by"], "author")
    _check_fields(kind, payload)
    if _canonical(payload) != body:
        _bad("not in canonical form")
    fields = {k: v for k, v in payload.items() if k not in _COMMON}
    return Statement(kind=kind, by=by, at=payload["at"], fields=fields, text=text, body=body, sig=sig)


def verified(statement: Statement, sign_key: bytes | None) -> bool:
    if sign_key is None:
        return False
    try:
        statement.verify(sign_key)
    except SignatureInvalid:
        return False
    return True
