"""Who may write, and who may receive, each kind of shared document.

One table for the whole node, consulted when a local change is made, when a peer's update
arrives (whoever relayed it: the check is on the update's signed author), and when choosing
which documents to offer a peer. Document IDs name their kind and owner, so the rule needs
no lookup: `directory/<node id>` is the part of the contact directory that one authority
keeps and only it may write.
"""

from __future__ import annotations

from typing import Final

DIRECTORY_PREFIX: Final = "directory/"
PROFILE_PREFIX: Final = "profile/"
_OWNED_PREFIXES: Final = (DIRECTORY_PREFIX, PROFILE_PREFIX)


def directory_doc(node_id: str) -> str:
    return DIRECTORY_PREFIX + node_id


def directory_owner(doc_id: str) -> str | None:
    if doc_id.startswith(DIRECTORY_PREFIX):
        return doc_id[len(DIRECTORY_PREFIX) :] or None
    return None


def profile_doc(node_id: str) -> str:
    return PROFILE_PREFIX + node_id


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
    """May this trusted peer receive the document? (case documents will go only to their parties)"""
    return is_network_wide(doc_id)


def known_kind(doc_id: str) -> bool:
    return owner_of(doc_id) is not None
