"""Web UI accounts: validation, Argon2id hashing, refusals that say nothing, lock-outs, the setup code, sessions."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

import node.storage
from node.accounts import ROLES, Accounts, LockedOut, LoginRefused, Session, User
from node.errors import Forbidden, NotFound, ValidationError
from node.migrations import LATEST_VERSION, MIGRATIONS
from node.storage import Database

PASSWORD = "tamarind-monsoon-42"
T0 = 1_800_000_000.0
MINUTE = 60.0
HOUR = 3600.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingHasher(PasswordHasher):
    """A cheap Argon2id hasher (tests need speed, not strength) that records which hashes it verified."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return bool(super().verify(hash, password))


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def db(tmp_path: Path, key: bytes) -> Iterator[Database]:
    database = Database(tmp_path / "node.db", key)
    yield database
    database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hasher() -> RecordingHasher:
    return RecordingHasher()


@pytest.fixture
def accounts(db: Database, clock: Clock, hasher: RecordingHasher) -> Accounts:
    return Accounts(db, clock=clock, hasher=hasher)


def audit(db: Database, action: str | None = None) -> list[dict[str, Any]]:
    rows = db.query("SELECT actor, action, subject FROM audit_log ORDER BY id")
    return [r for r in rows if action is None or r["action"] == action]


def dump(db: Database) -> str:
    return "\n".join(db.dump_sql())


# --- schema ----------------------------------------------------------------------------------------------------


def test_a_version_3_database_gains_the_account_tables(
    tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(node.storage, "MIGRATIONS", MIGRATIONS[:3])
    monkeypatch.setattr(node.storage, "LATEST_VERSION", 3)
    old = Database(tmp_path / "node.db", key)
    assert "users" not in old.db.table_names()
    with old.write() as w:
        w.table("api_tokens").insert({"token_hash": "h", "label": "kept", "created_at": "t"})
    old.close()
    monkeypatch.undo()

    new = Database(tmp_path / "node.db", key)
    assert new.schema_version() == LATEST_VERSION >= 4
    assert {"users", "login_failures", "sessions", "setup_codes"} <= set(new.db.table_names())
    assert new.query("SELECT label FROM api_tokens") == [{"label": "kept"}]
    Accounts(new, hasher=RecordingHasher()).add("alice", PASSWORD, "admin", actor="test")
    new.close()


# --- adding and validating -----------------------------------------------------------------------------------------


def test_add_normalises_the_name_and_lists_users(accounts: Accounts, db: Database) -> None:
    user = accounts.add("  Alice.B ", PASSWORD, "admin", actor="cli")
    assert user == User("alice.b", "admin", False, "2027-01-15T08:00:00.000Z", None)
    accounts.add("bob", PASSWORD, "officer", actor="alice.b")
    assert [u.username for u in accounts.list()] == ["alice.b", "bob"]
    assert accounts.get("ALICE.B") == user
    assert accounts.get("nobody") is None
    assert accounts.has_users()
    assert audit(db, "user.add") == [
        {"actor": "cli", "action": "user.add", "subject": "alice.b (admin)"},
        {"actor": "alice.b", "action": "user.add", "subject": "bob (officer)"},
    ]
    assert ROLES == ("officer", "admin")


@pytest.mark.parametrize(
    ("username", "password", "role", "field"),
    [
        ("a", PASSWORD, "officer", "username"),  # too short
        ("x" * 41, PASSWORD, "officer", "username"),
        ("-alice", PASSWORD, "officer", "username"),
        ("alice smith", PASSWORD, "officer", "username"),
        ("alicé", PASSWORD, "officer", "username"),
        ("alice", "short-pass1", "officer", "password"),  # 11 characters
        ("alice", "a" * 20, "officer", "password"),
        ("alice", "x" * 1025, "officer", "password"),
        ("alice", PASSWORD, "superuser", "role"),
        ("alice", PASSWORD, "Admin", "role"),
    ],
)
def test_add_refuses_each_bad_field(
    accounts: Accounts, db: Database, username: str, password: str, role: str, field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        accounts.add(username, password, role, actor="cli")
    assert set(exc.value.fields) == {field}
    assert field in exc.value.message
    assert password not in exc.value.message
    assert not accounts.has_users()
    assert audit(db) == []


def test_add_reports_every_bad_field_at_once_and_refuses_a_taken_name(accounts: Accounts) -> None:
    with pytest.raises(ValidationError) as exc:
        accounts.add("!", "short", "boss", actor="cli")
    assert set(exc.value.fields) == {"username", "password", "role"}
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    with pytest.raises(ValidationError, match="already taken") as taken:
        accounts.add(" ALICE", PASSWORD, "admin", actor="cli")
    assert set(taken.value.fields) == {"username"}
    assert accounts.get("alice") is not None and accounts.get("alice").role == "officer"  # type: ignore[union-attr]
    # The CLI asks this before prompting for a password.
    with pytest.raises(ValidationError, match="already taken"):
        accounts.check_new("alice", "officer")
    with pytest.raises(ValidationError, match="role"):
        accounts.check_new("carol", "root")
    accounts.check_new("carol", "admin")


def test_password_is_hashed_with_argon2id_and_appears_nowhere(db: Database, clock: Clock) -> None:
    accounts = Accounts(db, clock=clock)  # the real parameters
    accounts.add("alice", PASSWORD, "admin", actor="cli")
    stored = db.query("SELECT password_hash FROM users")[0]["password_hash"]
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, PASSWORD)
    with pytest.raises(LoginRefused):
        accounts.authenticate("alice", "wrong password!", client="10.0.0.1")
    accounts.authenticate("alice", PASSWORD, client="10.0.0.1")
    session_id, _ = accounts.start_session("alice")
    text = dump(db)
    assert PASSWORD not in text and "wrong password!" not in text
    assert session_id not in text
    assert stored in text and "login.failed" in text  # the dump is of the right database


def test_setup_code_is_stored_only_as_a_hash(accounts: Accounts, db: Database) -> None:
    code = accounts.setup_code()
    assert code is not None
    text = dump(db)
    assert code not in text and code.replace("-", "") not in text


def test_a_hash_with_old_parameters_is_replaced_at_login(db: Database, clock: Clock, hasher: RecordingHasher) -> None:
    Accounts(db, clock=clock, hasher=hasher).add("alice", PASSWORD, "officer", actor="cli")
    cheap = db.query("SELECT password_hash FROM users")[0]["password_hash"]
    assert "m=8,t=1,p=1" in cheap

    current = Accounts(db, clock=clock)
    current.authenticate("alice", PASSWORD, client="10.0.0.1")
    rehashed = db.query("SELECT password_hash FROM users")[0]["password_hash"]
    assert rehashed != cheap and rehashed.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(rehashed)
    current.authenticate("alice", PASSWORD, client="10.0.0.1")
    assert db.query("SELECT password_hash FROM users")[0]["password_hash"] == rehashed


# --- signing in ----------------------------------------------------------------------------------------------------


def test_authenticate_succeeds_and_records_the_login(accounts: Accounts, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    clock.advance(90)
    user = accounts.authenticate(" Alice", PASSWORD, client="10.0.0.1")
    assert user.username == "alice" and user.last_login == "2027-01-15T08:01:30.000Z"
    assert accounts.get("alice") == user


def test_every_refusal_says_the_same_thing(accounts: Accounts, db: Database, hasher: RecordingHasher) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    accounts.add("admin", PASSWORD, "admin", actor="cli")
    accounts.add("bob", PASSWORD, "officer", actor="cli")
    accounts.disable("bob", actor="admin")
    messages = []
    for username, password in (("alice", "not the password"), ("nobody", PASSWORD), ("bob", PASSWORD), ("!", "x")):
        hasher.verified.clear()
        with pytest.raises(LoginRefused) as exc:
            accounts.authenticate(username, password, client="10.0.0.1")
        messages.append(exc.value.message)
        assert exc.value.http_status == 401
        assert len(hasher.verified) == 1  # the same work for an unknown name as for a known one
    assert set(messages) == {"wrong user name or password"}
    failed = audit(db, "login.failed")
    assert [r["subject"] for r in failed] == ["alice", "nobody", "bob", "!"]
    assert {r["actor"] for r in failed} == {"10.0.0.1"}
    assert PASSWORD not in dump(db) and "not the password" not in dump(db)


def test_unknown_names_are_checked_against_one_dummy_hash(accounts: Accounts, hasher: RecordingHasher) -> None:
    for name in ("nobody", "someone"):
        with pytest.raises(LoginRefused):
            accounts.authenticate(name, PASSWORD, client="10.0.0.1")
    assert len(hasher.verified) == 2 and hasher.verified[0] == hasher.verified[1]
    assert hasher.verified[0].startswith("$argon2id$")


def fail(accounts: Accounts, username: str, client: str = "10.0.0.1", times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(LoginRefused):
            accounts.authenticate(username, "not the password", client=client)


def test_the_fifth_failure_locks_the_name_for_15_minutes(
    accounts: Accounts, db: Database, clock: Clock, hasher: RecordingHasher
) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    fail(accounts, "alice", times=4)
    clock.advance(5 * MINUTE)
    with pytest.raises(LockedOut, match="try again in 15 minutes") as exc:
        accounts.authenticate("alice", "not the password", client="10.0.0.2")
    assert exc.value.http_status == 429 and exc.value.retry_after == 15 * 60
    assert len(audit(db, "login.locked")) == 1

    hasher.verified.clear()
    clock.advance(14 * MINUTE + 59)
    with pytest.raises(LockedOut, match=r"try again in 1 minute$"):
        accounts.authenticate("alice", PASSWORD, client="10.0.0.3")  # even with the right password
    assert hasher.verified == []  # no hashing work while locked
    # The lock-out is in the database: a restarted node (a new Accounts) keeps it.
    with pytest.raises(LockedOut):
        Accounts(db, clock=clock, hasher=hasher).authenticate("alice", PASSWORD, client="10.0.0.1")
    assert len(audit(db, "login.locked")) == 1
    assert len(audit(db, "login.failed")) == 5

    clock.advance(1)
    assert accounts.authenticate("alice", PASSWORD, client="10.0.0.1").username == "alice"


def test_a_lock_out_ends_even_if_attempts_continue(accounts: Accounts, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    fail(accounts, "alice", times=4)
    with pytest.raises(LockedOut):
        accounts.authenticate("alice", "guess", client="10.0.0.1")
    for _ in range(14):
        clock.advance(MINUTE)
        with pytest.raises(LockedOut):
            accounts.authenticate("alice", "guess", client="10.0.0.1")
    clock.advance(MINUTE)
    fail(accounts, "alice")  # a fresh count starts
    accounts.authenticate("alice", PASSWORD, client="10.0.0.1")


def test_unknown_names_lock_out_too(accounts: Accounts) -> None:
    fail(accounts, "nobody", times=4)
    with pytest.raises(LockedOut):
        accounts.authenticate("nobody", "guess", client="10.0.0.1")


def test_only_failures_within_15_minutes_count(accounts: Accounts, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    fail(accounts, "alice", times=4)
    clock.advance(15 * MINUTE + 1)
    fail(accounts, "alice", times=4)
    accounts.authenticate("alice", PASSWORD, client="10.0.0.1")


def test_success_clears_the_names_failures(accounts: Accounts) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    fail(accounts, "alice", times=4)
    accounts.authenticate("alice", PASSWORD, client="10.0.0.1")
    fail(accounts, "alice", times=4)
    with pytest.raises(LockedOut):
        accounts.authenticate("alice", "guess", client="10.0.0.1")


def test_twenty_failures_from_one_address_lock_that_address(accounts: Accounts, db: Database, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    for n in range(19):
        fail(accounts, f"user{n}", client="203.0.113.9")
        clock.advance(10)
    with pytest.raises(LockedOut):
        accounts.authenticate("user19", "guess", client="203.0.113.9")
    with pytest.raises(LockedOut):
        accounts.authenticate("alice", PASSWORD, client="203.0.113.9")
    assert accounts.authenticate("alice", PASSWORD, client="198.51.100.1").username == "alice"
    assert audit(db, "login.locked") == [
        {"actor": "203.0.113.9", "action": "login.locked", "subject": "client 203.0.113.9"}
    ]
    clock.advance(15 * MINUTE)
    assert accounts.authenticate("alice", PASSWORD, client="203.0.113.9").username == "alice"


def test_a_password_reset_lifts_a_lock_out(accounts: Accounts) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    fail(accounts, "alice", times=4)
    with pytest.raises(LockedOut):
        accounts.authenticate("alice", "guess", client="10.0.0.1")
    accounts.set_password("alice", "a new long password", actor="admin")
    assert accounts.authenticate("alice", "a new long password", client="10.0.0.1").username == "alice"


# --- managing accounts ---------------------------------------------------------------------------------------------


def test_disable_enable_set_role_and_password_are_audited(accounts: Accounts, db: Database) -> None:
    accounts.add("root", PASSWORD, "admin", actor="cli")
    accounts.add("alice", PASSWORD, "officer", actor="root")
    accounts.disable("alice", actor="root")
    assert accounts.get("alice").disabled  # type: ignore[union-attr]
    accounts.disable("alice", actor="root")  # already: nothing to do, nothing logged
    accounts.enable("alice", actor="root")
    assert not accounts.get("alice").disabled  # type: ignore[union-attr]
    accounts.set_role("alice", "admin", actor="root")
    assert accounts.get("alice").role == "admin"  # type: ignore[union-attr]
    accounts.set_password("alice", "another long password", actor="root")
    with pytest.raises(LoginRefused):
        accounts.authenticate("alice", PASSWORD, client="10.0.0.1")
    accounts.authenticate("alice", "another long password", client="10.0.0.1")
    assert [(r["actor"], r["action"], r["subject"]) for r in audit(db)] == [
        ("cli", "user.add", "root (admin)"),
        ("root", "user.add", "alice (officer)"),
        ("root", "user.disable", "alice"),
        ("root", "user.enable", "alice"),
        ("root", "user.role", "alice (admin)"),
        ("root", "user.password", "alice"),
        ("10.0.0.1", "login.failed", "alice"),
    ]
    assert "another long password" not in dump(db)


def test_changes_to_unknown_users_and_bad_values_are_refused(accounts: Accounts) -> None:
    accounts.add("root", PASSWORD, "admin", actor="cli")
    for change in (
        lambda: accounts.disable("ghost", actor="root"),
        lambda: accounts.enable("ghost", actor="root"),
        lambda: accounts.set_role("ghost", "officer", actor="root"),
        lambda: accounts.set_password("ghost", PASSWORD, actor="root"),
    ):
        with pytest.raises(NotFound, match="no such user: ghost"):
            change()
    with pytest.raises(ValidationError) as exc:
        accounts.set_role("root", "owner", actor="root")
    assert set(exc.value.fields) == {"role"}
    with pytest.raises(ValidationError) as exc:
        accounts.set_password("root", "short", actor="root")
    assert set(exc.value.fields) == {"password"}
    accounts.authenticate("root", PASSWORD, client="10.0.0.1")


def test_the_last_enabled_admin_cannot_be_disabled_or_demoted(accounts: Accounts) -> None:
    accounts.add("root", PASSWORD, "admin", actor="cli")
    with pytest.raises(Forbidden, match="last enabled admin"):
        accounts.disable("root", actor="root")
    with pytest.raises(Forbidden, match="last enabled admin"):
        accounts.set_role("root", "officer", actor="root")

    accounts.add("deputy", PASSWORD, "admin", actor="root")
    accounts.disable("deputy", actor="root")
    with pytest.raises(Forbidden):  # a disabled admin does not count
        accounts.set_role("root", "officer", actor="root")
    accounts.set_role("deputy", "officer", actor="root")  # demoting a disabled admin is fine
    accounts.set_role("deputy", "admin", actor="root")
    accounts.enable("deputy", actor="root")
    accounts.set_role("root", "officer", actor="deputy")
    with pytest.raises(Forbidden):
        accounts.disable("deputy", actor="deputy")
    assert [(u.username, u.role, u.disabled) for u in accounts.list()] == [
        ("deputy", "admin", False),
        ("root", "officer", False),
    ]


# --- the setup code ------------------------------------------------------------------------------------------------


def test_the_setup_code_makes_the_first_admin_once(accounts: Accounts, db: Database) -> None:
    assert not accounts.has_users()
    code = accounts.setup_code()
    assert code is not None and re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code)
    with pytest.raises(LoginRefused, match="setup code"):
        accounts.claim_setup("0000-0000-0000-0000", "root", PASSWORD)
    with pytest.raises(ValidationError):  # a bad field does not use up the code
        accounts.claim_setup(code, "root", "short")
    user = accounts.claim_setup(code.lower().replace("-", " "), "Root", PASSWORD)  # as typed by a person
    assert user.username == "root" and user.role == "admin"
    assert db.query("SELECT used FROM setup_codes") == [{"used": 1}]
    assert audit(db, "user.add") == [{"actor": "setup", "action": "user.add", "subject": "root (admin)"}]
    with pytest.raises(LoginRefused):
        accounts.claim_setup(code, "second", PASSWORD)
    assert accounts.setup_code() is None
    assert [u.username for u in accounts.list()] == ["root"]


def test_a_setup_code_expires_after_24_hours(accounts: Accounts, clock: Clock) -> None:
    code = accounts.setup_code()
    assert code is not None
    clock.advance(24 * HOUR + 1)
    with pytest.raises(LoginRefused):
        accounts.claim_setup(code, "root", PASSWORD)
    assert not accounts.has_users()


def test_a_new_setup_code_replaces_the_old_one(accounts: Accounts) -> None:
    first, second = accounts.setup_code(), accounts.setup_code()
    assert first and second and first != second
    with pytest.raises(LoginRefused):
        accounts.claim_setup(first, "root", PASSWORD)
    accounts.claim_setup(second, "root", PASSWORD)


def test_a_setup_code_is_useless_once_a_user_exists(accounts: Accounts) -> None:
    code = accounts.setup_code()
    assert code is not None
    accounts.add("root", PASSWORD, "admin", actor="cli")
    with pytest.raises(LoginRefused):
        accounts.claim_setup(code, "intruder", PASSWORD)


# --- sessions ------------------------------------------------------------------------------------------------------


def test_a_session_is_found_by_its_id_and_stored_by_its_hash(accounts: Accounts, db: Database, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    session_id, session = accounts.start_session("alice")
    assert len(session_id) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", session_id)
    assert session == Session("alice", "officer", session.csrf, T0, T0)
    assert len(session.csrf) >= 43
    assert accounts.session(session_id) == session
    assert accounts.session("not-a-session") is None and accounts.session("") is None
    assert db.query("SELECT id_hash FROM sessions")[0]["id_hash"] != session_id
    other_id, other = accounts.start_session("alice")
    assert other_id != session_id and other.csrf != session.csrf
    # A role change shows in the live session.
    accounts.add("root", PASSWORD, "admin", actor="cli")
    accounts.set_role("alice", "admin", actor="root")
    assert accounts.session(session_id).role == "admin"  # type: ignore[union-attr]


def test_sessions_expire_after_8_idle_hours(accounts: Accounts, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    session_id, _ = accounts.start_session("alice")
    clock.advance(8 * HOUR - 1)
    touched = accounts.session(session_id)
    assert touched is not None and touched.last_seen == clock.now
    clock.advance(8 * HOUR - 1)  # idle time counts from the last use
    assert accounts.session(session_id) is not None
    clock.advance(8 * HOUR + 1)
    assert accounts.session(session_id) is None
    clock.advance(-8 * HOUR)  # gone for good, not merely expired
    assert accounts.session(session_id) is None


def test_sessions_end_after_24_hours_however_busy(accounts: Accounts, clock: Clock) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    session_id, _ = accounts.start_session("alice")
    for _ in range(23):
        clock.advance(HOUR)
        assert accounts.session(session_id) is not None
    clock.advance(HOUR - 1)
    assert accounts.session(session_id) is not None
    clock.advance(2)
    assert accounts.session(session_id) is None


def test_a_disabled_users_sessions_are_invalid(accounts: Accounts, db: Database) -> None:
    accounts.add("root", PASSWORD, "admin", actor="cli")
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    session_id, _ = accounts.start_session("alice")
    # Even if only the flag changed (another process, an old row): the session is checked against the user.
    with db.write() as w:
        w.execute("UPDATE users SET disabled = 1 WHERE username = 'alice'")
    assert accounts.session(session_id) is None
    with db.write() as w:
        w.execute("UPDATE users SET disabled = 0 WHERE username = 'alice'")
    assert accounts.session(session_id) is None  # it was ended, not just hidden

    session_id, _ = accounts.start_session("alice")
    accounts.disable("alice", actor="root")
    accounts.enable("alice", actor="root")
    assert accounts.session(session_id) is None
    accounts.disable("alice", actor="root")
    with pytest.raises(LoginRefused):
        accounts.start_session("alice")
    with pytest.raises(LoginRefused):
        accounts.start_session("ghost")


def test_ending_sessions(accounts: Accounts) -> None:
    accounts.add("alice", PASSWORD, "officer", actor="cli")
    accounts.add("bob", PASSWORD, "admin", actor="cli")
    a1, _ = accounts.start_session("alice")
    a2, _ = accounts.start_session("alice")
    b1, _ = accounts.start_session("bob")
    accounts.end_session(a1)
    assert accounts.session(a1) is None and accounts.session(a2) is not None
    accounts.end_sessions_of("Alice")
    assert accounts.session(a2) is None and accounts.session(b1) is not None
    a3, _ = accounts.start_session("alice")
    accounts.set_password("alice", "a brand new password", actor="bob")
    assert accounts.session(a3) is None and accounts.session(b1) is not None
