"""Officers' accounts for the web UI: who may sign in, how a sign-in is checked, and how long it lasts.

The API's bearer tokens suit programs; people need names, passwords and sessions that end. A node's database
is encrypted, but a stolen backup plus a passphrase must still not yield passwords or live sessions, so
passwords are kept only as Argon2id hashes and session ids only as SHA-256 hashes (32 random bytes need no
slow hash). Guessing is slowed where it is cheap for the guesser: five failures for one user name, or twenty
from one address, within 15 minutes lock that name or address for 15 minutes. The failures are rows in the
database, so restarting the node does not lift a lock-out. A refusal never says whether the name exists: an
unknown name costs the same hashing work as a known one, and gets the same message as a wrong password.

The first admin cannot be made over the web without a secret the operator holds: while no user exists,
`setup_code()` gives a one-time code (printed by `seajust run`) that `claim_setup()` exchanges for the first
admin account. Later accounts are made by an admin or with `seajust user add`.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from node.errors import Forbidden, NodeError, NotFound, ValidationError
from node.storage import Database

ROLES: Final = ("officer", "admin")

USERNAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
PASSWORD_MIN: Final = 12
PASSWORD_MAX: Final = 1024  # hashing a megabyte "password" is work an attacker should not get for free

FAILURE_WINDOW: Final = 15 * 60.0  # failures counted within this many seconds ...
LOCKOUT: Final = 15 * 60.0  # ... lock the name or address for this long
USER_FAILURES: Final = 5
CLIENT_FAILURES: Final = 20

SESSION_IDLE: Final = 8 * 3600.0
SESSION_ABSOLUTE: Final = 24 * 3600.0
SESSION_TOUCH: Final = 60.0  # last_seen is written at most this often: a page view need not be a disk write

SETUP_CODE_LIFETIME: Final = 24 * 3600.0
CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_ALIASES: Final = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})

_AUDIT_SUBJECT_MAX: Final = 80  # what someone typed as a user name is stored, so keep it short
FULL_NAME_MAX: Final = 200  # as a directory entry's name (`node.directory.TEXT_FIELDS`), which it may become
EMAIL_MAX: Final = 254
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class LoginRefused(NodeError):
    """Wrong user name or password."""

    http_status = 401

    def __init__(self, message: str = "wrong user name or password") -> None:
        super().__init__(message)


class LockedOut(NodeError):
    """Too many failed logins; try again later."""

    http_status = 429

    def __init__(self, retry_after: float) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"too many failed logins; try again in {minutes} minute{'' if minutes == 1 else 's'}")
        self.retry_after = max(1, math.ceil(retry_after))  # seconds, for a Retry-After header


@dataclass(frozen=True)
class User:
    username: str
    role: str
    disabled: bool
    created_at: str
    last_login: str | None
    full_name: str = ""  # what a handover note and the directory call the person; never the user name
    email: str = ""


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    csrf: str
    created_at: float
    last_seen: float


def normal_username(username: str) -> str:
    return username.strip().lower()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _setup_code_hash(code: str) -> str:
    return _sha256(code.upper().translate(_CROCKFORD_ALIASES))


def _user(row: dict[str, Any]) -> User:
    return User(
        username=row["username"],
        role=row["role"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        last_login=row["last_login"],
        full_name=row.get("full_name") or "",
        email=row.get("email") or "",
    )


def _password_problem(password: str) -> str | None:
    if len(password) < PASSWORD_MIN:
        return f"must be at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"must be at most {PASSWORD_MAX} characters"
    if len(set(password)) == 1:
        return "must not be one character repeated"
    return None


def _invalid(errors: dict[str, str]) -> ValidationError:
    detail = "; ".join(f"{k} {v}" for k, v in sorted(errors.items()))
    return ValidationError(f"invalid user: {detail}", fields=errors)


class Accounts:
    """The node's user accounts, failed logins, sessions and setup code, all in the node's database."""

    def __init__(
        self, db: Database, *, clock: Callable[[], float] = time.time, hasher: PasswordHasher | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._hasher = hasher or PasswordHasher()  # Argon2id with the library's current recommended parameters
        self._dummy: str | None = None

    # --- accounts ---------------------------------------------------------------------------------------------

    def check_new(self, username: str, role: str) -> None:
        """Raise `ValidationError` if `add` would refuse this name or role (so a CLI can ask before prompting)."""
        errors = self._new_user_problems(normal_username(username), role)
        if errors:
            raise _invalid(errors)

    def add(self, username: str, password: str, role: str, *, actor: str) -> User:
        name = normal_username(username)
        password_hash = self._checked_hash(name, password, role)
        with self._db.write() as w:
            if self._exists(name):  # checked again now that we hold the write lock
                raise _invalid({"username": "is already taken"})
            user = self._insert(w, name, password_hash, role)
            self._audit(w, actor, "user.add", f"{name} ({role})")
        return user

    def list(self) -> builtins.list[User]:
        return [_user(row) for row in self._db.query("SELECT * FROM users ORDER BY username")]

    def get(self, username: str) -> User | None:
        rows = self._db.query("SELECT * FROM users WHERE username = ?", (normal_username(username),))
        return _user(rows[0]) if rows else None

    def has_users(self) -> bool:
        return bool(self._db.query("SELECT 1 FROM users LIMIT 1"))

    def set_password(self, username: str, password: str, *, actor: str) -> None:
        """A new password; the user's sessions end and any lock-out on the name is lifted."""
        name = self._require(username).username
        problem = _password_problem(password)
        if problem:
            raise _invalid({"password": problem})
        password_hash = self._hasher.hash(password)
        with self._db.write() as w:
            w.execute("UPDATE users SET password_hash = ? WHERE username = ?", (password_hash, name))
            w.execute("DELETE FROM sessions WHERE username = ?", (name,))
            w.execute("DELETE FROM login_failures WHERE username = ?", (name,))
            self._audit(w, actor, "user.password", name)

    def set_details(self, username: str, *, full_name: str, email: str, actor: str) -> User:
        """The person's name and e-mail: what colleagues and the counterpart see instead of a login name."""
        name = self._require(username).username
        full_name, email = full_name.strip(), email.strip()
        errors: dict[str, str] = {}
        if len(full_name) > FULL_NAME_MAX or _CONTROL.search(full_name):
            errors["full_name"] = f"must be at most {FULL_NAME_MAX} characters, without control characters"
        if email and (len(email) > EMAIL_MAX or not _EMAIL.match(email)):
            errors["email"] = "must be an e-mail address like name@example.org"
        if errors:
            raise _invalid(errors)
        with self._db.write() as w:
            w.execute("UPDATE users SET full_name = ?, email = ? WHERE username = ?", (full_name, email, name))
            self._audit(w, actor, "user.details", name)
        user = self.get(name)
        assert user is not None
        return user

    def set_role(self, username: str, role: str, *, actor: str) -> None:
        if role not in ROLES:
            raise _invalid({"role": f"must be {' or '.join(ROLES)}"})
        with self._db.write() as w:
            user = self._require(username)
            if user.role == role:
                return
            if user.role == "admin" and not user.disabled:
                self._refuse_if_last_admin(user.username)
            w.execute("UPDATE users SET role = ? WHERE username = ?", (role, user.username))
            self._audit(w, actor, "user.role", f"{user.username} ({role})")

    def disable(self, username: str, *, actor: str) -> None:
        """The user can no longer sign in, and their sessions end now."""
        with self._db.write() as w:
            user = self._require(username)
            if user.disabled:
                return
            if user.role == "admin":
                self._refuse_if_last_admin(user.username)
            w.execute("UPDATE users SET disabled = 1 WHERE username = ?", (user.username,))
            w.execute("DELETE FROM sessions WHERE username = ?", (user.username,))
            self._audit(w, actor, "user.disable", user.username)

    def enable(self, username: str, *, actor: str) -> None:
        with self._db.write() as w:
            user = self._require(username)
            if not user.disabled:
                return
            w.execute("UPDATE users SET disabled = 0 WHERE username = ?", (user.username,))
            self._audit(w, actor, "user.enable", user.username)

    # --- signing in -------------------------------------------------------------------------------------------

    def authenticate(self, username: str, password: str, *, client: str) -> User:
        """The user, if the password is right and neither the name nor the address is locked out.

        Raises `LockedOut` (without checking the password) while locked, `LockedOut` on the failure that
        starts a lock-out, and `LoginRefused` for any other failure, whatever its reason.
        """
        name = normal_username(username)[:_AUDIT_SUBJECT_MAX]
        now = self._clock()
        self._refuse_if_locked(name, client, now)
        rows = self._db.query("SELECT * FROM users WHERE username = ?", (name,)) if USERNAME_RE.match(name) else []
        row = rows[0] if rows else None
        stored = row["password_hash"] if row else self._dummy_hash()
        if not self._verify(stored, password) or row is None or row["disabled"]:
            self._record_failure(name, client, now)
            raise LoginRefused()
        rehashed = self._hasher.hash(password) if self._hasher.check_needs_rehash(stored) else None
        with self._db.write() as w:
            w.execute("UPDATE users SET last_login = ? WHERE username = ?", (self._iso(now), name))
            if rehashed:
                w.execute("UPDATE users SET password_hash = ? WHERE username = ?", (rehashed, name))
            w.execute("DELETE FROM login_failures WHERE username = ?", (name,))
        user = self.get(name)
        assert user is not None
        return user

    def _verify(self, stored: str, password: str) -> bool:
        if len(password) > PASSWORD_MAX:
            return False
        try:
            return bool(self._hasher.verify(stored, password))
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        """A hash nobody knows the password of, with this hasher's parameters: unknown names cost the same."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(32))
        return self._dummy

    def _locked_until(self, column: str, value: str, limit: int, now: float) -> float | None:
        """When the latest lock-out of this name or address ends, if it has not ended yet.

        A lock-out starts at a failure that is the `limit`-th within `FAILURE_WINDOW` and lasts `LOCKOUT`.
        Failures are not recorded while locked, so the failures that caused a lock-out have left the
        window by the time it ends.
        """
        assert column in ("username", "client")
        times = [
            float(r["at"])
            for r in self._db.query(
                f"SELECT at FROM login_failures WHERE {column} = ? AND at > ? ORDER BY at",
                (value, now - FAILURE_WINDOW - LOCKOUT),
            )
        ]
        until = None
        for i in range(limit - 1, len(times)):
            if times[i] - times[i - limit + 1] < FAILURE_WINDOW:
                until = times[i] + LOCKOUT
        return until if until is not None and until > now else None

    def _refuse_if_locked(self, name: str, client: str, now: float) -> None:
        ends = [
            t
            for t in (
                self._locked_until("username", name, USER_FAILURES, now),
                self._locked_until("client", client, CLIENT_FAILURES, now),
            )
            if t is not None
        ]
        if ends:
            raise LockedOut(max(ends) - now)

    def _record_failure(self, name: str, client: str, now: float) -> None:
        with self._db.write() as w:
            w.execute("DELETE FROM login_failures WHERE at <= ?", (now - FAILURE_WINDOW - LOCKOUT,))
            w.table("login_failures").insert({"username": name, "client": client, "at": now})
            self._audit(w, client, "login.failed", name)
            for column, value, limit in (("username", name, USER_FAILURES), ("client", client, CLIENT_FAILURES)):
                if self._locked_until(column, value, limit, now) is not None:
                    self._audit(w, client, "login.locked", name if column == "username" else f"client {client}")
        self._refuse_if_locked(name, client, now)

    # --- the first admin --------------------------------------------------------------------------------------

    def setup_code(self) -> str | None:
        """While no user exists, a new one-time code for `claim_setup` (earlier codes stop working)."""
        if self.has_users():
            return None
        code = "".join(secrets.choice(CROCKFORD) for _ in range(16))
        with self._db.write() as w:
            w.execute("UPDATE setup_codes SET used = 1 WHERE used = 0")
            w.table("setup_codes").insert({"code_hash": _setup_code_hash(code), "created_at": self._clock(), "used": 0})
        return "-".join(code[i : i + 4] for i in range(0, 16, 4))

    def claim_setup(self, code: str, username: str, password: str) -> User:
        """The first admin, made with the setup code, which is used up."""
        code_hash = _setup_code_hash(code)
        self._require_setup_code(code_hash)
        name = normal_username(username)
        password_hash = self._checked_hash(name, password, "admin")
        with self._db.write() as w:
            self._require_setup_code(code_hash)  # again, under the write lock: only one claim wins
            user = self._insert(w, name, password_hash, "admin")
            w.execute("UPDATE setup_codes SET used = 1 WHERE code_hash = ?", (code_hash,))
            self._audit(w, "setup", "user.add", f"{name} (admin)")
        return user

    def _require_setup_code(self, code_hash: str) -> None:
        valid = self._db.query(
            "SELECT 1 FROM setup_codes WHERE code_hash = ? AND used = 0 AND created_at > ?",
            (code_hash, self._clock() - SETUP_CODE_LIFETIME),
        )
        if not valid or self.has_users():
            raise LoginRefused("that setup code is wrong, used or expired: restart the node for a new one")

    # --- sessions ---------------------------------------------------------------------------------------------

    def start_session(self, username: str) -> tuple[str, Session]:
        """A new session: the id for the cookie (shown once, stored only as its hash) and the session."""
        user = self.get(username)
        if user is None or user.disabled:
            raise LoginRefused()
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(user.username, user.role, secrets.token_urlsafe(32), now, now)
        with self._db.write() as w:
            w.execute(
                "DELETE FROM sessions WHERE created_at <= ? OR last_seen <= ?",
                (now - SESSION_ABSOLUTE, now - SESSION_IDLE),
            )
            w.table("sessions").insert(
                {
                    "id_hash": _sha256(session_id),
                    "username": user.username,
                    "csrf": session.csrf,
                    "created_at": now,
                    "last_seen": now,
                }
            )
        return session_id, session

    def session(self, session_id: str) -> Session | None:
        """The live session of this id, its idle timer restarted; None if unknown, expired or its user disabled."""
        if not session_id or len(session_id) > 200:
            return None
        id_hash = _sha256(session_id)
        rows = self._db.query(
            "SELECT s.username, s.csrf, s.created_at, s.last_seen, u.role, u.disabled "
            "FROM sessions s LEFT JOIN users u ON u.username = s.username WHERE s.id_hash = ?",
            (id_hash,),
        )
        if not rows:
            return None
        row = rows[0]
        now = self._clock()
        if (
            row["role"] is None
            or row["disabled"]
            or now - row["last_seen"] > SESSION_IDLE
            or now - row["created_at"] > SESSION_ABSOLUTE
        ):
            self.end_session(session_id)
            return None
        last_seen = float(row["last_seen"])
        if now - last_seen >= SESSION_TOUCH:
            last_seen = now
            with self._db.write() as w:
                w.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash))
        return Session(row["username"], row["role"], row["csrf"], float(row["created_at"]), last_seen)

    def end_session(self, session_id: str) -> None:
        with self._db.write() as w:
            w.execute("DELETE FROM sessions WHERE id_hash = ?", (_sha256(session_id),))

    def end_sessions_of(self, username: str) -> None:
        with self._db.write() as w:
            w.execute("DELETE FROM sessions WHERE username = ?", (normal_username(username),))

    # --- helpers ----------------------------------------------------------------------------------------------

    def _iso(self, at: float) -> str:
        return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _audit(self, w: Any, actor: str, action: str, subject: str) -> None:
        w.table("audit_log").insert(
            {"at": self._iso(self._clock()), "actor": actor, "action": action, "subject": subject}
        )

    def _exists(self, name: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM users WHERE username = ?", (name,)))

    def _require(self, username: str) -> User:
        user = self.get(username)
        if user is None:
            raise NotFound(f"no such user: {normal_username(username)[:_AUDIT_SUBJECT_MAX]}")
        return user

    def _refuse_if_last_admin(self, name: str) -> None:
        others = self._db.query(
            "SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 AND username != ? LIMIT 1", (name,)
        )
        if not others:
            raise Forbidden(f"{name} is the last enabled admin: make another user admin first")

    def _new_user_problems(self, name: str, role: str) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not USERNAME_RE.match(name):
            errors["username"] = (
                "must be 2 to 40 characters: lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        elif self._exists(name):
            errors["username"] = "is already taken"
        if role not in ROLES:
            errors["role"] = f"must be {' or '.join(ROLES)}"
        return errors

    def _checked_hash(self, name: str, password: str, role: str) -> str:
        errors = self._new_user_problems(name, role)
        problem = _password_problem(password)
        if problem:
            errors["password"] = problem
        if errors:
            raise _invalid(errors)
        return str(self._hasher.hash(password))

    def _insert(self, w: Any, name: str, password_hash: str, role: str) -> User:
        user = User(name, role, False, self._iso(self._clock()), None)
        w.table("users").insert(
            {
                "username": name,
                "password_hash": password_hash,
                "role": role,
                "disabled": 0,
                "created_at": user.created_at,
                "last_login": None,
            }
        )
        return user
