"""Version vectors: `missing_for` finds exactly what a peer lacks, in applicable order; `merge` is the pointwise
maximum (a join: commutative, associative, idempotent); `dominates` is the order that join belongs to."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.messages import SignedUpdate, VersionVector
from sync.versions import dominates, merge, missing_for

AUTHORS = ["alice", "bob", "carol"]

vectors = st.dictionaries(st.sampled_from(AUTHORS), st.integers(min_value=0, max_value=20), max_size=3)


def same(a: VersionVector, b: VersionVector) -> bool:
    """Equal as version vectors: an author missing holds 0."""
    return all(a.get(x, 0) == b.get(x, 0) for x in {*a, *b})


@st.composite
def logs(draw: st.DrawFn) -> list[SignedUpdate]:
    """A document's log: per author, consecutive runs of seqs (some runs compacted into one entry), shuffled."""
    entries = []
    for author in draw(st.lists(st.sampled_from(AUTHORS), unique=True)):
        seq = 0
        for size in draw(st.lists(st.integers(min_value=1, max_value=4), max_size=6)):
            entries.append(SignedUpdate("doc", author, seq + 1, seq + size, b"", b""))
            seq += size
    return draw(st.permutations(entries))


def test_missing_for_by_example() -> None:
    a1, a2, b1 = (SignedUpdate("doc", a, s, s, b"", b"") for a, s in [("alice", 1), ("alice", 2), ("bob", 1)])
    assert missing_for([b1, a2, a1], {}) == [b1, a1, a2]  # storage order of authors, each author's in seq order
    assert missing_for([a1, b1, a2], {}) == [a1, b1, a2]
    assert missing_for([b1, a2, a1], {"alice": 1}) == [b1, a2]
    assert missing_for([b1, a2, a1], {"alice": 2, "bob": 1}) == []
    assert missing_for([b1, a2, a1], {"alice": 5, "bob": 0}) == [b1]


def test_a_compacted_entry_reaching_past_what_is_held_is_missing() -> None:
    merged = SignedUpdate("doc", "alice", 1, 10, b"", b"")
    assert missing_for([merged], {"alice": 7}) == [merged]
    assert missing_for([merged], {"alice": 10}) == []


@given(logs(), vectors)
def test_missing_for_returns_exactly_the_entries_beyond_the_vector(
    entries: list[SignedUpdate], have: VersionVector
) -> None:
    missing = missing_for(entries, have)
    assert sorted(missing, key=id) == sorted((e for e in entries if e.seq_to > have.get(e.author, 0)), key=id)


@given(logs(), vectors)
def test_missing_entries_come_in_an_order_that_applies_without_gaps(
    entries: list[SignedUpdate], have: VersionVector
) -> None:
    held = dict(have)
    for entry in missing_for(entries, have):
        assert entry.seq_from <= held.get(entry.author, 0) + 1
        held[entry.author] = entry.seq_to
    assert dominates(held, {e.author: e.seq_to for e in entries})


@given(logs())
def test_nothing_is_missing_for_a_holder_of_everything(entries: list[SignedUpdate]) -> None:
    have = {e.author: max(x.seq_to for x in entries if x.author == e.author) for e in entries}
    assert missing_for(entries, have) == []
    everything = missing_for(entries, {})
    assert sorted(everything, key=lambda e: (e.author, e.seq_to)) == sorted(entries, key=lambda e: (e.author, e.seq_to))
    # the authors take turns as in the log given (its storage order, causal), each author's in seq order
    assert [e.author for e in everything] == [e.author for e in entries]


@given(vectors, vectors)
def test_merge_is_the_pointwise_maximum(a: VersionVector, b: VersionVector) -> None:
    merged = merge(a, b)
    assert same(merged, {x: max(a.get(x, 0), b.get(x, 0)) for x in {*a, *b}})
    assert dominates(merged, a)
    assert dominates(merged, b)


@given(vectors, vectors)
def test_merge_does_not_modify_its_arguments(a: VersionVector, b: VersionVector) -> None:
    a_before, b_before = dict(a), dict(b)
    merge(a, b)
    assert (a, b) == (a_before, b_before)


@given(vectors, vectors, vectors)
def test_merge_is_a_join(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert same(merge(a, b), merge(b, a))
    assert same(merge(merge(a, b), c), merge(a, merge(b, c)))
    assert same(merge(a, a), a)
    assert same(merge(a, {}), a)


@given(vectors, vectors, vectors)
def test_merge_is_the_least_vector_dominating_both(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    if dominates(c, a) and dominates(c, b):
        assert dominates(c, merge(a, b))


@given(vectors, vectors)
def test_dominates_means_merging_adds_nothing(a: VersionVector, b: VersionVector) -> None:
    assert dominates(a, b) == same(merge(a, b), a)


@given(vectors, vectors, vectors)
def test_dominates_is_a_partial_order(a: VersionVector, b: VersionVector, c: VersionVector) -> None:
    assert dominates(a, a)
    assert dominates(a, {})
    if dominates(a, b) and dominates(b, a):
        assert same(a, b)
    if dominates(a, b) and dominates(b, c):
        assert dominates(a, c)


def test_dominates_by_example() -> None:
    assert dominates({"alice": 2, "bob": 1}, {"alice": 2})
    assert not dominates({"alice": 2}, {"alice": 2, "bob": 1})
    assert dominates({"alice": 2}, {"alice": 2, "bob": 0})
    assert not dominates({"alice": 1, "bob": 5}, {"alice": 2})
