"""The relay's mailboxes on a real SQLite file: limits, all-or-nothing deposits, own mail only, expiry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.envelope import seal
from crypto.identity import Identity
from sync.mailbox import MAIL_TOPIC
from sync.relay_store import DB_NAME, RelayRefused, RelayStore, RelayUsage

ALICE = Identity.from_secret_bytes(bytes(range(64)))
BOB = Identity.from_secret_bytes(bytes(range(64, 128)))
CAROL = Identity.from_secret_bytes(bytes(range(128, 192)))
NOW = 1_700_000_000.0
DAY = 86400.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def envelope(sender: Identity, recipient: Identity, payload: bytes = b"hello", seq: int = 1) -> bytes:
    return seal(
        sender,
        recipient_id=recipient.node_id,
        recipient_kx_key=recipient.public.kx_key,
        topic=MAIL_TOPIC,
        stream=bytes(16),
        seq=seq,
        payload=payload,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[RelayStore]:
    opened = RelayStore(tmp_path / DB_NAME, clock=clock)
    yield opened
    opened.close()


def count(store: RelayStore) -> int:
    return store.usage().messages


def test_deposit_then_fetch_returns_the_same_bytes_in_order(store: RelayStore) -> None:
    mail = [envelope(ALICE, BOB, b"one", 1), envelope(ALICE, BOB, b"two", 2)]
    ids = store.deposit(ALICE.node_id, mail)
    assert len(ids) == 2 and ids[0] < ids[1]
    mail3 = envelope(CAROL, BOB, b"three")
    (id3,) = store.deposit(CAROL.node_id, [mail3])
    assert store.fetch(BOB.node_id, 0, 2**30) == [(ids[0], mail[0]), (ids[1], mail[1]), (id3, mail3)]
    assert store.fetch(BOB.node_id, ids[0], 2**30) == [(ids[1], mail[1]), (id3, mail3)]
    assert store.fetch(BOB.node_id, id3, 2**30) == []


def test_fetch_gives_only_the_recipients_mail(store: RelayStore) -> None:
    store.deposit(ALICE.node_id, [envelope(ALICE, BOB)])
    assert store.fetch(CAROL.node_id, 0, 2**30) == []
    assert store.fetch(ALICE.node_id, 0, 2**30) == []


def test_fetch_stops_at_max_bytes_but_always_gives_one(store: RelayStore) -> None:
    mail = [envelope(ALICE, BOB, bytes(1000), seq) for seq in range(1, 6)]
    ids = store.deposit(ALICE.node_id, mail)
    size = len(mail[0])
    assert [i for i, _ in store.fetch(BOB.node_id, 0, 2 * size)] == ids[:2]
    assert [i for i, _ in store.fetch(BOB.node_id, 0, 2 * size + 1)] == ids[:2]
    assert [i for i, _ in store.fetch(BOB.node_id, 0, 1)] == ids[:1]
    assert [i for i, _ in store.fetch(BOB.node_id, ids[3], 1)] == ids[4:]


def test_ids_are_never_reused_after_deletion(store: RelayStore) -> None:
    (first,) = store.deposit(ALICE.node_id, [envelope(ALICE, BOB)])
    assert store.ack(BOB.node_id, first) == 1
    (second,) = store.deposit(ALICE.node_id, [envelope(ALICE, BOB)])
    assert second > first


def test_ack_deletes_only_the_recipients_own_mail_up_to_the_id(store: RelayStore) -> None:
    to_bob = store.deposit(ALICE.node_id, [envelope(ALICE, BOB, seq=s) for s in (1, 2, 3)])
    (to_carol,) = store.deposit(ALICE.node_id, [envelope(ALICE, CAROL)])
    assert store.ack(CAROL.node_id, to_bob[-1]) == 0  # Bob's ids are below; they are not Carol's to delete
    assert store.ack(ALICE.node_id, 10**9) == 0  # the sender cannot take its mail back
    assert store.ack(BOB.node_id, to_bob[1]) == 2
    assert [i for i, _ in store.fetch(BOB.node_id, 0, 2**30)] == [to_bob[2]]
    assert [i for i, _ in store.fetch(CAROL.node_id, 0, 2**30)] == [to_carol]
    assert store.ack(BOB.node_id, to_bob[1]) == 0


def test_a_node_may_deposit_only_its_own_envelopes_and_a_refused_batch_stores_nothing(store: RelayStore) -> None:
    batch = [envelope(ALICE, BOB), envelope(CAROL, BOB)]
    with pytest.raises(RelayRefused) as info:
        store.deposit(ALICE.node_id, batch)
    assert info.value.status == 403
    assert count(store) == 0
    with pytest.raises(RelayRefused) as info:
        store.deposit(CAROL.node_id, [envelope(ALICE, BOB)])  # re-posting someone's captured mail
    assert info.value.status == 403
    assert count(store) == 0


@pytest.mark.parametrize("garbage", [b"", b"SJE1", b"not an envelope at all", bytes(300)])
def test_what_is_not_an_envelope_is_refused_with_400(store: RelayStore, garbage: bytes) -> None:
    with pytest.raises(RelayRefused) as info:
        store.deposit(ALICE.node_id, [envelope(ALICE, BOB), garbage])
    assert info.value.status == 400
    assert count(store) == 0


def test_a_truncated_envelope_is_refused(store: RelayStore) -> None:
    good = envelope(ALICE, BOB)
    with pytest.raises(RelayRefused) as info:
        store.deposit(ALICE.node_id, [good[:100]])
    assert info.value.status == 400


def test_mail_to_oneself_is_refused(store: RelayStore) -> None:
    with pytest.raises(RelayRefused) as info:
        store.deposit(ALICE.node_id, [envelope(ALICE, ALICE)])
    assert info.value.status == 400


def test_an_envelope_above_the_size_limit_is_413(tmp_path: Path) -> None:
    small = envelope(ALICE, BOB, bytes(100))
    store = RelayStore(tmp_path / DB_NAME, max_envelope=len(small))
    try:
        assert len(store.deposit(ALICE.node_id, [small])) == 1
        with pytest.raises(RelayRefused) as info:
            store.deposit(ALICE.node_id, [envelope(ALICE, BOB, bytes(101))])
        assert info.value.status == 413
    finally:
        store.close()


def test_the_quota_is_per_sender_counts_held_mail_and_frees_up_on_ack(tmp_path: Path) -> None:
    one = envelope(ALICE, BOB, bytes(1000))
    store = RelayStore(tmp_path / DB_NAME, max_per_sender=3 * len(one))
    try:
        ids = store.deposit(ALICE.node_id, [one, envelope(ALICE, BOB, bytes(1000), 2)])
        with pytest.raises(RelayRefused) as info:  # 2 held + 2 new > 3
            store.deposit(ALICE.node_id, [envelope(ALICE, CAROL, bytes(1000), s) for s in (1, 2)])
        assert info.value.status == 413
        assert count(store) == 2
        store.deposit(CAROL.node_id, [envelope(CAROL, BOB, bytes(1000), s) for s in (1, 2, 3)])  # Carol's own quota
        store.deposit(ALICE.node_id, [envelope(ALICE, CAROL, bytes(1000))])  # exactly at the quota
        with pytest.raises(RelayRefused):
            store.deposit(ALICE.node_id, [envelope(ALICE, CAROL, bytes(10), 2)])
        store.ack(BOB.node_id, ids[-1])  # Bob took Alice's mail (and Carol's): Alice's quota is free again
        store.deposit(ALICE.node_id, [envelope(ALICE, BOB, bytes(1000), s) for s in (3, 4)])
    finally:
        store.close()


def test_the_total_cap_covers_all_senders(tmp_path: Path) -> None:
    one = envelope(ALICE, BOB, bytes(1000))
    store = RelayStore(tmp_path / DB_NAME, max_total=3 * len(one))
    try:
        store.deposit(ALICE.node_id, [one, envelope(ALICE, BOB, bytes(1000), 2)])
        with pytest.raises(RelayRefused) as info:
            store.deposit(CAROL.node_id, [envelope(CAROL, BOB, bytes(1000), s) for s in (1, 2)])
        assert info.value.status == 413
        assert "full" in info.value.message
        store.deposit(CAROL.node_id, [envelope(CAROL, BOB, bytes(1000))])
        assert store.usage().bytes == 3 * len(one)
    finally:
        store.close()


def test_expired_mail_is_invisible_then_deleted_and_no_longer_counts(tmp_path: Path) -> None:
    clock = Clock()
    one = envelope(ALICE, BOB, bytes(1000))
    store = RelayStore(tmp_path / DB_NAME, max_per_sender=len(one), clock=clock)
    try:
        store.deposit(ALICE.node_id, [one], ttl_seconds=DAY)
        clock.now = NOW + DAY - 1
        assert len(store.fetch(BOB.node_id, 0, 2**30)) == 1
        assert store.expire() == 0
        clock.now = NOW + DAY
        assert store.fetch(BOB.node_id, 0, 2**30) == []
        assert store.usage() == RelayUsage(messages=0, bytes=0, senders=0, recipients=0)
        store.deposit(ALICE.node_id, [envelope(ALICE, BOB, bytes(1000), 2)], ttl_seconds=DAY)  # quota free again
        assert store.expire() == 1
        assert store.usage().messages == 1
    finally:
        store.close()


def test_usage_counts_without_naming_anyone(store: RelayStore) -> None:
    a = envelope(ALICE, BOB)
    store.deposit(ALICE.node_id, [a, envelope(ALICE, CAROL)])
    store.deposit(CAROL.node_id, [envelope(CAROL, BOB)])
    usage = store.usage()
    assert (usage.messages, usage.senders, usage.recipients) == (3, 2, 2)
    assert usage.bytes >= 3 * len(a) - 10


def test_an_empty_deposit_stores_nothing(store: RelayStore) -> None:
    assert store.deposit(ALICE.node_id, []) == []


def test_the_file_is_plain_sqlite_in_wal_mode_with_the_documented_columns(store: RelayStore) -> None:
    store.deposit(ALICE.node_id, [envelope(ALICE, BOB)])
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(mail)")]
        assert columns == ["id", "recipient", "sender", "stored_at", "expires_at", "size", "envelope"]
        assert conn.execute("SELECT sender, recipient, stored_at, expires_at FROM mail").fetchall() == [
            (ALICE.node_id, BOB.node_id, NOW, NOW + 14 * DAY)
        ]
    finally:
        conn.close()


def test_mail_survives_reopening(tmp_path: Path) -> None:
    store = RelayStore.in_directory(tmp_path / "new" / "dir")
    mail = envelope(ALICE, BOB)
    (mail_id,) = store.deposit(ALICE.node_id, [mail])
    store.close()
    again = RelayStore.in_directory(tmp_path / "new" / "dir")
    try:
        assert again.fetch(BOB.node_id, 0, 2**30) == [(mail_id, mail)]
    finally:
        again.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_arbitrary_bytes_are_refused_with_relay_refused_only(store: RelayStore, batch: list[bytes]) -> None:
    with pytest.raises(RelayRefused) as info:
        store.deposit(ALICE.node_id, [*batch, b"junk"])
    assert info.value.status in (400, 403)
    assert count(store) == 0


def test_only_mail_envelopes_are_taken(store: RelayStore) -> None:
    session_envelope = seal(
        ALICE,
        recipient_id=BOB.node_id,
        recipient_kx_key=BOB.public.kx_key,
        topic="case/K7QM3XDA9PFR",
        stream=bytes(16),
        seq=1,
        payload=b"x",
    )
    with pytest.raises(RelayRefused) as refused:
        store.deposit(ALICE.node_id, [session_envelope])
    assert refused.value.status == 400
    assert store.usage().messages == 0
