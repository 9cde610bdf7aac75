"""Who may write, and who may receive, each kind of shared document.

One table for the whole node, consulted when a local change is made, when a peer's update
arrives (whoever relayed it: the check is on the update's signed author), and when choosing
which documents to offer a peer. Network-wide document IDs name their kind and owner, so
the rule needs no lookup: `directory/<node id>` is the part of the contact directory that one
authority keeps and only it may write (likewise `profile/<node id>`, its country profile, and
`notices/<node id>`, a secretariat node's network notices).

A case (`case/<id>`) is different: its parties are listed in its signed key grant, held by
`node.case_keys`, and only they may write it or receive it. `Policy` joins the two rules.

Once the network has a roster (`node.roster`, kept in the `roster/<node id>` documents), the
network-wide documents are accepted only from its members and sent only to them: a node that was
never admitted, or was revoked, neither writes the directory nor reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

DIRECTORY_PREFIX: Final = "directory/"
PROFILE_PREFIX: Final = "profile/"
NOTICES_PREFIX: Final = "notices/"
ROSTER_PREFIX: Final = "roster/"
_OWNED_PREFIXES: Final = (DIRECTORY_PREFIX, PROFILE_PREFIX, NOTICES_PREFIX, ROSTER_PREFIX)


def directory_doc(node_id: str) -> str:
    return DIRECTORY_PREFIX + node_id


def directory_owner(doc_id: str) -> str | None:
    if doc_id.startswith(DIRECTORY_PREFIX):
        return doc_id[len(DIRECTORY_PREFIX) :] or None
    return None


def profile_doc(node_id: str) -> str:
    return PROFILE_PREFIX + node_id


def notices_doc(node_id: str) -> str:
    return NOTICES_PREFIX + node_id


def roster_doc(node_id: str) -> str:
    """A node's roster statements (foundings, admissions, endorsements, revocations it signed)."""
    return ROSTER_PREFIX + node_id


def owner_of(doc_id: str) -> str | None:
    """The one authority that may write a network-wide document (its directory part, its country profile)."""
    for prefix in _OWNED_PREFIXES:
        if doc_id.startswith(prefix):
            return doc_id[len(prefix) :] or None
    return None


def may_write(doc_id: str, author_id: str) -> bool:
    """Only the authority a directory part belongs to writes it; unknown document kinds are refused."""
    owner = owner_of(doc_id)
    return owner is not None and owner == author_id


def is_network_wide(doc_id: str) -> bool:
    """Network-wide documents go to every trusted member, the secretariat included."""
    return doc_id.startswith(_OWNED_PREFIXES)


def entitled(doc_id: str, peer_id: str) -> bool:
    """May this trusted peer receive a network-wide document? (cases: see `Policy`)"""
    return is_network_wide(doc_id)


CASE_PREFIX: Final = "case/"


def is_case(doc_id: str) -> bool:
    return doc_id.startswith(CASE_PREFIX) and len(doc_id) > len(CASE_PREFIX)


REPORT_PREFIX: Final = "report/"


def report_doc(node_id: str) -> str:
    """An authority's statistics reports: written by it, sent to secretariat nodes only."""
    return REPORT_PREFIX + node_id


class Policy:
    """The node's whole write and share rule.

    `parties(doc_id)` names a case's parties (empty: not a case this node holds); `role_of(node_id)`
    is a trusted node's role ("authority", "secretariat"), None for anyone else.
    """

    def __init__(
        self,
        parties: Callable[[str], Mapping[str, str]],
        role_of: Callable[[str], str | None],
        *,
        me: str = "",
        member: Callable[[str], bool | None] = lambda node_id: None,
    ) -> None:
        """`member(node_id)` is None while the network has no roster, else whether the node is on it."""
        self._parties = parties
        self._role_of = role_of
        self._me = me
        self._member = member

    def may_write(self, doc_id: str, author_id: str) -> bool:
        if is_case(doc_id):
            return author_id in self._parties(doc_id)
        if author_id != self._me:
            on_roster = self._member(author_id)
            # Before the network is founded any trusted node keeps its own roster document (its key rotations);
            # only a founding by a secretariat the reader trusts makes a roster (`node.roster`).
            if on_roster is False:
                return False
        if doc_id.startswith(REPORT_PREFIX):
            return doc_id[len(REPORT_PREFIX) :] == author_id
        if doc_id.startswith(NOTICES_PREFIX):  # the secretariat's notices: its own, and only if it is the secretariat
            return may_write(doc_id, author_id) and self._role_of(author_id) == "secretariat"
        return may_write(doc_id, author_id)

    def entitled(self, doc_id: str, peer_id: str) -> bool:
        if is_case(doc_id):
            return peer_id in self._parties(doc_id)
        if doc_id.startswith(REPORT_PREFIX):
            # The report goes to secretariat nodes; its author holds it too (the engine asks for itself).
            return self._role_of(peer_id) == "secretariat" or doc_id[len(REPORT_PREFIX) :] == peer_id
        if doc_id.startswith(ROSTER_PREFIX):
            return True  # a newcomer learns who else is in the network from the roster itself
        return is_network_wide(doc_id) and (peer_id == self._me or self._member(peer_id) is not False)

    def encrypted(self, doc_id: str) -> bool:
        """Cases are sealed with their own key; network-wide documents are readable by every member."""
        return is_case(doc_id)


def known_kind(doc_id: str) -> bool:
    return owner_of(doc_id) is not None
