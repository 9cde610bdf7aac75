"""Grouped units of work (node.storage): one commit per loop turn, each unit undone alone, nothing said early."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlcipher3

from node.errors import StorageError
from node.storage import Database

KEY = os.urandom(32)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "node.db", KEY)
    with database.write() as w:
        w.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        w.execute("CREATE TABLE item (x TEXT, parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    yield database
    database.close()


def committed(path: Path) -> list[str]:
    """What another connection (another process, a backup) sees: only what is committed."""
    conn = sqlcipher3.connect(str(path))
    try:
        conn.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
        return [row[0] for row in conn.execute("SELECT x FROM item ORDER BY rowid")]
    finally:
        conn.close()


def insert(db: Database, x: str, *, parent: int | None = None) -> None:
    with db.write(grouped=True) as w:
        w.execute("INSERT INTO item (x, parent) VALUES (?, ?)", (x, parent))


async def test_units_of_one_loop_turn_share_one_commit_and_nothing_runs_before_it(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    ran: list[str] = []
    mark = db.commit_mark()
    insert(db, "a")
    db.after_commit(lambda: ran.append("after a"))
    insert(db, "b")
    db.after_commit(lambda: ran.append("after b"))
    assert committed(db.path) == [] and ran == []  # written, not yet durable: nobody may be told
    assert [r["x"] for r in db.query("SELECT x FROM item")] == ["a", "b"]  # this node reads its own writes
    await db.durable(mark)
    assert committed(db.path) == ["a", "b"] and ran == ["after a", "after b"]
    db.stop_grouping()


async def test_a_failing_unit_is_undone_alone(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    mark = db.commit_mark()
    insert(db, "kept")
    with pytest.raises(ValueError), db.write(grouped=True) as w:
        w.execute("INSERT INTO item (x) VALUES ('undone')")
        raise ValueError("the unit's own error")
    insert(db, "kept too")
    await db.durable(mark)
    assert committed(db.path) == ["kept", "kept too"]
    db.stop_grouping()


async def test_a_failed_commit_undoes_the_group_and_says_so(db: Database) -> None:
    """A deferred foreign key is checked at COMMIT: a real commit that fails after every unit succeeded."""
    db.group_commits(asyncio.get_running_loop())
    undone: list[str] = []
    told: list[str] = []
    mark = db.commit_mark()
    insert(db, "lost with the group")
    db.on_abort(lambda: undone.append("first"))
    db.after_commit(lambda: told.append("first"))
    insert(db, "dangling", parent=42)  # no parent 42: fails at commit
    db.on_abort(lambda: undone.append("second"))
    with pytest.raises(StorageError):
        await db.durable(mark)
    assert undone == ["first", "second"] and told == []
    assert committed(db.path) == [] and db.query("SELECT x FROM item") == []
    # The next turn starts afresh.
    later = db.commit_mark()
    insert(db, "next turn")
    await db.durable(later)
    assert committed(db.path) == ["next turn"]
    db.stop_grouping()


async def test_a_unit_on_its_own_commits_the_group_first_and_fails_with_it(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    insert(db, "grouped")
    with db.write() as w:  # not grouped: commits at once, after the group
        w.execute("INSERT INTO item (x) VALUES ('alone')")
    assert committed(db.path) == ["grouped", "alone"]
    insert(db, "dangling", parent=7)
    with pytest.raises(StorageError), db.write() as w:  # relies on the group before it: refused with it
        w.execute("INSERT INTO item (x) VALUES ('after a failed group')")
    assert committed(db.path) == ["grouped", "alone"]
    db.stop_grouping()


async def test_a_mark_taken_after_a_failed_group_is_not_blamed_for_it(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    before = db.commit_mark()
    insert(db, "dangling", parent=9)
    await asyncio.sleep(0)  # the loop turn ends: the group's commit fails
    after = db.commit_mark()
    with pytest.raises(StorageError):
        await db.durable(before)
    await db.durable(after)  # nothing written since then failed
    db.stop_grouping()


def test_without_a_running_loop_every_unit_commits_on_its_own(db: Database) -> None:
    ran: list[str] = []
    insert(db, "at once")
    assert committed(db.path) == ["at once"]
    db.after_commit(lambda: ran.append("now"))
    assert ran == ["now"]


def test_an_outer_transaction_defers_what_waits_for_its_commit(db: Database) -> None:
    ran: list[str] = []
    undone: list[str] = []
    with db.write():
        insert(db, "nested")
        db.after_commit(lambda: ran.append("after"))
        assert ran == []
    assert ran == ["after"] and committed(db.path) == ["nested"]
    with pytest.raises(ValueError), db.write():
        insert(db, "rolled back")
        db.on_abort(lambda: undone.append("undo"))
        raise ValueError("outer unit fails")
    assert undone == ["undo"] and committed(db.path) == ["nested"]


def queue_at_commit(db: Database, x: str, queued: list[str]) -> None:
    """What `CaseIndex` does with search text: queue it in a unit, write it at the commit, take it back if the
    unit rolls back."""
    queued.append(x)
    db.on_unit_abort(lambda: queued.remove(x))

    def write(w: object) -> None:
        for value in queued:
            db.db.execute("INSERT INTO item (x) VALUES (?)", (value,))
        queued.clear()

    db.before_commit("items", write)


async def test_what_waits_for_the_commit_is_written_once_outside_the_units_and_not_for_a_unit_undone(
    db: Database,
) -> None:
    db.group_commits(asyncio.get_running_loop())
    queued: list[str] = []
    mark = db.commit_mark()
    with db.write(grouped=True):
        queue_at_commit(db, "a", queued)
    with pytest.raises(ValueError), db.write(grouped=True):
        queue_at_commit(db, "undone", queued)
        raise ValueError("the unit's own error")
    with db.write(grouped=True):
        queue_at_commit(db, "b", queued)
    assert queued == ["a", "b"] and db.query("SELECT x FROM item") == []  # not written yet
    await db.durable(mark)
    assert committed(db.path) == ["a", "b"] and queued == []
    db.stop_grouping()


async def test_what_waits_for_the_commit_can_be_written_early_for_a_read(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    queued: list[str] = []
    mark = db.commit_mark()
    with db.write(grouped=True):
        queue_at_commit(db, "a", queued)
    db.flush_before_commit()
    assert [r["x"] for r in db.query("SELECT x FROM item")] == ["a"] and committed(db.path) == []
    await db.durable(mark)
    assert committed(db.path) == ["a"]
    db.stop_grouping()


async def test_what_waits_for_a_commit_that_fails_is_dropped_with_it(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    queued: list[str] = []
    mark = db.commit_mark()
    with db.write(grouped=True):
        queue_at_commit(db, "lost", queued)
    db.on_abort(queued.clear)
    insert(db, "dangling", parent=42)  # fails at commit
    with pytest.raises(StorageError):
        await db.durable(mark)
    assert committed(db.path) == [] and queued == []
    later = db.commit_mark()
    insert(db, "next turn")
    await db.durable(later)
    assert committed(db.path) == ["next turn"]  # nothing of the failed group's queue came back
    db.stop_grouping()


def test_a_unit_on_its_own_writes_what_waits_for_its_commit_or_nothing(db: Database) -> None:
    queued: list[str] = []
    with db.write():
        queue_at_commit(db, "alone", queued)
    with pytest.raises(ValueError), db.write():
        queue_at_commit(db, "undone", queued)
        raise ValueError("the unit's own error")
    assert committed(db.path) == ["alone"] and queued == []
    with pytest.raises(RuntimeError):
        db.before_commit("items", lambda w: None)  # no transaction open: nothing would ever run it


async def test_a_held_group_commits_once_when_the_hold_ends_though_the_loop_ran(db: Database) -> None:
    """A catch-up's bundle lets the loop run every few cases (the node answers its API) and still commits once."""
    db.group_commits(asyncio.get_running_loop())
    mark = db.commit_mark()
    with db.hold():
        insert(db, "a")
        for _ in range(3):
            await asyncio.sleep(0)  # turns of the loop: the group stays open
        assert committed(db.path) == []
        insert(db, "b")
        await asyncio.sleep(0)
        assert committed(db.path) == [] and db.commit_mark() == mark  # one group, still open
    await db.durable(mark)
    assert committed(db.path) == ["a", "b"]
    db.stop_grouping()


async def test_a_unit_committing_on_its_own_still_commits_a_held_group_first(db: Database) -> None:
    db.group_commits(asyncio.get_running_loop())
    with db.hold():
        insert(db, "a")
        await asyncio.sleep(0)
        with db.write() as w:  # a unit on its own relies on what was grouped before it
            w.execute("INSERT INTO item (x) VALUES ('alone')")
        assert committed(db.path) == ["a", "alone"]
        insert(db, "b")  # a new group, held too
        await asyncio.sleep(0)
        assert committed(db.path) == ["a", "alone"]
    await asyncio.sleep(0)
    assert committed(db.path) == ["a", "alone", "b"]
    db.stop_grouping()
