"""The keys of the case documents this node is a party to.

Each case has its own random key, wrapped for each party's X25519 key in a signed grant
(`crypto.doc_keys`). The grant is what makes a node a party: the write and share policy
(`node.policy`) reads the party list from here, so a node without a grant neither receives the
case nor may write it. The unwrapped key is kept in the node's database, which is itself
encrypted with a key only the passphrase opens.

A grant received from a peer is checked before it is kept: signed by a trusted node that is
one of its parties, naming this node, with exactly one requesting and one requested side; a
later version must come from a current party, keep every party's role (only a party revoked from
the network may be left out) and carry the current key among its keys, so a party can widen a
case or move it to a new key but nobody can take it over.

Keys have epochs (`crypto.doc_keys`): `rekey` moves a case to a fresh key, wrapped with the older
ones for the remaining parties, regularly (`rotate_due`) and whenever a party is revoked, so a key
taken from a node later does not open what the case's parties say after that, and a revoked node
that kept its old key reads nothing new. Two parties re-keying at once both keep both keys.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlite_utils

from crypto.doc_keys import (
    MAX_EPOCH_KEYS,
    EpochCipher,
    KeyGrant,
    decode_grant,
    encode_grant,
    issue_grant,
    new_doc_key,
    unwrap_keys,
    verify_grant,
)
from crypto.errors import CryptoError, SignatureInvalid
from crypto.identity import Identity
from node.documents import utc_now
from node.errors import NotFound, PeerError
from node.policy import CASE_PREFIX
from node.storage import Database
from sync.errors import UpdateRejected

log = logging.getLogger(__name__)

ROLE_REQUESTING = "requesting"
ROLE_REQUESTED = "requested"
ROLE_SHARED = "shared"


CIPHERS_KEPT = 4_096  # ciphers (about 2.5 kB each) kept ready; the keys themselves are all in memory


_KEPT: Final = ("doc_id", "doc_key", "older_keys", "key_since", "grant", "version", "parties", "received_at")
_QUOTED: Final = [f'"{c}"' for c in _KEPT]  # "grant" is an SQL keyword
_KEEP_SQL: Final = (
    f"INSERT INTO case_keys ({', '.join(_QUOTED)}) VALUES ({', '.join('?' * len(_KEPT))}) "
    f"ON CONFLICT(doc_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _QUOTED[1:])}"
)


@dataclass(frozen=True)
class HeldKey:
    key: bytes
    version: int
    roles: dict[str, str]  # node ID -> requesting | requested | shared
    older: tuple[bytes, ...] = ()  # earlier epochs' keys, newest first, for reading the stored history
    since: str = ""  # when this node started sealing with `key`

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.key, *self.older)


_HELD_COLUMNS: Final = "doc_id, doc_key, version, parties, older_keys, key_since"


def _held_key(row: Sequence[Any], parsed: dict[str, dict[str, str]]) -> HeldKey:
    """A `case_keys` row (`_HELD_COLUMNS`) as held in memory. Most cases have the same two parties: each
    distinct party list is parsed once (`parsed`) and held once."""
    _, key, version, parties, older, since = row
    roles = parsed.get(parties)
    if roles is None:
        roles = parsed[parties] = {sys.intern(n): sys.intern(r) for n, r in json.loads(parties).items()}
    return HeldKey(key=key, version=version, roles=roles, older=_split(older), since=since or "")


def _split(blob: bytes | None) -> tuple[bytes, ...]:
    data = bytes(blob or b"")
    return tuple(data[i : i + 32] for i in range(0, len(data), 32))


class CaseKeys:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        *,
        sign_key_of: Callable[[str], bytes | None],
        kx_key_of: Callable[[str], bytes | None],
        revoked: Callable[[str], bool] = lambda node_id: False,
        older_sign_keys: Callable[[str], tuple[bytes, ...]] = lambda node_id: (),
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._db = db
        self._identity = identity
        self._me = identity.node_id
        self._sign_key_of = sign_key_of
        self._kx_key_of = kx_key_of
        self._revoked = revoked
        self._older_sign_keys = older_sign_keys
        self._clock = clock
        self._held: dict[str, HeldKey] = {}
        self._ciphers: OrderedDict[str, EpochCipher] = OrderedDict()
        self._replaced: list[str] | None = None  # cases whose keys changed while grants are accepted (see there)

    def load(self) -> None:
        held: dict[str, HeldKey] = {}
        parsed: dict[str, dict[str, str]] = {}
        for row in self._db.rows(f"SELECT {_HELD_COLUMNS} FROM case_keys"):
            held[row[0]] = _held_key(row, parsed)
        self._held = held
        self._ciphers.clear()

    def _reread(self, doc_id: str) -> None:
        """Hold what the database holds for a case again, after a write that changed it did not commit."""
        rows = self._db.rows(f"SELECT {_HELD_COLUMNS} FROM case_keys WHERE doc_id = ?", (doc_id,))
        if rows:
            self._held[doc_id] = _held_key(rows[0], {})
        else:
            self._held.pop(doc_id, None)
        self._ciphers.pop(doc_id, None)

    # -- reading --------------------------------------------------------------------------

    def roles(self, doc_id: str) -> dict[str, str]:
        """The parties, also of a shredded case (the policy still answers its parties, with a tombstone)."""
        return dict(self.parties(doc_id))

    def parties(self, doc_id: str) -> Mapping[str, str]:
        """`roles` for reading only, not copied: the policy asks it of every case each time a peer connects."""
        held = self._held.get(doc_id)
        return held.roles if held else {}

    def has(self, doc_id: str) -> bool:
        held = self._held.get(doc_id)
        return held is not None and bool(held.key)

    def doc_ids(self) -> list[str]:
        return sorted(d for d, held in self._held.items() if held.key)

    def shred(self, db: sqlite_utils.Database, doc_id: str) -> None:
        """Destroy every key of a case, inside the caller's transaction; its party list stays for the policy."""
        db.execute(
            "UPDATE case_keys SET doc_key = x'', older_keys = NULL, grant = x'', shredded_at = ? WHERE doc_id = ?",
            (self._clock(), doc_id),
        )

    def shredded(self, doc_id: str) -> None:
        """After the transaction of `shred` committed: forget the keys in memory too."""
        held = self._held.get(doc_id)
        if held is not None:
            self._held[doc_id] = HeldKey(b"", held.version, held.roles)
        self._ciphers.pop(doc_id, None)

    def cipher(self, doc_id: str) -> EpochCipher | None:
        cipher = self._ciphers.get(doc_id)
        if cipher is not None:
            self._ciphers.move_to_end(doc_id)
            return cipher
        held = self._held.get(doc_id)
        if held is None or not held.key:
            return None
        cipher = self._ciphers[doc_id] = EpochCipher(held.keys, doc_id)
        while len(self._ciphers) > CIPHERS_KEPT:
            self._ciphers.popitem(last=False)
        return cipher

    def grant_bytes(self, doc_id: str) -> bytes | None:
        if not self.has(doc_id):
            return None
        rows = self._db.query("SELECT grant FROM case_keys WHERE doc_id = ?", (doc_id,))
        return bytes(rows[0]["grant"]) if rows else None

    def widened_grants(self, doc_ids: Sequence[str]) -> list[bytes]:
        widened = [d for d in doc_ids if (held := self._held.get(d)) is not None and held.version > 1 and held.key]
        return [grant for d in widened if (grant := self.grant_bytes(d)) is not None]

    # -- issuing --------------------------------------------------------------------------

    def _party_keys(self, roles: Mapping[str, str]) -> dict[str, tuple[str, bytes]]:
        parties: dict[str, tuple[str, bytes]] = {}
        for node_id, role in roles.items():
            kx = self._identity.public.kx_key if node_id == self._me else self._kx_key_of(node_id)
            if kx is None:
                raise PeerError(f"node {node_id} is not a trusted peer of this node")
            parties[node_id] = (role, kx)
        return parties

    def create(self, doc_id: str, roles: Mapping[str, str]) -> None:
        """A new case: a fresh key, wrapped for every party, kept before the case's first update."""
        key = new_doc_key()
        grant = issue_grant(self._identity, doc_id=doc_id, version=1, key=key, parties=self._party_keys(roles))
        self._keep(grant, (key,))

    def share(self, doc_id: str, node_id: str) -> None:
        """Widen a case to a third party, at the next version and a new key epoch: every membership change of a
        case starts one. The new party gets the older keys too, so it reads the history."""
        held = self._held.get(doc_id)
        if held is None or not held.key:
            raise NotFound("no such case on this node")
        if node_id in held.roles:
            return
        roles = {**held.roles, node_id: ROLE_SHARED}
        key = new_doc_key()
        older = held.keys[: MAX_EPOCH_KEYS - 1]
        grant = issue_grant(
            self._identity,
            doc_id=doc_id,
            version=held.version + 1,
            key=key,
            older=older,
            parties=self._party_keys(roles),
        )
        self._keep(grant, (key, *older))

    def rekey(self, doc_id: str, *, drop: Sequence[str] = ()) -> bool:
        """Move a case to a fresh key for its parties but `drop` (revoked nodes); False if not held or no party left."""
        held = self._held.get(doc_id)
        if held is None or not held.key or self._me in drop:
            return False
        roles = {node: role for node, role in held.roles.items() if node not in drop}
        try:
            parties = self._party_keys(roles)
        except PeerError:  # a party this node no longer trusts: it keeps the key it has, and no new one
            parties = self._party_keys({n: r for n, r in roles.items() if n == self._me or self._kx_key_of(n)})
        key = new_doc_key()
        older = held.keys[: MAX_EPOCH_KEYS - 1]
        grant = issue_grant(
            self._identity, doc_id=doc_id, version=held.version + 1, key=key, older=older, parties=parties
        )
        self._keep(grant, (key, *older))
        log.info("case %s moved to a new key (epoch %d)", doc_id, len(older) + 1)
        return True

    def parties_of(self, node_id: str) -> list[str]:
        """The cases `node_id` is a party to."""
        return sorted(d for d, held in self._held.items() if node_id in held.roles)

    def rotate_due(self, *, older_than: str, open_case: Callable[[str], bool]) -> list[str]:
        """Re-key the open cases whose key this node has used since before `older_than` (an ISO time).

        Only the requesting side rotates on schedule, so the two parties do not both do it.
        """
        due = [
            doc_id
            for doc_id, held in self._held.items()
            if held.key and held.roles.get(self._me) == ROLE_REQUESTING and held.since and held.since < older_than
        ]
        return [doc_id for doc_id in due if open_case(doc_id) and self.rekey(doc_id)]

    # -- receiving ------------------------------------------------------------------------

    def accept_grants(self, grants: Sequence[bytes], *, via: str) -> None:
        """Keep each acceptable grant; raise for the first bad one once all were looked at.

        All in one grouped write: a peer catching up sends a thousand grants in a message, and a commit each
        (an fsync) took longer than the cases they open.
        """
        problem: UpdateRejected | None = None
        self._replaced = []
        try:
            with self._db.write(grouped=True):
                for data in grants:
                    try:
                        self._accept(data, via)
                    except UpdateRejected as exc:
                        log.warning("key grant from %s refused: %s", via, exc.message)
                        problem = problem or exc
        except BaseException:
            for doc_id in self._replaced or ():  # the unit was rolled back: so is what it held
                self._reread(doc_id)
            raise
        finally:
            self._replaced = None
        if problem is not None:
            raise problem

    def _accept(self, data: bytes, via: str) -> None:
        try:
            grant = decode_grant(data)
        except CryptoError as exc:
            raise UpdateRejected("bad_grant", "key grant is malformed") from exc
        if not grant.doc_id.startswith(CASE_PREFIX) or len(grant.doc_id) <= len(CASE_PREFIX):
            raise UpdateRejected("bad_grant", "key grant for a document that is not a case")
        if self._me not in grant.roles:
            raise UpdateRejected("not_addressed", "key grant does not name this node")
        if grant.issuer not in grant.roles or via not in grant.roles:
            raise UpdateRejected("bad_grant", "key grant issued or forwarded by a node that is not a party")
        sides = sorted(grant.roles.values())
        if sides.count(ROLE_REQUESTING) != 1 or sides.count(ROLE_REQUESTED) != 1:
            raise UpdateRejected("bad_grant", "a case has exactly one requesting and one requested side")
        sign_key = self._identity.public.sign_key if grant.issuer == self._me else self._sign_key_of(grant.issuer)
        if sign_key is None:
            raise UpdateRejected("untrusted_sender", "key grant issued by a node this node does not trust")
        for key in (sign_key, *self._older_sign_keys(grant.issuer)):  # issued before its issuer rotated its keys?
            try:
                verify_grant(grant, key)
                break
            except SignatureInvalid:
                continue
        else:
            raise UpdateRejected("bad_grant_signature", "key grant signature does not verify")
        held = self._held.get(grant.doc_id)
        try:
            keys = unwrap_keys(grant, self._identity)
        except CryptoError as exc:
            if held is not None and grant.version <= held.version:
                return  # a grant already held, wrapped for keys this node has since rotated away
            raise UpdateRejected("bad_grant", "key grant cannot be unwrapped by this node") from exc
        if held is None:
            self._keep(grant, keys, data=data)
            return
        if not held.key:
            return  # shredded here: its keys are not taken back
        if grant.version < held.version or (grant.version == held.version and set(keys) <= set(held.keys)):
            return  # already held (or older): nothing to do
        if grant.issuer not in held.roles:
            raise UpdateRejected("bad_grant", "a later key grant must come from a party to the case")
        if grant.version == held.version:
            # Both parties moved to a new key at once: keep both, go on sealing with ours.
            merged = (*held.keys, *(k for k in keys if k not in held.keys))[:MAX_EPOCH_KEYS]
            self._store_keys(grant.doc_id, held, merged)
            return
        dropped = set(held.roles) - set(grant.roles)
        kept_roles = all(grant.roles.get(node) == role for node, role in held.roles.items() if node not in dropped)
        if not kept_roles or not all(self._revoked(node) for node in dropped):
            raise UpdateRejected("bad_grant", "a later key grant must keep the case's parties as they were")
        if held.key not in keys:
            raise UpdateRejected("bad_grant", "a later key grant must carry the keys of the case's history")
        merged = (*keys, *(k for k in held.keys if k not in keys))[:MAX_EPOCH_KEYS]
        self._keep(grant, merged, since=held.since if keys[0] == held.key else None, data=data)

    def _keep(
        self, grant: KeyGrant, keys: tuple[bytes, ...], *, since: str | None = None, data: bytes | None = None
    ) -> None:
        """Store a grant and hold its keys; `data` is the grant as received (`decode_grant` took only its
        canonical form), or None for one this node issued."""
        started = since or self._clock()
        row = (
            grant.doc_id,
            keys[0],
            b"".join(keys[1:]),
            started,
            bytes(data) if data is not None else encode_grant(grant),
            grant.version,
            json.dumps(grant.roles, sort_keys=True),
            self._clock(),
        )
        with self._db.write() as db:
            # Plain SQL: sqlite_utils' `upsert` reads the schema again on every call, once per grant of a catch-up.
            db.execute(_KEEP_SQL, row)
            self._hold(grant.doc_id, HeldKey(keys[0], grant.version, dict(grant.roles), keys[1:], started))

    def _store_keys(self, doc_id: str, held: HeldKey, keys: tuple[bytes, ...]) -> None:
        with self._db.write() as db:
            db.execute("UPDATE case_keys SET older_keys = ? WHERE doc_id = ?", (b"".join(keys[1:]), doc_id))
            self._hold(doc_id, HeldKey(keys[0], held.version, held.roles, keys[1:], held.since))

    def _hold(self, doc_id: str, held: HeldKey) -> None:
        """Hold a key from inside the write that stores it, and let go of it again if that write does not commit."""
        self._db.on_abort(lambda: self._reread(doc_id))
        if self._replaced is not None:
            self._replaced.append(doc_id)
        self._held[doc_id] = held
        self._ciphers.pop(doc_id, None)
