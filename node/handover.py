"""Handing an officer's work to a successor in one action, so that expertise is not lost when people change.

When a contact point or officer leaves, an admin moves everything they answer for to a successor: every case
still in progress, and this authority's directory entries that describe them. Responsibility is local
(`node.officers`), so it moves in one database transaction, with an audit row per item; the previous account
may be disabled in the same transaction, and if it cannot be (the last admin), nothing moves.

What other nodes see is written afterwards through the ordinary replicated paths, so it carries the same
signatures and checks as any other change, and the history is kept rather than rewritten:

* each moved case gets a note in its shared history naming the previous and the new officer by their display
  names (never user names, which are this node's business), which the counterpart accepts like any note;
* each moved directory entry takes the successor's name and e-mail when the account has them, through
  `Directory.update`; title, authority, languages and expertise stay, because they describe the post, which
  is what other authorities look up.

Closed and withdrawn cases keep their officer: they record who did the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from node.accounts import Accounts, User
from node.cases import Cases
from node.directory import Directory
from node.errors import NodeError, NotFound, ValidationError
from node.officers import Officers, officers_of
from node.storage import Database

if TYPE_CHECKING:
    from node.runtime import Node

log = logging.getLogger(__name__)

# A withdrawn case waits only to be closed, and a closed one for nothing: both stay with the officer who had them.
STAYS: Final = frozenset({"closed", "withdrawn"})


@dataclass(frozen=True)
class HandoverSummary:
    cases: list[str]
    contacts: list[str]
    disabled: bool
    unrecorded: list[str] = field(default_factory=list)  # items moved whose replicated trace could not be written

    def as_json(self) -> dict[str, Any]:
        return {
            "cases": len(self.cases),
            "contacts": len(self.contacts),
            "disabled": self.disabled,
            "case_ids": self.cases,
            "contact_ids": self.contacts,
            "unrecorded": self.unrecorded,
        }


def handover_note(previous: User, successor: User) -> str:
    """The sentence the counterpart reads: display names only; a missing one is left out, not replaced."""
    old, new = previous.full_name.strip(), successor.full_name.strip()
    if old and new:
        return f"Responsibility for this case was handed over from {old} to {new}."
    if new:
        return f"Responsibility for this case was handed over to {new}."
    if old:
        return f"Responsibility for this case was handed over from {old} to a colleague."
    return "Responsibility for this case was handed over to another officer."


class Handover:
    def __init__(
        self, db: Database, accounts: Accounts, officers: Officers, cases: Cases, directory: Directory
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._officers = officers
        self._cases = cases
        self._directory = directory

    def hand_over(self, from_user: str, to_user: Any, *, actor: str, disable: bool = False) -> HandoverSummary:
        """Move `from_user`'s open cases and linked directory entries to `to_user` (see the module docstring)."""
        self._officers.require_admin(actor)
        previous = self._accounts.get(from_user)
        if previous is None:
            raise NotFound("there is no such account on this node")
        if not isinstance(disable, bool):
            raise ValidationError("disable must be true or false", fields={"disable": "must be true or false"})
        successor = self._officers.active_user(to_user, "to")
        if successor.username == previous.username:
            raise ValidationError("hand over to another account", fields={"to": "is the account handing over"})
        contacts = [c for c in self._officers.contacts_of(previous.username) if self._officers.is_own_contact(c)]

        with self._db.write() as w:
            cases = [
                str(r[0])
                for r in w.execute(
                    "SELECT o.case_id FROM case_officers o JOIN cases c ON c.case_id = o.case_id "
                    f"WHERE o.username = ? AND c.status NOT IN ({', '.join('?' for _ in STAYS)}) ORDER BY o.case_id",
                    (previous.username, *sorted(STAYS)),
                ).fetchall()
            ]
            for case_id in cases:
                self._officers.put_case(w, case_id, successor.username, actor=actor)
                self._officers.audit(
                    w, actor, "handover.case", f"{case_id} {previous.username} -> {successor.username}"
                )
            # Links to entries since deleted from the directory go: nobody is described by them any more.
            w.execute("DELETE FROM contact_accounts WHERE username = ?", (previous.username,))
            for contact_id in contacts:
                self._officers.put_contact(w, contact_id, successor.username, actor=actor)
                self._officers.audit(
                    w, actor, "handover.contact", f"{contact_id} {previous.username} -> {successor.username}"
                )
            if disable:
                self._accounts.disable(previous.username, actor=actor)  # joins this transaction: all or nothing
            self._officers.audit(
                w,
                actor,
                "user.handover",
                f"{previous.username} -> {successor.username}: {len(cases)} cases, {len(contacts)} contacts",
            )

        unrecorded = self._record(cases, contacts, previous, successor, actor)
        return HandoverSummary(cases, contacts, disable or previous.disabled, unrecorded)

    def _record(self, cases: list[str], contacts: list[str], previous: User, successor: User, actor: str) -> list[str]:
        """Write the replicated traces; an item whose trace fails stays moved and is reported, not undone."""
        failed: list[str] = []
        note = {"text": handover_note(previous, successor)}
        for case_id in cases:
            try:
                self._cases.add_note(case_id, note, actor=actor)
            except NodeError as exc:
                log.warning("handover note not written on case %s: %s", case_id, type(exc).__name__)
                failed.append(case_id)
        changes = {k: v for k, v in (("name", successor.full_name), ("email", successor.email)) if v}
        for contact_id in contacts if changes else []:
            try:
                self._directory.update(contact_id, changes, actor=actor)
            except NodeError as exc:
                log.warning("handover: contact %s not updated: %s", contact_id, type(exc).__name__)
                failed.append(contact_id)
        return failed


def handover_of(node: Node) -> Handover:
    """The handover for a running node (stateless over its components, so built where it is needed)."""
    return Handover(node.db, node.accounts, officers_of(node), node.cases, node.directory)
