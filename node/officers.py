"""Who at this node answers for a case, and which account each of this authority's contact points describes.

A case is shared with the counterpart, but the person working on it is this node's business: the counterpart
deals with the authority, and our user names are nothing it needs. So responsibility lives in local tables
(`case_officers`, `contact_accounts`), never in a replicated document, and a handover (`node.handover`) can
move it in one local transaction.

Who may change it: an admin; the responsible officer, passing the case on; anyone, for a case nobody holds yet
(a case that arrived from the counterpart, or was opened with an API token, waits for someone to take it).
An API token or the command line is the operator's own credential and may do what an admin may.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from node.accounts import Accounts, User, normal_username
from node.case_index import CaseIndex
from node.directory import Directory
from node.documents import utc_now
from node.errors import Forbidden, NotFound, ValidationError
from node.storage import Database

if TYPE_CHECKING:
    from node.runtime import Node

USER_ACTOR: Final = "user:"


def acting_user(actor: str) -> str | None:
    """The signed-in person behind an audit actor label (`user:NAME`); None for an API token or the CLI."""
    return actor[len(USER_ACTOR) :] if actor.startswith(USER_ACTOR) else None


class Officers:
    """Reads and writes of the responsibility tables; every write is audited under its actor."""

    def __init__(
        self,
        db: Database,
        accounts: Accounts,
        index: CaseIndex,
        directory: Directory,
        own_id: str,
        *,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._index = index
        self._directory = directory
        self._own_id = own_id
        self._clock = clock

    # -- reading --------------------------------------------------------------------------

    def of_case(self, case_id: str) -> dict[str, Any] | None:
        """The responsible officer of a case, with the display name colleagues know them by; None if nobody."""
        rows = self._db.query(
            "SELECT o.username, o.assigned_at, o.assigned_by, u.full_name, u.disabled "
            "FROM case_officers o LEFT JOIN users u ON u.username = o.username WHERE o.case_id = ?",
            (case_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return {
            "username": row["username"],
            "full_name": row["full_name"] or "",
            "disabled": bool(row["disabled"]),
            "assigned_at": row["assigned_at"],
            "assigned_by": row["assigned_by"],
        }

    def cases_of(self, username: str) -> list[dict[str, Any]]:
        """Every case `username` answers for, with its status (closed ones included: they keep their officer)."""
        return self._db.query(
            "SELECT o.case_id, c.status FROM case_officers o LEFT JOIN cases c ON c.case_id = o.case_id "
            "WHERE o.username = ? ORDER BY o.case_id",
            (normal_username(username),),
        )

    def account_of_contact(self, contact_id: str) -> str | None:
        rows = self._db.query("SELECT username FROM contact_accounts WHERE contact_id = ?", (contact_id,))
        return str(rows[0]["username"]) if rows else None

    def contacts_of(self, username: str) -> list[str]:
        rows = self._db.query(
            "SELECT contact_id FROM contact_accounts WHERE username = ? ORDER BY contact_id",
            (normal_username(username),),
        )
        return [str(r["contact_id"]) for r in rows]

    # -- writing --------------------------------------------------------------------------

    def assign(self, case_id: str, username: Any, *, actor: str) -> dict[str, Any]:
        """Make `username` responsible for the case; the new officer as `of_case` gives it."""
        if self._index.get(case_id) is None:
            raise NotFound("no such case on this node")
        user = self.active_user(username, "username")
        current = self.of_case(case_id)
        self._may_reassign(actor, current)
        if current is None or current["username"] != user.username:
            with self._db.write() as w:
                self.put_case(w, case_id, user.username, actor=actor)
                self.audit(w, actor, "case.officer", f"{case_id} {user.username}")
        officer = self.of_case(case_id)
        assert officer is not None
        return officer

    def link_contact(self, contact_id: str, username: Any, *, actor: str) -> dict[str, Any]:
        """Say which account one of this authority's contact points describes (None unlinks it), so a handover
        finds the entry. Only an admin (or the operator) links entries: they decide who stands for whom."""
        contact = self._directory.get(contact_id)
        if contact["owner"] != self._own_id:
            raise Forbidden("this contact point belongs to another authority; only its own node links it")
        self.require_admin(actor)
        name = None if username is None else self.active_user(username, "username").username
        with self._db.write() as w:
            if name is None:
                w.execute("DELETE FROM contact_accounts WHERE contact_id = ?", (contact_id,))
            else:
                self.put_contact(w, contact_id, name, actor=actor)
            self.audit(w, actor, "contact.account", f"{contact_id} {name or '-'}")
        return {"contact_id": contact_id, "username": name}

    # -- the pieces a handover shares -----------------------------------------------------

    def active_user(self, username: Any, field: str) -> User:
        """The enabled account named in a request body; 422 naming `field` otherwise."""
        if not isinstance(username, str) or not username.strip():
            raise ValidationError(f"give the {field} of an account", fields={field: "is required"})
        user = self._accounts.get(username)
        if user is None:
            raise ValidationError(f"no such account: {field}", fields={field: "no such account on this node"})
        if user.disabled:
            raise ValidationError(f"that account is disabled: {field}", fields={field: "is disabled"})
        return user

    def require_admin(self, actor: str) -> None:
        name = acting_user(actor)
        if name is None:
            return
        user = self._accounts.get(name)
        if user is None or user.disabled or user.role != "admin":
            raise Forbidden("only an administrator of this node may do that")

    def _may_reassign(self, actor: str, current: dict[str, Any] | None) -> None:
        name = acting_user(actor)
        if name is None or current is None or current["username"] == name:
            return
        self.require_admin(actor)

    def put_case(self, w: Any, case_id: str, username: str, *, actor: str) -> None:
        """Inside the caller's transaction: `username` now answers for `case_id`."""
        w.execute(
            "INSERT INTO case_officers (case_id, username, assigned_at, assigned_by) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(case_id) DO UPDATE SET username = excluded.username, "
            "assigned_at = excluded.assigned_at, assigned_by = excluded.assigned_by",
            (case_id, username, self._clock(), actor),
        )

    def put_contact(self, w: Any, contact_id: str, username: str, *, actor: str) -> None:
        """Inside the caller's transaction: contact point `contact_id` describes `username`."""
        w.execute(
            "INSERT INTO contact_accounts (contact_id, username, linked_at, linked_by) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(contact_id) DO UPDATE SET username = excluded.username, "
            "linked_at = excluded.linked_at, linked_by = excluded.linked_by",
            (contact_id, username, self._clock(), actor),
        )

    def is_own_contact(self, contact_id: str) -> bool:
        """Whether the entry still exists in this authority's part of the directory."""
        try:
            return bool(self._directory.get(contact_id)["owner"] == self._own_id)
        except NotFound:
            return False

    def audit(self, w: Any, actor: str, action: str, subject: str) -> None:
        w.table("audit_log").insert({"at": self._clock(), "actor": actor, "action": action, "subject": subject})

    def creator_takes(self, case_id: str, actor: str) -> None:
        """The officer who opened a case in the web UI answers for it; a case opened with a token waits."""
        name = acting_user(actor)
        user = self._accounts.get(name) if name else None
        if user is None or user.disabled:
            return
        with self._db.write() as w:
            self.put_case(w, case_id, user.username, actor=actor)
            self.audit(w, actor, "case.officer", f"{case_id} {user.username}")


def officers_of(node: Node) -> Officers:
    """The officers component for a running node (stateless over its database, so built where it is needed)."""
    return Officers(node.db, node.accounts, node.cases.index, node.directory, node.identity.node_id)
