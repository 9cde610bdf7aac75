"""Version-vector arithmetic: which signed updates a peer is missing.

A version vector maps each author of a document to the highest sequence number of that
author's updates held. It plays the part of a Yjs state vector, but over *signed* updates:
a Yjs state vector cannot say who deleted what, so a diff computed from it could not be
checked against the author's rights by the node that receives it (see docs/decisions).
"""

from collections.abc import Iterable

from sync.messages import SignedUpdate, VersionVector


def missing_for(entries: Iterable[SignedUpdate], have: VersionVector) -> list[SignedUpdate]:
    """The entries a holder of `have` lacks, each author's in seq order, authors interleaved as given.

    Given in the order the holder stored them, which is causal (a node stores an update only
    once what it builds on is there), the result lets the recipient check each entry against
    the state its author saw: a case's rules judge a reply only after the message it answers.
    """
    wanted = [e for e in entries if e.seq_to > have.get(e.author, 0)]
    by_author: dict[str, list[SignedUpdate]] = {}
    for entry in sorted(wanted, key=lambda e: e.seq_to, reverse=True):
        by_author.setdefault(entry.author, []).append(entry)
    return [by_author[e.author].pop() for e in wanted]


def merge(a: VersionVector, b: VersionVector) -> VersionVector:
    merged = dict(a)
    for author, seq in b.items():
        if seq > merged.get(author, 0):
            merged[author] = seq
    return merged


def dominates(a: VersionVector, b: VersionVector) -> bool:
    """True when `a` holds everything `b` does."""
    return all(a.get(author, 0) >= seq for author, seq in b.items())
